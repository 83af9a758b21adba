//! Parity with PyTorch transformers on the committed fixtures.
//!
//! `fixtures/generate.py` builds small random-weight checkpoints in Detoxify's
//! exact file format and records, for every text of `fixtures/texts.json`, the
//! token ids of the Hugging Face tokenizer and the probabilities computed by
//! transformers in fp32 (one text at a time, and in padded batches of 16).

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toxmodel::{Detoxify, LoadOptions};

/// Max absolute difference allowed between our probabilities and PyTorch's.
/// fp32 sums in another order differ by about 1e-6 here (PyTorch itself moves
/// by up to 2e-6 between batch sizes 1 and 16 on these fixtures), so 1e-5
/// leaves a margin while catching any real mistake (a wrong epsilon, GELU or
/// mask moves scores by 1e-3 or more).
const TOLERANCE: f32 = 1e-5;

#[derive(Deserialize)]
struct Reference {
    classes: Vec<String>,
    detoxify_classes: Vec<String>,
    texts: Vec<String>,
    input_ids: Vec<Vec<u32>>,
    probabilities: Vec<Vec<f32>>,
    probabilities_batch16: Vec<Vec<f32>>,
}

fn fixture(model: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/models").join(model)
}

fn reference(model: &str) -> Reference {
    let text = std::fs::read_to_string(fixture(model).join("reference.json")).expect("fixture reference.json");
    serde_json::from_str(&text).expect("valid reference.json")
}

fn load(model: &str, tokenizer_file: &str, batch_size: usize) -> Detoxify {
    load_on(model, tokenizer_file, batch_size, toxmodel::DeviceSpec::Cpu)
}

fn load_on(model: &str, tokenizer_file: &str, batch_size: usize, device: toxmodel::DeviceSpec) -> Detoxify {
    let dir = fixture(model);
    let options = LoadOptions {
        hf_config: Some(dir.join("config.json")),
        tokenizer: Some(dir.join(tokenizer_file)),
        device,
        precision: toxmodel::Precision::F32,
        batch_size: Some(batch_size),
        workers: None,
    };
    Detoxify::load(&dir.join("checkpoint.ckpt"), &options).unwrap_or_else(|error| panic!("loading {model}: {error}"))
}

fn max_abs_diff(ours: &[f32], theirs: &[f32]) -> f32 {
    assert_eq!(ours.len(), theirs.len());
    ours.iter().zip(theirs).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max)
}

/// Checks token ids against Hugging Face's for every text.
fn check_token_ids(model: &str, tokenizer_file: &str) {
    let reference = reference(model);
    let detoxify = load(model, tokenizer_file, 16);
    let texts: Vec<&str> = reference.texts.iter().map(String::as_str).collect();
    let ids = detoxify.tokenizer().encode_batch(&texts).unwrap();
    for (text_idx, (ours, theirs)) in ids.iter().zip(&reference.input_ids).enumerate() {
        assert_eq!(
            ours, theirs,
            "{model} ({tokenizer_file}): token ids of text {text_idx} {:?}",
            reference.texts[text_idx]
        );
    }
    assert!(ids.iter().any(|ids| ids.len() == 512), "the long text must be truncated to 512 tokens");
}

/// Checks every output of every text at the given batch size.
fn check_probabilities(model: &str, tokenizer_file: &str, batch_size: usize) {
    let reference = reference(model);
    let detoxify = load(model, tokenizer_file, batch_size);
    let renamed: Vec<String> = reference.classes.iter().map(|name| toxmodel::rename_class(name)).collect();
    assert_eq!(detoxify.all_class_names(), renamed.as_slice());
    assert_eq!(detoxify.class_names(), reference.detoxify_classes.as_slice());
    let texts: Vec<&str> = reference.texts.iter().map(String::as_str).collect();
    let all = detoxify.predict_all_outputs(&texts).unwrap();
    let expected = if batch_size == 1 { &reference.probabilities } else { &reference.probabilities_batch16 };
    let mut worst = 0.0f32;
    for (text_idx, (ours, theirs)) in all.iter().zip(expected).enumerate() {
        let diff = max_abs_diff(ours.values(), theirs);
        assert!(
            diff <= TOLERANCE,
            "{model} batch {batch_size}: text {text_idx} differs by {diff}: {:?} vs {theirs:?}",
            ours.values()
        );
        worst = worst.max(diff);
    }
    // The named scores are the first outputs, by name.
    let named = detoxify.predict(&texts[..3]).unwrap();
    for (scores, theirs) in named.iter().zip(&reference.probabilities) {
        for (class_idx, (name, value)) in scores.iter().enumerate() {
            assert_eq!(name, reference.detoxify_classes[class_idx]);
            assert!((value - theirs[class_idx]).abs() <= TOLERANCE);
        }
    }
    eprintln!("{model} batch {batch_size}: max abs diff {worst:e} over {} texts", texts.len());
}

