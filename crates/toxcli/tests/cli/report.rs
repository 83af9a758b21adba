//! `toxcli report` on the fixture store, opened in headless Chromium
//! (Debian's `chromium` package, which `.ci/run` installs; another browser
//! with the same flags through `TOXSCORE_CHROMIUM`): the page loads without
//! a console message, its charts and tables are in the DOM the browser
//! built, and its screenshot is not blank.
//!
//! `TOXSCORE_REFRESH_EXAMPLE_REPORT=1` also copies the page and its
//! screenshot to `docs/report/`, the example the README links to.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{check_run, fixture_tweets, model_flags, repo_path, score_args};

/// A tweet whose text is markup: the page must show it, not run it.
const MARKUP: &str = "<img src=x onerror=alert(1)> <b>bold</b> & \"quoted\"";

const CLASSES: [&str; 6] = ["toxicity", "severe_toxicity", "obscene", "threat", "insult", "identity_hate"];

/// The browser: `TOXSCORE_CHROMIUM`, else the first of Debian's and other
/// usual names on the PATH.
fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("TOXSCORE_CHROMIUM") {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"] {
        for folder in std::env::split_paths(&path) {
            let candidate = folder.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!("no Chromium on the PATH: install Debian's chromium package (.ci/run does), or set TOXSCORE_CHROMIUM");
}

struct Browser {
    stdout: Vec<u8>,
    stderr: String,
}

/// Runs headless Chromium on `page` with `args` (as root it needs
/// `--no-sandbox`; a profile folder of its own keeps parallel runs apart).
fn browse(dir: &Path, page: &Path, args: &[&str]) -> Browser {
    let profile = dir.join(format!("chromium-profile-{}", args.len()));
    let output = Command::new(chromium())
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars"])
        .args(["--enable-logging=stderr", "--v=0"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .env("HOME", dir)
        .output()
        .expect("chromium starts");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "chromium {args:?} failed: {}\n{stderr}", output.status);
    Browser { stdout: output.stdout, stderr }
}

/// The console messages in Chromium's log (`INFO:CONSOLE...`): a script
/// error, a refused resource, anything the page said.
fn console_messages(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|line| line.contains(":CONSOLE")).collect()
}

/// Width, height and RGBA pixels of a PNG.
fn decode_png(path: &Path) -> (u32, u32, Vec<[u8; 4]>) {
    let file = std::fs::File::open(path).expect("the screenshot exists");
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::normalize_to_color8() | png::Transformations::ALPHA);
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buffer = vec![0; reader.output_buffer_size().expect("a size")];
    let info = reader.next_frame(&mut buffer).expect("a frame");
    let channels = info.color_type.samples();
    let pixels = buffer[..info.buffer_size()]
        .chunks(channels)
        .map(|pixel| match pixel {
            [r, g, b, a] => [*r, *g, *b, *a],
            [gray, alpha] => [*gray, *gray, *gray, *alpha],
            other => panic!("unexpected pixel {other:?}"),
        })
        .collect();
    (info.width, info.height, pixels)
}

