//! What a hostile user does to `toxcli`: output paths that are not plain
//! files, a closed stderr, files it cannot read or write, a store that is
//! not there, a bad environment variable under a good flag, CRLF files.

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use super::{check_run, fixture_tweets, model_flags, parse_csv_export, run, score_args, toxcli};

/// A folder with a scored SQLite store, `m.db`.
fn scored_store() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let flags = model_flags();
    let tweets = fixture_tweets();
    check_run(dir.path(), &score_args(&["--store", "sqlite:m.db", "--input", &tweets], &flags), 0);
    dir
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list the folder")
        .map(|entry| entry.expect("an entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn no_temporary_file(dir: &Path) {
    assert!(!names(dir).iter().any(|name| name.contains(".tmp-")), "a temporary file was left: {:?}", names(dir));
}

#[test]
fn output_to_a_fifo_or_a_symlink_writes_through_and_a_folder_is_refused() {
    use std::os::unix::fs::FileTypeExt;
    let dir = scored_store();
    let dir = dir.path();

    let status = std::process::Command::new("mkfifo").arg(dir.join("fifo")).status().expect("mkfifo runs");
    assert!(status.success());
    let fifo = dir.join("fifo");
    let reader = std::thread::spawn(move || std::fs::read_to_string(fifo).expect("read the fifo"));
    check_run(dir, &["--store", "sqlite:m.db", "export", "--output", "fifo"], 0);
    // Checked first: a replaced fifo never gets a writer, and its reader waits.
    assert!(std::fs::symlink_metadata(dir.join("fifo")).expect("fifo").file_type().is_fifo(), "the fifo was replaced");
    let exported = reader.join().expect("the reader thread");
    assert_eq!(parse_csv_export(&exported).len(), 60);

    std::fs::write(dir.join("target.csv"), "old").expect("write the target");
    std::os::unix::fs::symlink("target.csv", dir.join("link.csv")).expect("symlink");
    check_run(dir, &["--store", "sqlite:m.db", "export", "--output", "link.csv"], 0);
    assert!(std::fs::symlink_metadata(dir.join("link.csv")).expect("link").file_type().is_symlink());
    let target = std::fs::read_to_string(dir.join("target.csv")).expect("the target");
    assert_eq!(parse_csv_export(&target).len(), 60);

    std::fs::create_dir(dir.join("out")).expect("a folder");
    for command in [&["export", "--output", "out"][..], &["report", "--output", "out"]] {
        let mut args = vec!["--store", "sqlite:m.db"];
        args.extend_from_slice(command);
        let refused = check_run(dir, &args, 2);
        assert!(refused.stderr.contains("out: is a folder"), "{}", refused.stderr);
        assert!(names(&dir.join("out")).is_empty());
        no_temporary_file(dir);
    }
}

#[test]
fn a_failed_export_leaves_no_file_and_prints_no_header() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    // An SQLite file without toxscore's tables.
    let connection = rusqlite::Connection::open(dir.join("m.db")).expect("open");
    connection.execute_batch("CREATE TABLE other (a INTEGER)").expect("create a table");
    drop(connection);
    let failed = check_run(dir, &["--store", "sqlite:m.db", "export", "--output", "out.csv"], 4);
    assert!(!dir.join("out.csv").exists());
    no_temporary_file(dir);
    assert!(
        failed.stderr.contains("not found (the store is not migrated: run `toxcli migrate` first)"),
        "{}",
        failed.stderr
    );
    assert!(!failed.stderr.contains("SQL logic error"), "{}", failed.stderr);
    let to_stdout = check_run(dir, &["--store", "sqlite:m.db", "export"], 4);
    assert_eq!(to_stdout.stdout, "");
}

#[test]
fn a_closed_stderr_does_not_abort_the_work() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    let closed_stderr = || {
        let (reader, writer) = std::io::pipe().expect("a pipe");
        drop(reader);
        Stdio::from(writer)
    };
    let tweets = fixture_tweets();
    for (args, expected) in [
        (&["--store", "sqlite:m.db", "import", "--input", &tweets][..], 0),
        (&["--store", "sqlite:m.db", "migrate"], 0),
        // An error, reported on the closed stderr.
        (&["--store", "sqlite:missing.db", "status"], 4),
    ] {
        let status = toxcli(dir).args(args).stderr(closed_stderr()).stdout(Stdio::null()).status().expect("runs");
        assert_eq!(status.code(), Some(expected), "toxcli {args:?}: {status:?}");
    }
    let status = check_run(dir, &["--store", "sqlite:m.db", "status"], 0);
    assert!(status.stdout.contains("status ids: 60"), "{}", status.stdout);
}

