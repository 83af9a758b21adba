//! Fixture lookup shared by the toxmodel benchmarks.
//!
//! The benchmarks prefer the large, git-ignored fixtures
//! (`fixtures/large/`: a bert-base-shape checkpoint and a tweet-like corpus,
//! written by `fixtures/generate.py --large`) and fall back to the small
//! committed ones, saying which in every benchmark name.

// Each benchmark uses only part of these helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A model folder holding `checkpoint.ckpt`, `config.json` and `vocab.txt`,
/// with the label the benchmark names carry.
pub struct ModelFixture {
    /// The folder.
    pub dir: PathBuf,
    /// `bert-base` (the real measure) or `tiny` (the committed fixture).
    pub label: &'static str,
}

/// The bert-base-shape `original` checkpoint when it exists, else the tiny
/// BERT fixture.
pub fn model_fixture() -> ModelFixture {
    let large = repo_root().join("fixtures/large/original");
    if large.join("checkpoint.ckpt").is_file() {
        ModelFixture { dir: large, label: "bert-base" }
    } else {
        eprintln!(
            "note: fixtures/large/original/checkpoint.ckpt is missing, so these are the tiny model's figures; \
             write the large fixtures with `HF_HUB_OFFLINE=1 python fixtures/generate.py --large`"
        );
        ModelFixture { dir: repo_root().join("fixtures/models/bert"), label: "tiny" }
    }
}

/// The tweet-like corpus (`fixtures/large/corpus.txt`, one text per line)
/// when it exists, else the parity texts of `fixtures/texts.json`; with the
/// label the benchmark names carry.
pub fn corpus() -> (Vec<String>, &'static str) {
    let large = repo_root().join("fixtures/large/corpus.txt");
    if let Ok(text) = std::fs::read_to_string(&large) {
        return (text.lines().map(str::to_owned).collect(), "corpus");
    }
    let path = repo_root().join("fixtures/texts.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("reading {}: {error}", path.display()));
    let texts: Vec<String> =
        serde_json::from_str(&text).unwrap_or_else(|error| panic!("parsing {}: {error}", path.display()));
    (texts, "texts.json")
}
