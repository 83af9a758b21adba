//! The `toxcli` executable, run for real in temporary folders, on the tiny
//! fixture checkpoint (`fixtures/models/bert`) and the fixture tweets.
//!
//! The BigQuery test needs the emulator: `cargo xtask test` starts it and sets
//! `TOXSCORE_BIGQUERY_EMULATOR`; without it that test fails (it never skips).

mod gpu;
mod hostile;
mod pipeline;
mod report;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Scores of the same text computed in batches of other shapes (other
/// neighbours, other padding) may differ in the last bits of an f32: the
/// matrix products sum in another order. 1e-6 is far below any meaningful
/// difference of a probability and far above that rounding.
const SCORE_TOLERANCE: f64 = 1e-6;

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(relative)
}

fn model_flags() -> Vec<String> {
    let model = repo_path("fixtures/models/bert");
    vec![
        "--checkpoint".into(),
        model.join("checkpoint.ckpt").display().to_string(),
        "--hf-config".into(),
        model.join("config.json").display().to_string(),
        "--tokenizer".into(),
        model.join("vocab.txt").display().to_string(),
        "--model".into(),
        "original".into(),
    ]
}

/// A `toxcli` command in `dir`, with none of the environment variables that
/// would change its defaults inherited from the test's environment.
fn toxcli(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_toxcli"));
    command.current_dir(dir);
    for name in [
        "TOXSCORE_STORE",
        "BIGQUERY_DATASET_NAME",
        "BIGQUERY_PROJECT_NAME",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "TOXSCORE_BIGQUERY_ENDPOINT",
        "MODEL_NAME",
        "LIMIT",
        "BATCH_SIZE",
        "MAX_THREADS",
        "TOXSCORE_DEVICE",
        "TOXSCORE_PRECISION",
        "RUST_BACKTRACE",
    ] {
        command.env_remove(name);
    }
    // TORCH_HOME too: a Detoxify download on this machine must not count.
    command
        .env("TOXSCORE_CACHE_DIR", dir.join("cache"))
        .env("TORCH_HOME", dir.join("torch"))
        .env("TOXSCORE_OFFLINE", "true");
    command
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(command: &mut Command) -> Run {
    let Output { status, stdout, stderr } = command.output().expect("toxcli runs");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Runs toxcli with `args` in `dir` and checks its exit code.
fn check_run(dir: &Path, args: &[&str], expected_code: i32) -> Run {
    let result = run(toxcli(dir).args(args));
    assert_eq!(
        result.code, expected_code,
        "toxcli {args:?} exited with {}\nstdout:\n{}\nstderr:\n{}",
        result.code, result.stdout, result.stderr
    );
    assert!(!result.stderr.contains("panicked"), "toxcli {args:?} panicked:\n{}", result.stderr);
    result
}

fn score_args<'a>(extra: &[&'a str], flags: &'a [String]) -> Vec<&'a str> {
    let mut args = vec!["score"];
    args.extend(flags.iter().map(String::as_str));
    args.extend_from_slice(extra);
    args
}

/// An export parsed: status id -> (user id, text id, scores).
type Export = BTreeMap<i64, (i64, i64, Vec<f64>)>;

fn parse_csv_export(text: &str) -> Export {
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("status_id,user_id,status_text_id,toxicity,severe_toxicity,obscene,threat,insult,identity_hate")
    );
    let mut export = Export::new();
    for line in lines {
        let fields: Vec<&str> = line.split(',').collect();
        assert_eq!(fields.len(), 9, "{line}");
        let int = |idx: usize| fields[idx].parse::<i64>().expect("integer");
        let scores: Vec<f64> = fields[3..].iter().map(|field| field.parse().expect("float")).collect();
        assert!(scores.iter().all(|score| (0.0..=1.0).contains(score)), "{line}");
        let previous = export.insert(int(0), (int(1), int(2), scores));
        assert!(previous.is_none(), "status id {} exported twice", int(0));
    }
    export
}

fn parse_jsonl_export(text: &str) -> Export {
    let columns = ["toxicity", "severe_toxicity", "obscene", "threat", "insult", "identity_hate"];
    let mut export = Export::new();
    for line in text.lines() {
        let value: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        let int = |key: &str| value[key].as_i64().expect("integer");
        let scores = columns.iter().map(|column| value[column].as_f64().expect("score")).collect();
        let previous = export.insert(int("status_id"), (int("user_id"), int("status_text_id"), scores));
        assert!(previous.is_none());
    }
    export
}

fn read_export(path: &Path) -> Export {
    parse_csv_export(&std::fs::read_to_string(path).expect("the export exists"))
}

fn assert_exports_equal(found: &Export, expected: &Export) {
    assert_eq!(found.len(), expected.len(), "number of exported rows");
    for ((status_id, found), (expected_id, expected)) in found.iter().zip(expected) {
        assert_eq!(status_id, expected_id);
        assert_eq!((found.0, found.1), (expected.0, expected.1), "status {status_id}");
        for (found_score, expected_score) in found.2.iter().zip(&expected.2) {
            assert!(
                (found_score - expected_score).abs() <= SCORE_TOLERANCE,
                "status {status_id}: {:?} != {:?}",
                found.2,
                expected.2
            );
        }
    }
}

/// The fixture tweets: 62 rows, 60 status ids (one repeated with another
/// text, one repeated exactly), 48 distinct texts once de-duplicated.
const FIXTURE_STATUSES: usize = 60;
const FIXTURE_TEXTS: u64 = 48;

fn fixture_tweets() -> String {
    repo_path("fixtures/tweets.csv").display().to_string()
}

fn status_counts(dir: &Path, store: &str) -> (u64, u64) {
    let status = check_run(dir, &["--store", store, "status"], 0);
    let line = status.stdout.lines().find(|line| line.starts_with("original ")).expect("a line for original");
    let numbers: Vec<u64> = line.split_whitespace().skip(1).take(3).map(|n| n.parse().expect("count")).collect();
    (numbers[1], numbers[2])
}

