//! Every checkpoint layout Detoxify 0.5.4 loads, toxscore loads and scores
//! the same way; the layouts on which Detoxify crashes or silently loses an
//! output are refused, naming the file and the key.
//!
//! `fixtures/generate.py` writes `fixtures/models/variants/`: checkpoints
//! that reuse the weights of the tiny fixture models in other layouts (no
//! `identity_classes`, pre-renaming class names, fewer classes than outputs,
//! extra tensors, float16/bfloat16/float64 tensors, the pre-1.6 file format,
//! a PyTorch Lightning checkpoint, a hub-style `model_type`), and
//! `reference.json` with what the `detoxify` package itself returned for
//! each (class names and scores) and transformers' probabilities of every
//! output.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toxmodel::{Detoxify, Error, LoadOptions};

/// As in `parity.rs`: fp32 sums in another order differ by about 1e-6.
const TOLERANCE: f32 = 1e-5;

#[derive(Deserialize)]
struct Reference {
    texts: Vec<usize>,
    variants: BTreeMap<String, Variant>,
}

#[derive(Deserialize)]
struct Variant {
    base: String,
    what: String,
    #[serde(default)]
    detoxify_classes: Vec<String>,
    #[serde(default)]
    detoxify_scores: BTreeMap<String, Vec<f32>>,
    #[serde(default)]
    all_outputs: Vec<Vec<f32>>,
    #[serde(default)]
    detoxify_error: Option<String>,
    /// The type Detoxify computed in: transformers 5 builds the model in the
    /// type the weights are stored in, so a float16 file is scored in
    /// float16 there, and in float32 here.
    detoxify_dtype: String,
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn reference() -> Reference {
    let path = fixtures().join("models/variants/reference.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    serde_json::from_str(&text).expect("valid variants/reference.json")
}

fn texts(indexes: &[usize]) -> Vec<String> {
    let text = std::fs::read_to_string(fixtures().join("texts.json")).expect("fixtures/texts.json");
    let all: Vec<String> = serde_json::from_str(&text).expect("a JSON list of texts");
    indexes.iter().map(|&index| all[index].clone()).collect()
}

fn load(path: &Path, base: &str) -> toxmodel::Result<Detoxify> {
    let base = fixtures().join("models").join(base);
    // As the generator called Detoxify: `huggingface_config_path` is the
    // base model's folder, which gives the config and the tokenizer.
    let options = LoadOptions { hf_config: Some(base), tokenizer: None, batch_size: Some(4), ..LoadOptions::default() };
    Detoxify::load(path, &options)
}

#[test]
fn every_layout_detoxify_loads_scores_as_detoxify_does() {
    let reference = reference();
    let texts = texts(&reference.texts);
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let mut checked = 0;
    for (file, variant) in &reference.variants {
        if let Some(error) = &variant.detoxify_error {
            panic!("{file}: the generator recorded that Detoxify failed on it ({error}): not a layout to accept");
        }
        let path = fixtures().join("models/variants").join(file);
        let model = load(&path, &variant.base).unwrap_or_else(|error| panic!("{file} ({}): {error}", variant.what));
        assert_eq!(model.class_names(), variant.detoxify_classes.as_slice(), "{file}: the named classes");
        let named = model.predict(&texts).expect("predict");
        for (class_idx, class) in variant.detoxify_classes.iter().enumerate() {
            // A file stored in float16, bfloat16 or float64 is scored in
            // float32 (its weights widened), as every other file is: compare
            // with transformers' float32 run of the same weights. Detoxify's
            // own float16 run is up to 5e-3 off that, by rounding alone.
            let theirs: Vec<f32> = if variant.detoxify_dtype == "float32" {
                variant.detoxify_scores[class].clone()
            } else {
                variant.all_outputs.iter().map(|outputs| outputs[class_idx]).collect()
            };
            for (text_idx, scores) in named.iter().enumerate() {
                let ours = scores.values()[class_idx];
                assert!(
                    (ours - theirs[text_idx]).abs() <= TOLERANCE,
                    "{file}: {class} of text {text_idx}: ours {ours}, Detoxify {}",
                    theirs[text_idx]
                );
            }
        }
        let all = model.predict_all_outputs(&texts).expect("predict all outputs");
        assert_eq!(all.len(), variant.all_outputs.len(), "{file}");
        for (text_idx, (ours, theirs)) in all.iter().zip(&variant.all_outputs).enumerate() {
            assert_eq!(ours.values().len(), theirs.len(), "{file}: outputs of text {text_idx}");
            for (ours, theirs) in ours.values().iter().zip(theirs) {
                assert!((ours - theirs).abs() <= TOLERANCE, "{file}: text {text_idx}: {ours} vs {theirs}");
            }
        }
        // Outputs beyond the named classes have names of their own.
        let names = model.all_class_names();
        assert_eq!(names.len(), variant.all_outputs[0].len(), "{file}");
        let mut unique = names.to_vec();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{file}: two outputs share a name: {names:?}");
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} variants in the reference");
}

#[test]
fn outputs_without_identity_names_are_numbered() {
    let variants = fixtures().join("models/variants");
    let model = load(&variants.join("roberta_no_identity.ckpt"), "roberta").expect("loads");
    assert_eq!(model.class_names().len(), 7);
    let names = model.all_class_names();
    assert_eq!(names.len(), 16);
    assert_eq!(names[7], "output_7");
    assert_eq!(names[15], "output_15");
    // Identity names that do not fit the extra outputs are not used.
    let model = load(&variants.join("roberta_short_identity.ckpt"), "roberta").expect("loads");
    assert_eq!(model.all_class_names()[7], "output_7");
    // The released layout keeps its identity names.
    let model = load(&fixtures().join("models/roberta/checkpoint.ckpt"), "roberta").expect("loads");
    assert_eq!(model.all_class_names()[7], "male");
    // An unused tensor is ignored, as transformers ignores it, and reported.
    let model = load(&variants.join("bert_extra_tensor.ckpt"), "bert").expect("loads");
    assert_eq!(model.ignored_tensors(), ["bert.embeddings.extra.weight"]);
}

/// Layouts on which Detoxify crashes or silently computes something else:
/// refused, naming the file and the key.
#[test]
fn layouts_detoxify_cannot_score_are_refused_naming_the_key() {
    for (file, needle) in [
        ("classes_longer_than_outputs.ckpt", "num_classes is 6"),
        ("classes_not_a_list.ckpt", "not a list"),
        ("no_num_classes.ckpt", "num_classes"),
        ("duplicate_classes.ckpt", "\"toxicity\""),
    ] {
        let path = fixtures().join("bad/checkpoints").join(file);
        let error = match load(&path, "albert-original") {
            Ok(_) => panic!("{file} loaded"),
            Err(error) => error,
        };
        let message = error.to_string();
        assert!(matches!(error, Error::InvalidCheckpoint { .. }), "{file}: {error:?}");
        assert!(message.contains(file), "{file}: {message}");
        assert!(message.contains(needle), "{file}: expected {needle:?} in {message}");
        assert!(message.contains("config."), "{file}: the message names no key: {message}");
    }
}

/// Without `--hf-config`, a `model_type` whose config is not built in is
/// refused rather than guessed; the hub's organisation prefix is fine.
#[test]
fn a_model_type_without_a_built_in_config_needs_its_config_json() {
    let variants = fixtures().join("models/variants");
    let options = LoadOptions { tokenizer: Some(fixtures().join("models/bert")), ..LoadOptions::default() };
    // The tiny fixture's shape is not bert-base's, so loading it with the
    // built-in config fails on a shape: which shows the config was chosen.
    let error = Detoxify::load(&variants.join("bert_hub_model_type.ckpt"), &options).expect_err("a tiny model");
    assert!(matches!(error, Error::TensorShape { .. }), "{error:?}");
    let path = fixtures().join("bad/checkpoints/unknown_model_type.ckpt");
    let roberta = LoadOptions { tokenizer: Some(fixtures().join("models/roberta")), ..LoadOptions::default() };
    let error = Detoxify::load(&path, &roberta).expect_err("an unknown model_type");
    let message = error.to_string();
    assert!(matches!(error, Error::InvalidConfig { .. }), "{error:?}");
    assert!(message.contains("distilroberta-base") && message.contains("--hf-config"), "{message}");
    // With the model's config.json it loads, as Detoxify would.
    load(&path, "roberta").expect("loads with --hf-config");
}