#[test]
fn bert_token_ids_equal_hugging_face_from_vocab_txt() {
    check_token_ids("bert", "vocab.txt");
}

#[test]
fn bert_token_ids_equal_hugging_face_from_tokenizer_json() {
    check_token_ids("bert", "tokenizer.json");
}

#[test]
fn roberta_token_ids_equal_hugging_face_from_vocab_json_and_merges() {
    check_token_ids("roberta", "vocab.json");
}

#[test]
fn roberta_token_ids_equal_hugging_face_from_tokenizer_json() {
    check_token_ids("roberta", "tokenizer.json");
}

#[test]
fn bert_probabilities_equal_pytorch_at_batch_1() {
    check_probabilities("bert", "vocab.txt", 1);
}

#[test]
fn bert_probabilities_equal_pytorch_at_batch_16() {
    check_probabilities("bert", "vocab.txt", 16);
}

#[test]
fn roberta_probabilities_equal_pytorch_at_batch_1() {
    check_probabilities("roberta", "vocab.json", 1);
}

#[test]
fn roberta_probabilities_equal_pytorch_at_batch_16() {
    check_probabilities("roberta", "vocab.json", 16);
}

#[test]
fn scores_differ_from_text_to_text() {
    // Guards the fixtures themselves: near-constant outputs would make parity meaningless.
    for model in ["bert", "roberta"] {
        let reference = reference(model);
        for class_idx in 0..reference.classes.len() {
            let scores: Vec<f32> = reference.probabilities.iter().map(|row| row[class_idx]).collect();
            let (min, max) = scores.iter().fold((1.0f32, 0.0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            assert!(max - min > 0.1, "{model} class {class_idx} spans only {min}..{max}");
        }
    }
}

#[test]
fn xlm_roberta_token_ids_equal_hugging_face_from_tokenizer_json() {
    check_token_ids("xlmr", "tokenizer.json");
}

#[test]
fn xlm_roberta_probabilities_equal_pytorch_at_batch_1() {
    check_probabilities("xlmr", "tokenizer.json", 1);
}

#[test]
fn xlm_roberta_probabilities_equal_pytorch_at_batch_16() {
    check_probabilities("xlmr", "tokenizer.json", 16);
}

#[test]
fn xlm_roberta_token_ids_equal_hugging_face_from_sentencepiece_model() {
    check_token_ids("xlmr", "sentencepiece.bpe.model");
}

#[test]
fn xlm_roberta_probabilities_equal_pytorch_from_sentencepiece_model() {
    check_probabilities("xlmr", "sentencepiece.bpe.model", 16);
}

#[test]
fn albert_token_ids_equal_hugging_face_from_spiece_model() {
    check_token_ids("albert-original", "spiece.model");
    check_token_ids("albert-unbiased", "spiece.model");
}

#[test]
fn albert_probabilities_equal_pytorch_from_spiece_model() {
    check_probabilities("albert-unbiased", "spiece.model", 16);
}

/// Beyond the reference texts: the tokenizer built from the SentencePiece
/// file and the one transformers converted to tokenizer.json agree on
/// variants that exercise each step (special tokens in the text, the quote
/// and accent normalizers, case, runs of whitespace).
#[test]
fn sentencepiece_models_and_tokenizer_json_agree_on_variants() {
    for (model, file) in [("xlmr", "sentencepiece.bpe.model"), ("albert-original", "spiece.model")] {
        let from_model = load(model, file, 16);
        let from_json = load(model, "tokenizer.json", 16);
        let mut texts: Vec<String> = Vec::new();
        for text in reference(model).texts {
            texts.push(format!("<s>{text}</s> [CLS] {text} [SEP] <mask> [MASK] <pad><unk>"));
            texts.push(format!("``{}'' \t  {}", text.to_uppercase(), text.to_lowercase()));
            texts.push(format!("  {text}\u{301}\u{a0}{text}  "));
            texts.push(text);
        }
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        let ours = from_model.tokenizer().encode_batch(&texts).unwrap();
        let theirs = from_json.tokenizer().encode_batch(&texts).unwrap();
        for (idx, text) in texts.iter().enumerate() {
            assert_eq!(ours[idx], theirs[idx], "{model} ({file}) against tokenizer.json: {text:?}");
        }
    }
}

#[test]
fn albert_token_ids_equal_hugging_face_from_tokenizer_json() {
    check_token_ids("albert-original", "tokenizer.json");
    check_token_ids("albert-unbiased", "tokenizer.json");
}

#[test]
fn albert_original_probabilities_equal_pytorch_at_batch_1_and_16() {
    check_probabilities("albert-original", "tokenizer.json", 1);
    check_probabilities("albert-original", "tokenizer.json", 16);
}

#[test]
fn albert_unbiased_probabilities_equal_pytorch_at_batch_1_and_16() {
    check_probabilities("albert-unbiased", "tokenizer.json", 1);
    check_probabilities("albert-unbiased", "tokenizer.json", 16);
}

#[test]
fn albert_layers_share_one_set_of_weights() {
    // The fixture has 3 layers in one group: one weight set is loaded and run 3 times.
    let albert = load("albert-original", "tokenizer.json", 16);
    assert_eq!(albert.layer_weight_sets(), 1);
    // Hidden 32, intermediate 64, embeddings 16 wide, vocabulary 1170, 512 positions, 6 classes:
    let embeddings = 1170 * 16 + 512 * 16 + 16 + 2 * 16; // words, positions, token type 0, LayerNorm
    let projection = 16 * 32 + 32;
    let layer = (32 * 96 + 96) + (32 * 32 + 32) + 2 * 32 + (32 * 64 + 64) + (64 * 32 + 32) + 2 * 32;
    let head = (32 * 32 + 32) + (32 * 6 + 6);
    assert_eq!(albert.num_parameters(), embeddings + projection + layer + head, "one layer's weights, not three");
    let bert = load("bert", "vocab.txt", 16);
    assert_eq!(bert.layer_weight_sets(), 2);
}

/// The same model on burn-ndarray (the design card's backend) gives the same
/// probabilities.
#[cfg(feature = "ndarray")]
#[test]
fn bert_and_roberta_probabilities_equal_pytorch_on_ndarray() {
    for (model, tokenizer_file) in [("bert", "vocab.txt"), ("roberta", "vocab.json")] {
        let reference = reference(model);
        let detoxify = load_on(model, tokenizer_file, 16, toxmodel::DeviceSpec::NdArray);
        let texts: Vec<&str> = reference.texts.iter().map(String::as_str).collect();
        for (text_idx, (ours, theirs)) in
            detoxify.predict_all_outputs(&texts).unwrap().iter().zip(&reference.probabilities_batch16).enumerate()
        {
            let diff = max_abs_diff(ours.values(), theirs);
            assert!(diff <= TOLERANCE, "{model} on ndarray: text {text_idx} differs by {diff}");
        }
    }
}

/// A `huggingface_config_path` folder whose tokenizer_config.json sets
/// `model_max_length` cuts texts there, as Detoxify's `truncation=True`
/// does: a long text scores as its first tokens do.
#[test]
fn a_tokenizer_config_model_max_length_cuts_texts() {
    let folder = tempfile::tempdir().expect("temp dir");
    for entry in std::fs::read_dir(fixture("bert")).expect("fixture folder") {
        let entry = entry.expect("fixture entry");
        std::fs::copy(entry.path(), folder.path().join(entry.file_name())).expect("copy");
    }
    let config_path = folder.path().join("tokenizer_config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config_path).expect("read")).expect("json");
    config["model_max_length"] = 16.into();
    std::fs::write(&config_path, config.to_string()).expect("write");
    let load_from = |dir: &Path| {
        let options = LoadOptions { hf_config: Some(dir.to_owned()), ..LoadOptions::default() };
        Detoxify::load(&dir.join("checkpoint.ckpt"), &options).expect("load")
    };
    let (cut, whole) = (load_from(folder.path()), load_from(&fixture("bert")));

    let long = reference("bert").texts.into_iter().max_by_key(String::len).expect("texts");
    // 40 words are over 14 word pieces: the start cuts to the same 16 tokens.
    let start = long.split_whitespace().take(40).collect::<Vec<_>>().join(" ");
    let cut_ids = cut.tokenizer().encode_batch(&[&long, &start]).expect("encode");
    let whole_ids = whole.tokenizer().encode_batch(&[&long]).expect("encode");
    assert_eq!(cut_ids[0].len(), 16, "[CLS], 14 word pieces, [SEP]");
    assert_eq!(cut_ids[0][..15], whole_ids[0][..15], "the first tokens");
    assert_eq!(cut_ids[0], cut_ids[1]);
    let scores = cut.predict(&[&long, &start]).expect("predict");
    assert_eq!(scores[0], scores[1], "a long text scores as its first tokens");
    let uncut = whole.predict(&[&long]).expect("predict");
    assert_ne!(uncut[0], scores[0], "without the limit the whole text counts");
}