#[test]
fn import_migrate_score_export_on_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    let flags = model_flags();
    let tweets = fixture_tweets();

    let import = check_run(dir, &["import", "--input", &tweets], 0);
    assert!(import.stderr.contains("62 rows read, 61 new, 1 already present, 0 rejected"), "{}", import.stderr);
    let migrate = check_run(dir, &["migrate"], 0);
    assert!(migrate.stderr.contains("48 new distinct texts, 60 new status ids"), "{}", migrate.stderr);
    assert!(migrate.stderr.contains("status 1240001000000000047: kept \"shut up you liar\""), "{}", migrate.stderr);
    assert_eq!(status_counts(dir, "sqlite:toxscore.db"), (0, FIXTURE_TEXTS));

    let score = check_run(dir, &score_args(&["--batch-size", "7"], &flags), 0);
    assert!(score.stderr.contains("scored 48 texts"), "{}", score.stderr);
    assert_eq!(status_counts(dir, "sqlite:toxscore.db"), (FIXTURE_TEXTS, 0));

    let again = check_run(dir, &score_args(&[], &flags), 0);
    assert!(again.stderr.contains("nothing to score"), "{}", again.stderr);

    check_run(dir, &["export", "--model", "original", "--output", "scores.csv"], 0);
    let export = read_export(&dir.join("scores.csv"));
    assert_eq!(export.len(), FIXTURE_STATUSES);
    // Two status ids with the same text share its id and its scores.
    let (_, text_a, scores_a) = &export[&1240001000000000012];
    let (_, text_b, scores_b) = &export[&1240001000000000014];
    assert_eq!((text_a, scores_a), (text_b, scores_b));
    assert_ne!(export[&1240001000000000001].2, export[&1240001000000000002].2);

    let stdout = check_run(dir, &["export", "--format", "jsonl"], 0);
    assert_exports_equal(&parse_jsonl_export(&stdout.stdout), &export);

    // Per user and per day, computed in the store.
    check_run(dir, &["export", "--by", "user", "--output", "users.csv"], 0);
    let users = std::fs::read_to_string(dir.join("users.csv")).expect("users.csv");
    let mut lines = users.lines();
    assert_eq!(
        lines.next(),
        Some(
            "user_id,n_statuses,avg_toxicity,avg_severe_toxicity,avg_obscene,avg_threat,avg_insult,avg_identity_hate,max_toxicity,share_toxic"
        )
    );
    let per_user: Vec<(i64, u64)> = lines
        .map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            (cells[0].parse().expect("a user id"), cells[1].parse().expect("a count"))
        })
        .collect();
    assert_eq!(per_user.iter().map(|(_, n)| n).sum::<u64>(), FIXTURE_STATUSES as u64, "each status counts once");
    let distinct_users: std::collections::BTreeSet<i64> = export.values().map(|(user, _, _)| *user).collect();
    assert_eq!(per_user.iter().map(|(user, _)| *user).collect::<std::collections::BTreeSet<_>>(), distinct_users);
    let days = check_run(dir, &["export", "--by", "day", "--format", "jsonl", "--threshold", "0.9"], 0);
    let first: serde_json::Value = serde_json::from_str(days.stdout.lines().next().expect("a day")).expect("json");
    assert!(first["day"].as_str().is_some_and(|day| day.starts_with("2020-")), "{first}");
    assert!(first.get("share_toxic").is_some() && first.get("max_toxicity").is_none(), "{first}");
    check_run(dir, &["export", "--by", "user", "--threshold", "2"], 2);

    // The joined table inside the store: created, replaced on a rerun; a
    // table the user made is left alone.
    let to_table = check_run(dir, &["export", "--to-table", "tweet_toxicity_scores"], 0);
    assert!(to_table.stderr.contains(&format!("exported {FIXTURE_STATUSES} rows")), "{}", to_table.stderr);
    check_run(dir, &["export", "--to-table", "tweet_toxicity_scores"], 0);
    let connection = rusqlite::Connection::open(dir.join("toxscore.db")).expect("open the database");
    let (rows, columns): (i64, String) = connection
        .query_row(
            "SELECT (SELECT COUNT(*) FROM tweet_toxicity_scores), \
             (SELECT group_concat(name, ',') FROM pragma_table_info('tweet_toxicity_scores'))",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .expect("read the export table");
    assert_eq!(rows as usize, FIXTURE_STATUSES);
    assert_eq!(
        columns,
        "status_id,user_id,status_text_id,toxicity,severe_toxicity,obscene,threat,insult,identity_hate"
    );
    connection
        .execute_batch("CREATE TABLE user_made (x INTEGER); INSERT INTO user_made VALUES (1);")
        .expect("a user table");
    let refused = check_run(dir, &["export", "--to-table", "user_made"], 4);
    assert!(refused.stderr.contains("already exists"), "{}", refused.stderr);
    let refused = check_run(dir, &["export", "--by", "day", "--to-table", "user_made"], 4);
    assert!(refused.stderr.contains("already exists"), "{}", refused.stderr);
    let kept: i64 = connection.query_row("SELECT COUNT(*) FROM user_made", [], |row| row.get(0)).expect("count");
    assert_eq!(kept, 1);
    // The aggregates as tables, with the columns of their CSV header.
    check_run(dir, &["export", "--by", "user", "--to-table", "user_scores"], 0);
    check_run(dir, &["export", "--by", "day", "--threshold", "0.9", "--to-table", "day_scores"], 0);
    let (n_statuses, columns): (i64, String) = connection
        .query_row(
            "SELECT (SELECT SUM(n_statuses) FROM user_scores), \
             (SELECT group_concat(name, ',') FROM pragma_table_info('day_scores'))",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .expect("read the aggregate tables");
    assert_eq!(n_statuses as usize, FIXTURE_STATUSES, "each status once");
    assert_eq!(
        columns,
        "day,n_statuses,avg_toxicity,avg_severe_toxicity,avg_obscene,avg_threat,avg_insult,avg_identity_hate,share_toxic"
    );
}

/// `import` then `score`, with no `migrate` between: `score` de-duplicates
/// what was imported, as `score --input` does, and scores it.
#[test]
fn score_after_a_bare_import_deduplicates_and_scores_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    let flags = model_flags();
    check_run(dir, &["migrate"], 0);
    let empty = check_run(dir, &score_args(&[], &flags), 0);
    assert!(empty.stderr.contains("the store holds no texts"), "{}", empty.stderr);
    check_run(dir, &["import", "--input", &fixture_tweets()], 0);
    let status = check_run(dir, &["status"], 0);
    assert!(status.stdout.contains("imported, not de-duplicated yet: 60 status ids"), "{}", status.stdout);
    // A shard run does not de-duplicate (shards run side by side): it says so.
    let shard = check_run(dir, &score_args(&["--shard", "0/2"], &flags), 0);
    assert!(shard.stderr.contains("60 imported status ids are not de-duplicated yet"), "{}", shard.stderr);
    let score = check_run(dir, &score_args(&[], &flags), 0);
    assert!(score.stderr.contains("48 new distinct texts, 60 new status ids"), "{}", score.stderr);
    assert!(score.stderr.contains("scored 48 texts"), "{}", score.stderr);
    assert_eq!(status_counts(dir, "sqlite:toxscore.db"), (FIXTURE_TEXTS, 0));
}