#[test]
fn the_report_of_the_fixture_store_renders_in_headless_chromium() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    let flags = model_flags();
    check_run(dir, &["import", "--input", &fixture_tweets()], 0);
    let markup = dir.join("markup.jsonl");
    let row = serde_json::json!({"status_id": "1", "user_id": "101", "status_text": MARKUP, "created_at": "2020-03-19T10:00:00Z"});
    std::fs::write(&markup, format!("{row}\n")).expect("write the markup tweet");
    check_run(dir, &["import", "--input", markup.to_str().expect("a UTF-8 path")], 0);
    check_run(dir, &score_args(&[], &flags), 0);

    let made = check_run(dir, &["report", "--output", "report.html", "--min-statuses", "2", "--top", "100"], 0);
    assert!(made.stderr.contains("wrote the report of model original (61 scored statuses)"), "{}", made.stderr);
    let page = dir.join("report.html");
    let html = std::fs::read_to_string(&page).expect("report.html");

    // Self-contained: nothing to fetch, nothing to run.
    for outside in ["<script", "<link", "<img", "<iframe", "<object", " src=\"", " href=\"", "@import", "url("] {
        assert!(!html.contains(outside), "the report contains {outside:?}");
    }
    // The markup tweet is shown as text.
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt; &lt;b&gt;bold&lt;/b&gt; &amp; &quot;quoted&quot;"));
    assert!(!html.contains("<b>bold"), "unescaped markup");

    // The DOM Chromium built from it.
    let dom = browse(dir, &page, &["--dump-dom"]);
    assert_eq!(console_messages(&dom.stderr), Vec::<&str>::new(), "the page logged to the console");
    let dom = String::from_utf8(dom.stdout).expect("a UTF-8 DOM");
    for class in CLASSES {
        assert!(dom.contains(&format!("data-chart=\"histogram-{class}\"")), "no histogram of {class}");
    }
    assert!(dom.contains("data-chart=\"days\""), "no per-day chart");
    assert_eq!(dom.matches("<svg").count(), CLASSES.len() + 1, "one SVG per chart");
    for table in ["counts-table", "checkpoints", "top-users-table", "top-texts-table"] {
        assert!(dom.contains(&format!("id=\"{table}\"")), "no table {table}");
    }
    // 60 fixture statuses, 48 texts, and the markup tweet (a new status id
    // with a new text); 49 rows of top texts.
    assert!(dom.contains("<th>tweets (distinct status ids)</th><td class=\"number\">61</td>"), "{dom}");
    assert!(dom.contains("<th>distinct texts</th><td class=\"number\">49</td>"), "{dom}");
    let top_texts = dom.split("id=\"top-texts-table\"").nth(1).expect("the top texts");
    assert_eq!(top_texts.split("</table>").next().unwrap_or("").matches("<tr>").count(), 1 + 49);
    assert!(!dom.contains("<b>bold"), "the browser parsed the markup tweet as markup");
    assert!(dom.contains("2020-03-18"), "the first day on the per-day axis");

    // The screenshot: not blank, the charts' colours drawn.
    let screenshot = dir.join("report.png");
    let shot = browse(dir, &page, &["--window-size=1280,2200", &format!("--screenshot={}", screenshot.display())]);
    assert_eq!(console_messages(&shot.stderr), Vec::<&str>::new());
    let (width, height, pixels) = decode_png(&screenshot);
    assert_eq!((width, height), (1280, 2200));
    let white = pixels.iter().filter(|[r, g, b, _]| *r > 245 && *g > 245 && *b > 245).count();
    let inked = pixels.len() - white;
    assert!(inked * 50 > pixels.len(), "only {inked} of {} pixels are not white", pixels.len());
    let colours: std::collections::BTreeSet<[u8; 4]> = pixels.iter().copied().collect();
    assert!(colours.len() > 50, "{} colours: text and charts would have more", colours.len());
    let bar = pixels.iter().filter(|[r, g, b, _]| (*r, *g, *b) == (0x3b, 0x6e, 0xa8)).count();
    assert!(bar > 1_000, "{bar} pixels of the histogram bars' colour");

    if std::env::var_os("TOXSCORE_REFRESH_EXAMPLE_REPORT").is_some() {
        let docs = repo_path("docs/report");
        std::fs::create_dir_all(&docs).expect("docs/report");
        std::fs::copy(&page, docs.join("example.html")).expect("copy the page");
        std::fs::copy(&screenshot, docs.join("example.png")).expect("copy the screenshot");
    }
}

#[test]
fn report_flags_are_checked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    check_run(dir, &["import", "--input", &fixture_tweets()], 0);
    check_run(dir, &["migrate"], 0);
    let missing = check_run(dir, &["report", "--output", "no/such/folder/report.html"], 2);
    assert!(missing.stderr.contains("the folder no/such/folder does not exist"), "{}", missing.stderr);
    check_run(dir, &["report", "--threshold", "1.5"], 2);
    check_run(dir, &["report", "--bins", "0"], 2);
    check_run(dir, &["report", "--model", "nonsense"], 2);
    // Nothing scored yet: a page that says so.
    check_run(dir, &["report"], 0);
    let html = std::fs::read_to_string(dir.join("report.html")).expect("report.html");
    assert!(html.contains("Nothing is scored yet"), "{html}");
}