#[test]
fn predict_scores_the_good_lines_before_a_bad_one_and_exits_with_input_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    let flags = model_flags();
    fn predict<'a>(flags: &'a [String], extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["predict"];
        args.extend(flags.iter().map(String::as_str));
        args.extend_from_slice(extra);
        args
    }
    // The first chunk holds 8 lines: the bad line in the first and in the second.
    for n_good in [1, 9] {
        let mut bytes: Vec<u8> = (0..n_good).flat_map(|idx| format!("text {idx}\n").into_bytes()).collect();
        bytes.extend_from_slice(b"bad \xff\nafter\n");
        std::fs::write(dir.join("texts.txt"), &bytes).expect("write");
        let from_file = check_run(dir, &predict(&flags, &["--input", "texts.txt"]), 3);
        assert_eq!(from_file.stdout.lines().count(), n_good, "{}", from_file.stdout);
        let bad_line = format!("texts.txt:{}: the line is not valid UTF-8", n_good + 1);
        assert!(from_file.stderr.contains(&bad_line), "{}", from_file.stderr);

        let mut child = toxcli(dir)
            .args(predict(&flags, &[]))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("toxcli runs");
        child.stdin.take().expect("stdin").write_all(&bytes).expect("write stdin");
        let output = child.wait_with_output().expect("toxcli ends");
        assert_eq!(output.status.code(), Some(3), "{}", String::from_utf8_lossy(&output.stderr));
        assert_eq!(String::from_utf8_lossy(&output.stdout).lines().count(), n_good);
    }
    let missing = check_run(dir, &predict(&flags, &["--input", "missing.txt"]), 3);
    assert!(missing.stderr.contains("missing.txt: cannot open it"), "{}", missing.stderr);
}

#[test]
fn unwritable_outputs_and_lock_files_and_bad_table_names_have_their_exit_codes() {
    let dir = scored_store();
    let dir = dir.path();
    // A name longer than any file system allows: the path cannot be written.
    let long = "x".repeat(300);
    let unwritable = check_run(dir, &["--store", "sqlite:m.db", "export", "--output", &long], 3);
    assert!(unwritable.stderr.contains("xxxx"), "{}", unwritable.stderr);

    // The lock file beside the store cannot be created.
    std::fs::remove_file(dir.join("m.db.original.score-lock")).expect("remove the lock file");
    std::fs::create_dir(dir.join("m.db.original.score-lock")).expect("a folder in the lock file's place");
    let flags = model_flags();
    let locked = check_run(dir, &score_args(&["--store", "sqlite:m.db"], &flags), 4);
    assert!(locked.stderr.contains("creating the lock file"), "{}", locked.stderr);

    for name in ["x;drop", "1abc", ""] {
        let refused = check_run(dir, &["--store", "sqlite:m.db", "export", "--to-table", name], 2);
        assert!(refused.stderr.contains("--to-table"), "{}", refused.stderr);
    }
}

#[test]
fn read_only_commands_on_a_missing_store_create_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    for command in [&["status"][..], &["export"], &["report"], &["verify"], &["migrate", "--dry-run"]] {
        let mut args = vec!["--store", "sqlite:typo.db"];
        args.extend_from_slice(command);
        let missing = check_run(dir, &args, 4);
        assert!(missing.stderr.contains("no store at typo.db"), "{}", missing.stderr);
        assert!(missing.stderr.contains("toxcli import"), "{}", missing.stderr);
        assert_eq!(missing.stdout, "", "{command:?}");
        assert!(names(dir).is_empty(), "{command:?} created {:?}", names(dir));
    }
}

#[test]
fn a_flag_wins_over_an_invalid_variable() {
    let dir = scored_store();
    let dir = dir.path();
    let flagged = run(toxcli(dir).env("TOXSCORE_STORE", "bogus").args(["--store", "sqlite:m.db", "status"]));
    assert_eq!(flagged.code, 0, "{}", flagged.stderr);
    assert!(flagged.stdout.contains("status ids: 60"), "{}", flagged.stdout);
    let unflagged = run(toxcli(dir).env("TOXSCORE_STORE", "bogus").arg("status"));
    assert_eq!(unflagged.code, 2, "{}", unflagged.stderr);
    assert!(unflagged.stderr.contains("TOXSCORE_STORE"), "{}", unflagged.stderr);
}

#[test]
fn bad_rows_of_crlf_files_are_named_by_their_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    let check = |name: &str, bytes: &[u8], line: u32| {
        std::fs::write(dir.join(name), bytes).expect("write");
        let store = format!("sqlite:{name}.db");
        let import = check_run(dir, &["--store", &store, "import", "--input", name], 0);
        assert!(import.stderr.contains(&format!("{name}:{line}: status_text")), "{}", import.stderr);
    };
    check("lf.csv", b"status_id,user_id,status_text,created_at\n1,1,ok,\n2,1,ok2,\n3,1,bad\xff,\n", 4);
    check("crlf.csv", b"status_id,user_id,status_text,created_at\r\n1,1,ok,\r\n2,1,ok2,\r\n3,1,bad\xff,\r\n", 4);
    // A quoted line break, and empty lines.
    check("blank.csv", b"status_id,user_id,status_text,created_at\n\n1,1,ok,\n\n3,1,bad\xff,\n", 5);
    check("quoted.csv", b"status_id,user_id,status_text,created_at\r\n1,1,\"a\r\nb\",\r\n\r\n3,1,bad\xff,\r\n", 5);
    let summary = check_run(dir, &["--store", "sqlite:one.db", "import", "--input", "quoted.csv"], 0);
    assert!(summary.stderr.contains("2 rows read, 1 new, 0 already present, 1 rejected"), "{}", summary.stderr);
}