/// `--model` names the table a `--checkpoint`'s scores go to: a checkpoint
/// of another released model's shape filed there is said, not refused. A
/// table holding another checkpoint's scores is said before a run adds to it
/// (no export column would show the mix).
#[test]
fn scores_filed_under_another_model_or_beside_another_checkpoint_are_said() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    // The fixture BERT checkpoint, without model_flags()'s `--model original`.
    let flags: Vec<String> = model_flags().into_iter().take(6).collect();
    let input = fixture_tweets();
    let first = check_run(dir, &score_args(&["--input", &input, "--limit", "20"], &flags), 0);
    assert!(!first.stderr.contains("files these scores") && !first.stderr.contains(" holds "), "{}", first.stderr);
    let filed = check_run(dir, &score_args(&["--model", "original-small", "--limit", "5"], &flags), 0);
    assert!(
        filed.stderr.contains(
            "warning: --model original-small files these scores in toxicity_scores_original_small, but the \
             checkpoint is a BertForSequenceClassification with 6 outputs, the shape of Detoxify's `original`"
        ),
        "{}",
        filed.stderr
    );
    let same = check_run(dir, &score_args(&["--model", "original", "--limit", "5"], &flags), 0);
    assert!(!same.stderr.contains("warning"), "{}", same.stderr);
    let variant = repo_path("fixtures/models/variants/bert_extra_tensor.ckpt").display().to_string();
    let bert = repo_path("fixtures/models/bert").display().to_string();
    let mixed = check_run(dir, &["score", "--checkpoint", &variant, "--hf-config", &bert], 0);
    assert!(
        mixed
            .stderr
            .contains("warning: toxicity_scores_original holds 25 texts scored with checkpoint sha256 57246094f595"),
        "{}",
        mixed.stderr
    );
    assert!(mixed.stderr.contains("only the 23 texts without a score"), "{}", mixed.stderr);
}

/// `verify` rescores a seeded sample of the stored scores: they match the
/// checkpoint that wrote them; a changed score is named, with its text, and
/// exits 6; it never writes to the store.
#[test]
fn verify_rescores_a_sample_and_names_the_scores_that_differ() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    let flags = model_flags();
    let verify = |extra: &[&str], code: i32| {
        let mut args = vec!["verify"];
        args.extend(flags.iter().map(String::as_str));
        args.extend_from_slice(extra);
        check_run(dir, &args, code)
    };
    let missing = verify(&[], 4);
    assert!(!dir.join("toxscore.db").exists(), "verify created a store:\n{}", missing.stderr);
    check_run(dir, &score_args(&["--input", &fixture_tweets()], &flags), 0);
    let good = verify(&["--sample", "20", "--output", "sample.csv"], 0);
    assert!(good.stdout.contains("all 20 drawn scores match checkpoint 57246094f595 within 1e-4"), "{}", good.stdout);
    assert!(good.stdout.contains("57246094f595 (this checkpoint)       20"), "{}", good.stdout);
    // Texts may hold newlines: read the file as CSV.
    let records = |file: &str| -> Vec<csv::StringRecord> {
        let mut reader = csv::Reader::from_path(dir.join(file)).expect("a sample file");
        let header = reader.headers().expect("a header").clone();
        assert_eq!(
            header.iter().take(5).collect::<Vec<_>>(),
            ["status_text_id", "checkpoint_sha256", "max_abs_diff", "toxicity_stored", "toxicity_rescored"]
        );
        assert_eq!(&header[header.len() - 1], "status_text");
        reader.records().collect::<Result<_, _>>().expect("records")
    };
    let rows = records("sample.csv");
    assert_eq!(rows.len(), 20);
    for row in &rows {
        let diff: f64 = row[2].parse().expect("a number");
        assert!(diff <= SCORE_TOLERANCE, "{row:?}");
    }
    // The texts a seed draws (the rescored values may move in their last
    // bits with the threads' split of the work).
    let drawn = |file: &str| -> BTreeSet<String> { records(file).iter().map(|row| row[0].to_owned()).collect() };
    let same = verify(&["--sample", "20", "--output", "again.csv"], 0);
    assert!(same.stdout.contains("all 20 drawn"), "{}", same.stdout);
    assert_eq!(drawn("again.csv"), drawn("sample.csv"), "a seed draws the same texts");
    verify(&["--sample", "20", "--seed", "1", "--output", "other.csv"], 0);
    assert_ne!(drawn("other.csv"), drawn("sample.csv"), "another seed, other texts");

    // One stored score changed behind toxscore's back.
    let changed: i64 = rows[0][0].parse().expect("a number");
    let database = rusqlite::Connection::open(dir.join("toxscore.db")).expect("open the store");
    database
        .execute("UPDATE toxicity_scores_original SET insult = 0.99 WHERE status_text_id = ?1", [changed])
        .expect("change a score");
    drop(database);
    let bad = verify(&["--sample", "48"], 6);
    assert!(
        bad.stdout
            .contains(&format!("  text {changed} (57246094f595 (this checkpoint)): insult stored 0.990000, rescored ")),
        "{}",
        bad.stdout
    );
    assert!(bad.stdout.contains("this checkpoint's own stored scores differ from a rescoring"), "{}", bad.stdout);
    assert!(
        bad.stderr.contains("error: 1 of 48 drawn scores differ from checkpoint 57246094f595 by more than 1e-4"),
        "{}",
        bad.stderr
    );
    // Loose enough, the change passes.
    verify(&["--sample", "48", "--tolerance", "1"], 0);

    let nobody = verify(&["--scored-by", "0123"], 2);
    assert!(
        nobody.stderr.contains(
            "nothing to verify: toxicity_scores_original of sqlite:toxscore.db holds no scores of checkpoint 0123"
        ),
        "{}",
        nobody.stderr
    );
    let theirs = verify(&["--scored-by", "57246094F5", "--sample", "3"], 0);
    assert!(theirs.stdout.contains("all 3 drawn"), "{}", theirs.stdout);
    for bad in [&["--scored-by", "nobody"][..], &["--sample", "0"], &["--tolerance", "2"]] {
        let usage = verify(bad, 2);
        assert!(usage.stderr.contains(bad[0]), "{bad:?}: {}", usage.stderr);
    }
}

/// A reader that closes the pipe early is no failure: exit 0, nothing on
/// stderr, for `predict` and the other commands that print data.
#[test]
fn a_pipe_closed_early_ends_quietly_with_success() {
    use std::io::Read;
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    let flags = model_flags();
    let mut args = vec!["predict".to_owned()];
    args.extend(flags.iter().cloned());
    // Enough lines to fill the pipe's buffer many times over.
    let texts: Vec<String> = (0..20_000).map(|idx| format!("text number {idx} you liar")).collect();
    std::fs::write(dir.join("texts.txt"), texts.join("\n")).expect("write texts");
    args.extend(["--input".to_owned(), "texts.txt".to_owned()]);
    let mut child =
        toxcli(dir).args(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn toxcli predict");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut first = [0u8; 64];
    stdout.read_exact(&mut first).expect("the first scores");
    assert!(first.starts_with(b"{\"text\":"), "{}", String::from_utf8_lossy(&first));
    drop(stdout);
    let output = child.wait_with_output().expect("wait for toxcli");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("error"), "{stderr}");

    check_run(dir, &score_args(&["--input", &fixture_tweets()], &flags), 0);
    for command in [&["export"][..], &["status"][..]] {
        let mut child = toxcli(dir).args(command).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
        drop(child.stdout.take());
        let output = child.wait_with_output().expect("wait");
        assert_eq!(output.status.code(), Some(0), "{command:?}: {}", String::from_utf8_lossy(&output.stderr));
    }
}

