//! The model cache against a local HTTP server on 127.0.0.1 serving the
//! fixture checkpoint: verified downloads, atomic renames, offline use.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use toxmodel::registry::{CachedModel, ModelCache, RegisteredModel};
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
    let CachedModel { checkpoint: path, tokenizer_dir } = cache
        .ensure(&model, true, &mut |_| {
            progress_calls += 1;
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(tokenizer_dir, cache_dir.path().join("original"));
    assert_eq!(path, cache_dir.path().join("original/tiny-bert.ckpt"));
    assert!(progress_calls > 0);
    assert_eq!(requests.load(Ordering::SeqCst), 2, "checkpoint and vocab.txt");
    assert!(cache.verify(&model).unwrap().starts_with(model.sha256_prefix));
    let mut names = leftovers(&cache_dir.path().join("original"));
    names.sort();
    assert_eq!(names, ["tiny-bert.ckpt", "vocab.txt"], "no temporary file left");

    // Cached: offline works and nothing is fetched again.
    let again = cache.ensure(&model, false, &mut |_| ControlFlow::Continue(())).unwrap();
    assert_eq!(again.checkpoint, path);
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
    let error = cache.ensure(&model, true, &mut |_| ControlFlow::Continue(())).unwrap_err();
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
    let error = cache.ensure(&model, true, &mut |_| ControlFlow::Continue(())).unwrap_err();
    assert!(matches!(error, Error::Download { .. }), "{error:?}");
    assert!(!cache.checkpoint_path(&model).exists());
    assert!(!cache.is_cached(&model));
    assert!(!leftovers(&cache_dir.path().join("original")).iter().any(|name| name.contains(".part")));
}

#[test]
fn offline_without_a_cached_model_says_how_to_get_it() {
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = ModelCache::new(cache_dir.path());
    let error = cache.ensure(&model("c1212f89"), false, &mut |_| ControlFlow::Continue(())).unwrap_err();
    assert!(matches!(error, Error::NotCached { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("model original is not in the cache") && message.contains("downloading is off"),
        "{message}"
    );
    // How to get it is for the CLI and the Python package to say, each in its own terms.
    assert!(!message.contains("toxcli") && !message.contains("--"), "{message}");
}

#[test]
fn a_download_its_caller_stops_leaves_nothing() {
    let (base, _) = serve(Mode::Whole);
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = ModelCache::new(cache_dir.path()).with_base_urls(&format!("{base}/release"), &format!("{base}/hf"));
    let model = model(&fixture_prefix());
    // Stopped on the checkpoint's first bytes, after the tokenizer is in.
    let mut stop_on_checkpoint = |progress: toxmodel::registry::Progress<'_>| {
        if progress.url.ends_with(".ckpt") { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    };
    let error = cache.ensure(&model, true, &mut stop_on_checkpoint).unwrap_err();
    assert!(matches!(&error, Error::DownloadStopped { url } if url.ends_with("tiny-bert.ckpt")), "{error:?}");
    assert_eq!(leftovers(&cache_dir.path().join("original")), ["vocab.txt"], "no checkpoint, no temporary file");
    assert!(!cache.is_cached(&model));
}

/// A torch hub folder holding the fixture checkpoint under a released name
/// (its real hash prefix in it), as Detoxify's download leaves it.
fn torch_hub_with_checkpoint() -> (tempfile::TempDir, RegisteredModel, PathBuf) {
    let hub = tempfile::tempdir().unwrap();
    let prefix = fixture_prefix();
    let mut model = model(&prefix);
    model.release_path = Box::leak(format!("v0.1-test/toxic_tiny-{prefix}.ckpt").into_boxed_str());
    let path = hub.path().join(model.file_name());
    std::fs::copy(fixture("checkpoint.ckpt"), &path).unwrap();
    (hub, model, path)
}

#[test]
fn detoxify_s_download_in_torch_hub_is_used_in_place() {
    let (base, requests) = serve(Mode::Whole);
    let (hub, model, hub_checkpoint) = torch_hub_with_checkpoint();
    let before = std::fs::read(&hub_checkpoint).unwrap();
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = ModelCache::new(cache_dir.path())
        .with_base_urls(&format!("{base}/release"), &format!("{base}/hf"))
        .with_torch_hub_checkpoints(Some(hub.path().to_owned()));

    // Offline, the tokenizer is still missing: nothing to load.
    let offline = cache.ensure(&model, false, &mut |_| ControlFlow::Continue(())).unwrap_err();
    assert!(matches!(offline, Error::NotCached { .. }), "{offline:?}");

    let found = cache.ensure(&model, true, &mut |_| ControlFlow::Continue(())).unwrap();
    assert_eq!(found.checkpoint, hub_checkpoint, "read in place");
    assert_eq!(requests.load(Ordering::SeqCst), 1, "only the tokenizer is fetched");
    assert_eq!(leftovers(&cache_dir.path().join("original")), ["vocab.txt"], "the checkpoint is not copied");
    assert_eq!(leftovers(hub.path()), [model.file_name()]);
    assert_eq!(std::fs::read(&hub_checkpoint).unwrap(), before, "torch hub's file is untouched");

    // Now offline works, and the model loads with the cache's tokenizer.
    let again = cache.ensure(&model, false, &mut |_| ControlFlow::Continue(())).unwrap();
    assert_eq!(again, found);
    let options = LoadOptions { hf_config: Some(fixture("config.json")), ..LoadOptions::default() }
        .or_tokenizer(&found.tokenizer_dir);
    let detoxify = Detoxify::load(&found.checkpoint, &options).unwrap();
    assert_eq!(detoxify.predict(&["hello"]).unwrap().len(), 1);
}

#[test]
fn a_torch_hub_file_that_does_not_verify_is_not_used() {
    let (base, requests) = serve(Mode::Whole);
    let (hub, model, hub_checkpoint) = torch_hub_with_checkpoint();
    // Same name, other content: not the released file.
    std::fs::write(&hub_checkpoint, b"not the checkpoint").unwrap();
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = ModelCache::new(cache_dir.path())
        .with_base_urls(&format!("{base}/release"), &format!("{base}/hf"))
        .with_torch_hub_checkpoints(Some(hub.path().to_owned()));
    assert_eq!(cache.torch_hub_checkpoint(&model), None);
    let found = cache.ensure(&model, true, &mut |_| ControlFlow::Continue(())).unwrap();
    assert_eq!(found.checkpoint, cache.checkpoint_path(&model), "downloaded into the cache instead");
    assert_eq!(requests.load(Ordering::SeqCst), 2);
    assert_eq!(std::fs::read(&hub_checkpoint).unwrap(), b"not the checkpoint", "left alone");
}
