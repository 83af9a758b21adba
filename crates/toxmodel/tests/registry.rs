//! The model cache against a local HTTP server on 127.0.0.1 serving the
//! fixture checkpoint: verified downloads, atomic renames, offline use.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use toxmodel::registry::{ModelCache, RegisteredModel};
use toxmodel::{Architecture, Detoxify, Error, LoadOptions};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/models/bert").join(name)
}

/// How the server answers checkpoint requests.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Whole,
    /// Announces the whole length, sends half, closes.
    CutShort,
}

/// Serves `/release/...ckpt` (the fixture checkpoint) and
/// `/hf/bert-base-uncased/resolve/main/vocab.txt`; counts requests.
fn serve(mode: Mode) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            counter.fetch_add(1, Ordering::SeqCst);
            let mut request_line = String::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            reader.read_line(&mut request_line).unwrap();
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap() == 0 || header == "\r\n" {
                    break;
                }
            }
            let path = request_line.split_whitespace().nth(1).unwrap_or("/").to_owned();
            let body = if path.ends_with(".ckpt") {
                std::fs::read(fixture("checkpoint.ckpt")).unwrap()
            } else if path == "/hf/bert-base-uncased/resolve/main/vocab.txt" {
                std::fs::read(fixture("vocab.txt")).unwrap()
            } else {
                let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                continue;
            };
            let header = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            let _ = stream.write_all(header.as_bytes());
            let sent =
                if mode == Mode::CutShort && path.ends_with(".ckpt") { &body[..body.len() / 2] } else { &body[..] };
            let _ = stream.write_all(sent);
        }
    });
    (base, requests)
}

fn model(sha256_prefix: &str) -> RegisteredModel {
    RegisteredModel {
        name: "original",
        release_path: "v0.1-test/tiny-bert.ckpt",
        sha256_prefix: Box::leak(sha256_prefix.to_owned().into_boxed_str()),
        class_name: "BertForSequenceClassification",
        base_model: "bert-base-uncased",
        tokenizer_files: &["vocab.txt"],
        architecture: Some(Architecture::Bert),
    }
}

fn fixture_prefix() -> String {
    toxmodel::sha256_file(&fixture("checkpoint.ckpt")).unwrap()[..8].to_owned()
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|entry| entry.ok()?.file_name().into_string().ok()).collect())
        .unwrap_or_default()
}

#[test]
fn download_verifies_renames_and_then_works_offline() {
    let (base, requests) = serve(Mode::Whole);
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = ModelCache::new(cache_dir.path()).with_base_urls(&format!("{base}/release"), &format!("{base}/hf"));
    let model = model(&fixture_prefix());

    let mut progress_calls = 0;
    let path = cache.ensure(&model, true, &mut |_| progress_calls += 1).unwrap();
    assert_eq!(path, cache_dir.path().join("original/tiny-bert.ckpt"));
    assert!(progress_calls > 0);
    assert_eq!(requests.load(Ordering::SeqCst), 2, "checkpoint and vocab.txt");
    assert!(cache.verify(&model).unwrap().starts_with(model.sha256_prefix));
    let mut names = leftovers(&cache_dir.path().join("original"));
    names.sort();
    assert_eq!(names, ["tiny-bert.ckpt", "vocab.txt"], "no temporary file left");

    // Cached: offline works and nothing is fetched again.
    let again = cache.ensure(&model, false, &mut |_| {}).unwrap();
    assert_eq!(again, path);
    assert_eq!(requests.load(Ordering::SeqCst), 2);

    // The cached model loads, with the tokenizer beside it.
    let options = LoadOptions { hf_config: Some(fixture("config.json")), ..LoadOptions::default() };
    let detoxify = Detoxify::load(&path, &options).unwrap();
    assert_eq!(detoxify.predict(&["hello"]).unwrap().len(), 1);
}

#[test]
fn a_wrong_hash_is_refused_and_leaves_nothing() {
    let (base, _) = serve(Mode::Whole);
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = ModelCache::new(cache_dir.path()).with_base_urls(&format!("{base}/release"), &format!("{base}/hf"));
    let model = model("00000000");
    let error = cache.ensure(&model, true, &mut |_| {}).unwrap_err();
    assert!(matches!(error, Error::HashMismatch { .. }), "{error:?}");
    assert!(error.to_string().contains("00000000"), "{error}");
    assert!(!cache.checkpoint_path(&model).exists());
    assert!(!leftovers(&cache_dir.path().join("original")).iter().any(|name| name.contains(".part")));
}

#[test]
fn a_download_cut_short_never_counts_as_a_model() {
    let (base, _) = serve(Mode::CutShort);
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = ModelCache::new(cache_dir.path()).with_base_urls(&format!("{base}/release"), &format!("{base}/hf"));
    let model = model(&fixture_prefix());
    let error = cache.ensure(&model, true, &mut |_| {}).unwrap_err();
    assert!(matches!(error, Error::Download { .. }), "{error:?}");
    assert!(!cache.checkpoint_path(&model).exists());
    assert!(!cache.is_cached(&model));
    assert!(!leftovers(&cache_dir.path().join("original")).iter().any(|name| name.contains(".part")));
}

#[test]
fn offline_without_a_cached_model_says_how_to_get_it() {
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = ModelCache::new(cache_dir.path());
    let error = cache.ensure(&model("c1212f89"), false, &mut |_| {}).unwrap_err();
    assert!(matches!(error, Error::NotCached { .. }), "{error:?}");
    assert!(error.to_string().contains("toxcli models download original"), "{error}");
}