/// The three SentencePiece models, each loaded from its `.model` file,
/// through `predict` (every fixture text on one line, in order, scores equal
/// to PyTorch's) and through `score` and `export` (the model's own table and
/// columns: `multilingual` has the unbiased ones).
#[test]
fn sentencepiece_models_predict_score_and_export_through_the_cli() {
    let unbiased = "toxicity,severe_toxicity,obscene,identity_attack,insult,threat,sexual_explicit";
    let original = "toxicity,severe_toxicity,obscene,threat,insult,identity_hate";
    for (fixture, tokenizer, model, columns) in [
        ("xlmr", "sentencepiece.bpe.model", "multilingual", unbiased),
        ("albert-original", "spiece.model", "original-small", original),
        ("albert-unbiased", "spiece.model", "unbiased-small", unbiased),
    ] {
        let dir = tempfile::tempdir().expect("temp dir");
        let dir = dir.path();
        let folder = repo_path("fixtures/models").join(fixture);
        let flags: Vec<String> = if fixture == "albert-unbiased" {
            // As Detoxify's huggingface_config_path: one folder gives the
            // config and the tokenizer, the checkpoint lying elsewhere.
            let moved = dir.join("moved.ckpt");
            std::fs::copy(folder.join("checkpoint.ckpt"), &moved).expect("copy the checkpoint");
            vec!["--checkpoint".into(), moved.display().to_string(), "--hf-config".into(), folder.display().to_string()]
        } else {
            vec![
                "--checkpoint".into(),
                folder.join("checkpoint.ckpt").display().to_string(),
                "--hf-config".into(),
                folder.join("config.json").display().to_string(),
                "--tokenizer".into(),
                folder.join(tokenizer).display().to_string(),
            ]
        };
        let reference: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(folder.join("reference.json")).expect("reference.json"))
                .expect("valid reference.json");
        let names: Vec<&str> =
            reference["detoxify_classes"].as_array().expect("names").iter().filter_map(|name| name.as_str()).collect();
        // Texts that fit on one line; more than the first chunk of 8.
        let texts: Vec<(usize, &str)> = reference["texts"]
            .as_array()
            .expect("texts")
            .iter()
            .enumerate()
            .filter_map(|(idx, text)| Some((idx, text.as_str()?)))
            .filter(|(_, text)| !text.contains(['\n', '\r']))
            .collect();
        assert!(texts.len() > 60, "{fixture}: {} one-line texts", texts.len());
        let input = dir.join("texts.txt");
        let lines: Vec<&str> = texts.iter().map(|(_, text)| *text).collect();
        std::fs::write(&input, lines.join("\n") + "\n").expect("write texts");
        let mut args = vec!["predict"];
        args.extend(flags.iter().map(String::as_str));
        args.extend(["--input", input.to_str().expect("UTF-8 path")]);
        let predicted = check_run(dir, &args, 0);
        let rows: Vec<serde_json::Value> =
            predicted.stdout.lines().map(|line| serde_json::from_str(line).expect("a JSON line")).collect();
        assert_eq!(rows.len(), texts.len(), "{fixture}");
        for (row, (text_idx, text)) in rows.iter().zip(&texts) {
            assert_eq!(row["text"].as_str(), Some(*text), "{fixture}: output out of order");
            for (class_idx, name) in names.iter().enumerate() {
                let ours = row[*name].as_f64().unwrap_or_else(|| panic!("{fixture}: no {name} in {row}"));
                let theirs = reference["probabilities"][*text_idx][class_idx].as_f64().expect("a probability");
                assert!((ours - theirs).abs() <= 1e-5, "{fixture} text {text_idx} {name}: {ours} vs {theirs}");
            }
        }

        let tweets = fixture_tweets();
        let mut args = vec!["score", "--model", model, "--input", tweets.as_str()];
        args.extend(flags.iter().map(String::as_str));
        let score = check_run(dir, &args, 0);
        assert!(score.stderr.contains(&format!("scored {FIXTURE_TEXTS} texts")), "{fixture}: {}", score.stderr);
        let export = check_run(dir, &["export", "--model", model, "--format", "csv"], 0);
        let mut lines = export.stdout.lines();
        assert_eq!(lines.next(), Some(format!("status_id,user_id,status_text_id,{columns}").as_str()), "{fixture}");
        assert_eq!(lines.count(), FIXTURE_STATUSES, "{fixture}");
    }
}

#[test]
fn memory_and_jsonl_runs_export_the_same_scores_as_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    let flags = model_flags();
    let tweets = fixture_tweets();

    check_run(dir, &score_args(&["--input", &tweets, "--export", "sqlite.csv"], &flags), 0);
    let sqlite = read_export(&dir.join("sqlite.csv"));
    assert_eq!(sqlite.len(), FIXTURE_STATUSES);

    let mut memory_args = vec!["--store", "memory"];
    memory_args.extend(score_args(&["--input", &tweets, "--export", "memory.csv"], &flags));
    let memory_run = check_run(dir, &memory_args, 0);
    assert!(memory_run.stderr.contains("scored 48 texts"), "{}", memory_run.stderr);
    assert_exports_equal(&read_export(&dir.join("memory.csv")), &sqlite);

    let jsonl = repo_path("fixtures/tweets.jsonl").display().to_string();
    let mut jsonl_args = vec!["--store", "sqlite:from_jsonl.db"];
    jsonl_args.extend(score_args(&["--input", &jsonl, "--export", "jsonl.csv"], &flags));
    check_run(dir, &jsonl_args, 0);
    assert_exports_equal(&read_export(&dir.join("jsonl.csv")), &sqlite);
}

/// Writes `n_texts` distinct generated texts (and a few duplicate statuses)
/// as a tweets CSV; returns its path.
fn generated_corpus(dir: &Path, n_texts: usize) -> PathBuf {
    const WORDS: &[&str] = &[
        "you",
        "are",
        "a",
        "the",
        "stupid",
        "lovely",
        "day",
        "idiot",
        "thanks",
        "for",
        "sharing",
        "this",
        "is",
        "awful",
        "great",
        "news",
        "😂",
        "#covid",
        "@someone",
        "https://t.co/x1",
        "never",
        "again",
        "what",
        "why",
        "café",
        "liar",
        "friends",
        "stay",
        "home",
        "safe",
        "hate",
        "love",
    ];
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut csv = String::from("status_id,user_id,status_text\n");
    for idx in 0..n_texts {
        let n_words = 3 + (next() % 40) as usize;
        let mut text = format!("t{idx}");
        for _ in 0..n_words {
            text.push(' ');
            text.push_str(WORDS[(next() % WORDS.len() as u64) as usize]);
        }
        csv.push_str(&format!("{},{},{}\n", 1_000_000 + idx, next() % 5000, text));
        if idx % 10 == 0 {
            // A retweet: the same text under another status id.
            csv.push_str(&format!("{},{},{}\n", 9_000_000 + idx, next() % 5000, text));
        }
    }
    let path = dir.join("corpus.csv");
    std::fs::write(&path, csv).expect("write the corpus");
    path
}

fn scored_rows(database: &Path) -> (u64, u64) {
    let connection = rusqlite::Connection::open(database).expect("open the database");
    connection
        .query_row("SELECT COUNT(*), COUNT(DISTINCT status_text_id) FROM toxicity_scores_original", [], |row| {
            Ok((row.get::<_, i64>(0)? as u64, row.get::<_, i64>(1)? as u64))
        })
        .unwrap_or((0, 0))
}

fn spawn_score(dir: &Path, store: &str, extra: &[&str]) -> Child {
    let flags = model_flags();
    let mut args = vec!["--store", store];
    args.extend(score_args(extra, &flags));
    toxcli(dir).args(&args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("spawn toxcli")
}

/// Waits until the scorer has committed more than `threshold` scores (or has
/// exited); returns whether it is still running.
fn wait_for_commits(child: &mut Child, database: &Path, threshold: u64) -> bool {
    let give_up = Instant::now() + Duration::from_secs(300);
    loop {
        if child.try_wait().expect("poll the child").is_some() {
            return false;
        }
        if scored_rows(database).0 > threshold {
            return true;
        }
        assert!(Instant::now() < give_up, "the scorer made no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn import_and_migrate(dir: &Path, store: &str, corpus: &Path) {
    let corpus = corpus.display().to_string();
    check_run(dir, &["--store", store, "import", "--input", &corpus], 0);
    check_run(dir, &["--store", store, "migrate"], 0);
}

#[test]
fn kill_9_at_random_points_then_resume_scores_everything_exactly_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    let n_texts = 20_000;
    let corpus = generated_corpus(dir, n_texts);

    // The uninterrupted reference.
    import_and_migrate(dir, "sqlite:reference.db", &corpus);
    let mut reference = spawn_score(dir, "sqlite:reference.db", &["--export", "reference.csv"]);
    assert!(reference.wait().expect("reference run").success());
    let reference_export = read_export(&dir.join("reference.csv"));
    assert_eq!(scored_rows(&dir.join("reference.db")), (n_texts as u64, n_texts as u64));

    import_and_migrate(dir, "sqlite:killed.db", &corpus);
    let database = dir.join("killed.db");
    let mut random: u64 = 0x2545_F491_4F6C_DD1D;
    let mut kills = 0;
    for _ in 0..5 {
        random = random.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let already = scored_rows(&database).0;
        let threshold = already + (random >> 33) % 4000;
        let mut child = spawn_score(dir, "sqlite:killed.db", &[]);
        if wait_for_commits(&mut child, &database, threshold) {
            child.kill().expect("SIGKILL the scorer");
            kills += 1;
        }
        child.wait().expect("reap the scorer");
        let (rows, distinct) = scored_rows(&database);
        assert_eq!(rows, distinct, "a text has two score rows after a kill");
    }
    assert!(kills >= 3, "only {kills} of the kills landed mid-run");
    let mut last = spawn_score(dir, "sqlite:killed.db", &["--export", "resumed.csv"]);
    assert!(last.wait().expect("final run").success());

    assert_eq!(scored_rows(&database), (n_texts as u64, n_texts as u64));
    assert_exports_equal(&read_export(&dir.join("resumed.csv")), &reference_export);
}

#[test]
fn ctrl_c_commits_what_was_scored_and_a_rerun_finishes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    let n_texts = 20_000;
    let corpus = generated_corpus(dir, n_texts);
    import_and_migrate(dir, "sqlite:toxscore.db", &corpus);
    let database = dir.join("toxscore.db");

    let mut child = spawn_score(dir, "sqlite:toxscore.db", &[]);
    assert!(wait_for_commits(&mut child, &database, 0), "the run ended before it could be interrupted");
    let signal = Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("run kill");
    assert!(signal.success());
    let output = child.wait_with_output().expect("wait for the scorer");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("run the same command again to resume"), "{stderr}");
    let (rows, distinct) = scored_rows(&database);
    assert_eq!(rows, distinct);
    assert!(rows < n_texts as u64, "{rows} scored: the interrupt came too late to test anything");
    let scored_line = format!("the {rows} scores of this run are committed");
    assert!(stderr.contains(&scored_line), "expected {scored_line:?} in:\n{stderr}");

    let mut rerun = spawn_score(dir, "sqlite:toxscore.db", &[]);
    assert!(rerun.wait().expect("rerun").success());
    assert_eq!(scored_rows(&database), (n_texts as u64, n_texts as u64));
}

#[test]
fn two_shards_together_score_everything_exactly_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    let n_texts = 3_000;
    let corpus = generated_corpus(dir, n_texts);
    import_and_migrate(dir, "sqlite:toxscore.db", &corpus);

    let shards: Vec<Child> =
        ["0/2", "1/2"].iter().map(|shard| spawn_score(dir, "sqlite:toxscore.db", &["--shard", shard])).collect();
    let mut total = 0u64;
    for shard in shards {
        let output = shard.wait_with_output().expect("wait for a shard");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        let scored: u64 = stderr
            .lines()
            .find_map(|line| line.strip_prefix("scored ")?.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no `scored N texts` line in:\n{stderr}"));
        assert!(scored > n_texts as u64 / 3, "one shard scored only {scored} of {n_texts}");
        total += scored;
    }
    assert_eq!(total, n_texts as u64, "the shards together scored each text once");
    assert_eq!(scored_rows(&dir.join("toxscore.db")), (n_texts as u64, n_texts as u64));
}

#[test]
fn a_second_scorer_on_the_same_work_refuses_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    let n_texts = 20_000;
    let corpus = generated_corpus(dir, n_texts);
    import_and_migrate(dir, "sqlite:toxscore.db", &corpus);
    let database = dir.join("toxscore.db");

    let mut first = spawn_score(dir, "sqlite:toxscore.db", &[]);
    assert!(wait_for_commits(&mut first, &database, 0), "the first run ended before the second started");
    let flags = model_flags();
    for extra in [&[][..], &["--shard", "0/2"][..]] {
        let second = run(toxcli(dir).args(["--store", "sqlite:toxscore.db"]).args(score_args(extra, &flags)));
        assert_eq!(second.code, 4, "{}", second.stderr);
        assert!(
            second.stderr.contains("another `toxcli score` is already scoring model original"),
            "{}",
            second.stderr
        );
    }
    assert!(first.wait().expect("the first run").success());
    assert_eq!(scored_rows(&database), (n_texts as u64, n_texts as u64));
    // The lock went with the process: a new run starts (and finds nothing).
    let again = check_run(dir, &score_args(&[], &flags), 0);
    assert!(again.stderr.contains("nothing to score"), "{}", again.stderr);
}

/// One bad tweets file of `fixtures/bad/tweets`: the outcome of a default
/// import (exit code, rows kept, what stderr says) and of a `--strict` one.
struct BadCase {
    file: &'static str,
    default_code: i32,
    kept_rows: u64,
    message: &'static str,
    strict_code: i32,
}

const BAD_CASES: &[BadCase] = &[
    BadCase {
        file: "invalid_utf8.csv",
        default_code: 0,
        kept_rows: 2,
        message: "invalid_utf8.csv:3: status_text is not valid UTF-8",
        strict_code: 3,
    },
    BadCase {
        file: "nul_byte.csv",
        default_code: 0,
        kept_rows: 2,
        message: "nul_byte.csv:3: status_text contains a NUL byte",
        strict_code: 3,
    },
    BadCase { file: "control_chars.csv", default_code: 0, kept_rows: 3, message: "0 rejected", strict_code: 0 },
    BadCase {
        file: "empty_text.csv",
        default_code: 0,
        kept_rows: 2,
        message: "empty_text.csv:3: status_text is empty",
        strict_code: 3,
    },
    BadCase { file: "long_text.csv", default_code: 0, kept_rows: 3, message: "0 rejected", strict_code: 0 },
    BadCase {
        file: "missing_column.csv",
        default_code: 3,
        kept_rows: 0,
        message: "missing_column.csv:1: the header has no column \"user_id\"",
        strict_code: 3,
    },
    BadCase {
        file: "missing_field.csv",
        default_code: 0,
        kept_rows: 2,
        message: "missing_field.csv:3: expected 4 fields, found 2",
        strict_code: 3,
    },
    BadCase {
        file: "non_numeric_id.csv",
        default_code: 0,
        kept_rows: 2,
        message: "non_numeric_id.csv:3: status_id \"12abc\" is not an integer",
        strict_code: 3,
    },
    BadCase {
        file: "negative_id.csv",
        default_code: 0,
        kept_rows: 2,
        message: "negative_id.csv:3: status_id -2 is negative",
        strict_code: 3,
    },
    BadCase {
        file: "bad_timestamp.csv",
        default_code: 0,
        kept_rows: 2,
        message: "bad_timestamp.csv:3: created_at \"yesterday-ish\" is not a timestamp",
        strict_code: 3,
    },
    BadCase {
        file: "broken_quoting.csv",
        default_code: 0,
        kept_rows: 2,
        message: "broken_quoting.csv:4: a quoted field is never closed",
        strict_code: 3,
    },
    BadCase { file: "conflicting_texts.csv", default_code: 0, kept_rows: 4, message: "0 rejected", strict_code: 0 },
    BadCase {
        file: "empty.csv",
        default_code: 3,
        kept_rows: 0,
        message: "empty.csv is empty (0 bytes)",
        strict_code: 3,
    },
    BadCase {
        file: "header_only.csv",
        default_code: 3,
        kept_rows: 0,
        message: "header_only.csv has a header line but no rows",
        strict_code: 3,
    },
    BadCase {
        file: "not_object.jsonl",
        default_code: 0,
        kept_rows: 2,
        message: "not_object.jsonl:2: expected a JSON object, found an array",
        strict_code: 3,
    },
    BadCase {
        file: "invalid_json.jsonl",
        default_code: 0,
        kept_rows: 2,
        message: "invalid_json.jsonl:2: not valid JSON",
        strict_code: 3,
    },
    BadCase {
        file: "invalid_utf8.jsonl",
        default_code: 0,
        kept_rows: 2,
        message: "invalid_utf8.jsonl:2: the line is not valid UTF-8",
        strict_code: 3,
    },
    BadCase {
        file: "empty.jsonl",
        default_code: 3,
        kept_rows: 0,
        message: "empty.jsonl is empty (0 bytes)",
        strict_code: 3,
    },
];

#[test]
fn bad_tweet_files_are_reported_skipped_or_fatal_under_strict() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    let bad_dir = repo_path("fixtures/bad/tweets");
    let listed: std::collections::BTreeSet<&str> = BAD_CASES.iter().map(|case| case.file).collect();
    for entry in std::fs::read_dir(&bad_dir).expect("fixtures/bad/tweets") {
        let name = entry.expect("an entry").file_name().to_string_lossy().into_owned();
        if name.ends_with(".csv") || name.ends_with(".jsonl") {
            assert!(listed.contains(name.as_str()), "{name} has no case in BAD_CASES");
        }
    }
    for (idx, case) in BAD_CASES.iter().enumerate() {
        let input = bad_dir.join(case.file).display().to_string();
        let store = format!("sqlite:default_{idx}.db");
        let default = check_run(dir, &["--store", &store, "import", "--input", &input], case.default_code);
        assert!(
            default.stderr.contains(case.message),
            "{}: expected {:?} in:\n{}",
            case.file,
            case.message,
            default.stderr
        );
        if case.default_code == 0 {
            let rejected = if case.message == "0 rejected" { 0 } else { 1 };
            // Rows read: the rejected ones too.
            let read = case.kept_rows + rejected;
            let noun = if read == 1 { "row" } else { "rows" };
            let summary = format!("{read} {noun} read, {} new, 0 already present, {rejected} rejected", case.kept_rows);
            assert!(default.stderr.contains(&summary), "{}: expected {summary:?} in:\n{}", case.file, default.stderr);
        }

        let strict_store = format!("sqlite:strict_{idx}.db");
        let strict =
            check_run(dir, &["--store", &strict_store, "import", "--strict", "--input", &input], case.strict_code);
        if case.strict_code != 0 {
            assert!(strict.stderr.contains(case.message), "{}: --strict: {}", case.file, strict.stderr);
            // Nothing was written: a migrate finds no tweets to join.
            let migrate = run(toxcli(dir).args(["--store", &strict_store, "migrate"]));
            assert_eq!(migrate.code, 0, "{}", migrate.stderr);
            assert!(
                migrate.stderr.contains("0 new distinct texts, 0 new status ids"),
                "{}: {}",
                case.file,
                migrate.stderr
            );
        }
    }

    // The conflicting texts are reported by the de-duplication.
    let migrate = check_run(dir, &["--store", "sqlite:default_11.db", "migrate"], 0);
    assert!(migrate.stderr.contains("status 2: kept \"first text\", ignored \"second text\""), "{}", migrate.stderr);
    // The 1 MB text is scored (truncated to 512 tokens), not rejected.
    let flags = model_flags();
    let mut args = vec!["--store", "sqlite:default_4.db"];
    args.extend(score_args(&[], &flags));
    check_run(dir, &["--store", "sqlite:default_4.db", "migrate"], 0);
    let score = check_run(dir, &args, 0);
    assert!(score.stderr.contains("scored 3 texts"), "{}", score.stderr);
}

#[test]
fn the_version_names_the_devices_of_the_build() {
    let dir = tempfile::tempdir().expect("temp dir");
    let long = check_run(dir.path(), &["--version"], 0);
    let version = env!("CARGO_PKG_VERSION");
    let devices = long
        .stdout
        .strip_prefix(&format!("toxcli {version}\ndevices: "))
        .and_then(|rest| rest.strip_suffix('\n'))
        .unwrap_or_else(|| panic!("unexpected --version output {:?}", long.stdout));
    let devices: Vec<&str> = devices.split(", ").collect();
    // The CPU first; a GPU feature of this package is listed (another
    // package of the workspace may add one to toxmodel: not checked).
    assert_eq!(devices[0], "cpu", "{devices:?}");
    if cfg!(feature = "wgpu") {
        assert!(devices.contains(&"wgpu"), "{devices:?}");
    }
    let short = check_run(dir.path(), &["-V"], 0);
    assert_eq!(short.stdout, format!("toxcli {version}\n"));
}

#[test]
fn usage_and_model_errors_have_their_exit_codes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    let tweets = fixture_tweets();
    let flags = model_flags();

    let check = |args: &[&str], code: i32, message: &str| {
        let result = check_run(dir, args, code);
        assert!(result.stderr.contains(message), "toxcli {args:?}: expected {message:?} in:\n{}", result.stderr);
        assert!(!result.stderr.contains("stack backtrace"), "{}", result.stderr);
    };
    check(&["--store", "postgres:x", "status"], 2, "expected sqlite:PATH, memory, or bigquery");
    check(&["--store", "bigquery:my-project.bad`name", "status"], 2, "only letters, digits and underscores");
    check(&["--store", "sqlite:no/such/folder/x.db", "status"], 2, "does not exist");
    check(&["score", "--shard", "2/2"], 2, "the index must be below the count");
    check(&["score", "--shard", "0/2", "--input", &tweets], 2, "cannot be used with");
    check(&["score", "--batch-size", "0"], 2, "--batch-size");
    // Settled while the arguments are parsed, before any work: usage errors.
    check(&["predict", "--device", "gpu", "x"], 2, "unknown device; expected one of cpu, ndarray, wgpu");
    // No test build has CUDA (no NVIDIA GPU to run it on; CI only checks it).
    check(&["predict", "--device", "cuda:1", "x"], 2, "rebuild with the Cargo feature `cuda`");
    check(&["predict", "--device", "cuda:1", "x"], 2, "(`cargo install --path crates/toxcli --features cuda`)");
    check(&["score", "--device", "wgpu:x"], 2, "\"x\" is not a device number");
    check(&["score", "--precision", "f8"], 2, "unknown precision \"f8\"");
    let mut half = vec!["predict"];
    half.extend(flags.iter().map(String::as_str));
    half.extend(["--precision", "f16", "x"]);
    // f16 drifts over 1e-3 (docs/gpu.md): only `f16-experiment` builds parse it.
    check(&half, 2, if cfg!(feature = "f16-experiment") { "GPUs only" } else { "\"f16\" is not offered" });
    check(&["--score-table", "old_scores", "status"], 2, "name the model, as MODEL=old_scores");
    check(&["--tweets-table", "a.b.c.d", "status"], 2, "--tweets-table");
    check(&["--tweets-table", "p.d.t", "status"], 2, "are for");
    check(&["export", "--model", "nope"], 2, "unknown model \"nope\"");
    check(&["import", "--input", "no-such-file.csv"], 3, "cannot open no-such-file.csv");
    check(&["status"], 4, "no store at toxscore.db: the file does not exist (`toxcli import --input FILE`");
    // Offline (as `toxcli` runs here) with an empty cache: how to get the model.
    check(
        &["predict", "x"],
        5,
        "download the model first with `toxcli models download original`, or pass --checkpoint",
    );

    let mut missing = score_args(&[], &flags);
    let checkpoint_idx = missing.iter().position(|arg| *arg == "--checkpoint").expect("flag") + 1;
    missing[checkpoint_idx] = "no-such.ckpt";
    check(&missing, 5, "no-such.ckpt");
    let not_a_zip = repo_path("fixtures/bad/checkpoints/not_a_zip.ckpt").display().to_string();
    let mut bad = score_args(&[], &flags);
    bad[checkpoint_idx] = &not_a_zip;
    check(&bad, 5, "not_a_zip.ckpt");

    let env = run(toxcli(dir).args(["score", "--input", &tweets]).args(&flags).env("BATCH_SIZE", "zero"));
    assert_eq!(env.code, 2, "{}", env.stderr);
    assert!(env.stderr.contains("zero"), "{}", env.stderr);
    let help = check_run(dir, &["--help"], 0);
    for variable in [
        "MODEL_NAME",
        "BIGQUERY_DATASET_NAME",
        "BIGQUERY_PROJECT_NAME",
        "LIMIT",
        "BATCH_SIZE",
        "MAX_THREADS",
        "GOOGLE_APPLICATION_CREDENTIALS",
    ] {
        assert!(help.stdout.contains(variable), "--help does not document {variable}");
    }
}

#[test]
fn limit_and_environment_defaults_apply() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    let tweets = fixture_tweets();
    let flags = model_flags();
    let first =
        run(toxcli(dir).args(score_args(&["--input", &tweets], &flags)).env("LIMIT", "10").env("BATCH_SIZE", "4"));
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(first.stderr.contains("scored 10 texts"), "{}", first.stderr);
    assert!(first.stderr.contains("batch size 4"), "{}", first.stderr);
    // Set but empty means unset, as a job template may leave it.
    let empty =
        run(toxcli(dir).args(score_args(&["--limit", "5"], &flags)).env("BATCH_SIZE", "").env("MAX_THREADS", ""));
    assert_eq!(empty.code, 0, "{}", empty.stderr);
    assert!(empty.stderr.contains("batch size 32"), "{}", empty.stderr);
    let second = check_run(dir, &score_args(&["--limit", "5"], &flags), 0);
    assert!(second.stderr.contains("scored 5 texts"), "{}", second.stderr);
    assert_eq!(status_counts(dir, "sqlite:toxscore.db"), (20, FIXTURE_TEXTS - 20));
}

#[test]
fn bigquery_end_to_end_on_the_emulator() {
    let endpoint = std::env::var("TOXSCORE_BIGQUERY_EMULATOR").expect(
        "TOXSCORE_BIGQUERY_EMULATOR is not set: run the tests with `cargo xtask test`, which starts the BigQuery emulator",
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    let flags = model_flags();
    let tweets = fixture_tweets();
    let dataset = format!("bigquery:test-project.toxcli_e2e_{}", std::process::id());
    let bigquery = |args: &[&str], code: i32| -> Run {
        let mut all = vec!["--store", dataset.as_str(), "--bigquery-endpoint", endpoint.as_str()];
        all.extend_from_slice(args);
        check_run(dir, &all, code)
    };
    bigquery(&["import", "--input", &tweets], 0);
    let migrate = bigquery(&["migrate"], 0);
    assert!(migrate.stderr.contains("48 new distinct texts"), "{}", migrate.stderr);
    let score = bigquery(&score_args(&[], &flags), 0);
    assert!(score.stderr.contains("scored 48 texts"), "{}", score.stderr);
    let again = bigquery(&score_args(&[], &flags), 0);
    assert!(again.stderr.contains("nothing to score"), "{}", again.stderr);
    bigquery(&["export", "--output", "bigquery.csv"], 0);

    check_run(dir, &score_args(&["--input", &tweets, "--export", "sqlite.csv"], &flags), 0);
    assert_exports_equal(&read_export(&dir.join("bigquery.csv")), &read_export(&dir.join("sqlite.csv")));
}

/// Serves `body` with status 200 to every GET on a loopback port, for as
/// long as the test runs; returns the base URL.
fn serve_forever(body: Vec<u8>) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone the stream"));
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n_read| n_read > 0) && line != "\r\n" {
                line.clear();
            }
            let header = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            let _ = stream.write_all(header.as_bytes()).and_then(|()| stream.write_all(&body));
        }
    });
    url
}

#[test]
fn a_download_whose_hash_does_not_match_is_refused_and_not_kept() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    // The fixture checkpoint is a valid Detoxify file, but not the released
    // `original` (its SHA-256 does not start with c1212f89).
    let url = serve_forever(std::fs::read(repo_path("fixtures/models/bert/checkpoint.ckpt")).expect("fixture"));
    let download = run(toxcli(dir)
        .args(["models", "download", "original"])
        .env("TOXSCORE_RELEASE_BASE_URL", &url)
        .env("TOXSCORE_TOKENIZER_BASE_URL", &url));
    assert_eq!(download.code, 5, "{}", download.stderr);
    assert!(download.stderr.contains("c1212f89"), "{}", download.stderr);
    let cached = dir.join("cache/original");
    let leftovers: Vec<_> = std::fs::read_dir(&cached)
        .map(|entries| entries.filter_map(Result::ok).map(|entry| entry.file_name()).collect())
        .unwrap_or_default();
    assert!(
        leftovers.iter().all(|name| !name.to_string_lossy().ends_with(".ckpt")),
        "a checkpoint was kept: {leftovers:?}"
    );
    let list = check_run(dir, &["models", "list"], 0);
    let original = list.stdout.lines().find(|line| line.starts_with("original ")).expect("a line for original");
    assert!(original.split_whitespace().nth(1) == Some("no"), "{original}");
    let verify = check_run(dir, &["models", "verify", "original"], 5);
    assert!(verify.stderr.contains("toxic_original-c1212f89.ckpt"), "{}", verify.stderr);
    check_run(dir, &["models", "download", "nope"], 2);

    // A file in torch hub's folder under the released name is Detoxify's
    // download only if it verifies: this one does not.
    let hub = dir.join("torch/hub/checkpoints");
    std::fs::create_dir_all(&hub).expect("torch hub folder");
    std::fs::copy(repo_path("fixtures/models/bert/checkpoint.ckpt"), hub.join("toxic_original-c1212f89.ckpt"))
        .expect("a file under the released name");
    let list = check_run(dir, &["models", "list"], 0);
    assert!(list.stdout.contains(&format!("torch hub: {} (Detoxify's downloads", hub.display())), "{}", list.stdout);
    let original = list.stdout.lines().find(|line| line.starts_with("original ")).expect("a line for original");
    assert!(original.split_whitespace().nth(1) == Some("no"), "{original}");
    let verify = check_run(dir, &["models", "verify", "original"], 5);
    assert!(verify.stderr.contains("verifying model original in torch hub's folder"), "{}", verify.stderr);
    assert!(
        verify.stderr.contains(&hub.join("toxic_original-c1212f89.ckpt").display().to_string()),
        "{}",
        verify.stderr
    );
}

/// A disk that fills up mid-run: the process may write no more than a fixed
/// size to any file (`ulimit -f`, with SIGXFSZ ignored so that writes fail
/// with EFBIG as on a full disk instead of killing the process). The scorer
/// must fail with a store error, leave the database readable, and a rerun
/// with room must finish with every text scored exactly once.
#[test]
fn a_full_disk_fails_cleanly_and_the_next_run_resumes() {
    let dir = tempfile::tempdir().unwrap();
    // 4,000 distinct texts of ~300 bytes: a database of a few megabytes.
    let mut csv = String::from("status_id,user_id,status_text\n");
    for idx in 0..4000 {
        let text = format!("tweet number {idx} {}", "padding words to make the row longer ".repeat(8));
        csv.push_str(&format!("{},{},\"{}\"\n", 1_000 + idx, idx % 97, text));
    }
    std::fs::write(dir.path().join("tweets.csv"), csv).unwrap();
    let flags = model_flags();
    let mut args = score_args(&["--input", "tweets.csv"], &flags);
    args.splice(0..0, ["--store", "sqlite:full.db"]);

    // bash's `ulimit -f` counts 1024-byte blocks: 600 KB per file.
    let quoted: Vec<String> = args.iter().map(|arg| format!("'{arg}'")).collect();
    let script = format!("trap '' XFSZ; ulimit -f 600; exec '{}' {}", env!("CARGO_BIN_EXE_toxcli"), quoted.join(" "));
    let template = toxcli(dir.path());
    let mut command = Command::new("bash");
    command.current_dir(dir.path()).arg("-c").arg(&script);
    for (key, value) in template.get_envs() {
        match value {
            Some(value) => command.env(key, value),
            None => command.env_remove(key),
        };
    }
    let full = run(&mut command);
    assert_eq!(full.code, 4, "a full disk is a store error\nstderr:\n{}", full.stderr);
    assert!(!full.stderr.contains("panicked"), "{}", full.stderr);
    assert!(
        // ENOSPC reads "database or disk is full"; the file-size limit used
        // here (EFBIG) reads "disk I/O error".
        full.stderr.contains("disk is full") || full.stderr.contains("disk I/O error"),
        "the message says the disk failed:\n{}",
        full.stderr
    );

    // The database is still readable.
    check_run(dir.path(), &["--store", "sqlite:full.db", "status"], 0);

    // With room again, the same command finishes the job.
    check_run(dir.path(), &args, 0);
    let status = check_run(dir.path(), &["--store", "sqlite:full.db", "status"], 0);
    assert!(status.stdout.contains("distinct texts: 4000"), "{}", status.stdout);
    let export = check_run(dir.path(), &["--store", "sqlite:full.db", "export", "--model", "original"], 0);
    assert_eq!(export.stdout.lines().count(), 1 + 4000, "one row per status id, each scored once");
}
