//! Bad checkpoints and tokenizers: each gives a clear error naming the file
//! and the problem, never a panic. The files are in `fixtures/bad/checkpoints`
//! (see its README for how each one is broken).

use std::path::{Path, PathBuf};

use toxmodel::{Detoxify, Error, LoadOptions};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn load_bad(file: &str, base: &str) -> Error {
    let base = fixtures().join("models").join(base);
    let options = LoadOptions {
        hf_config: Some(base.join("config.json")),
        tokenizer: Some(base.clone()),
        ..LoadOptions::default()
    };
    let path = fixtures().join("bad/checkpoints").join(file);
    match Detoxify::load(&path, &options) {
        Ok(_) => panic!("{file} loaded"),
        Err(error) => error,
    }
}

/// Loads a bad file, checks the error variant, that the message names the
/// file, and that it contains `needle`.
fn check(file: &str, base: &str, matches: fn(&Error) -> bool, needle: &str) {
    let error = load_bad(file, base);
    let message = error.to_string();
    assert!(matches(&error), "{file}: unexpected variant: {error:?}");
    assert!(message.contains(file), "{file}: the message does not name the file: {message}");
    assert!(message.contains(needle), "{file}: the message does not say {needle:?}: {message}");
}

#[test]
fn a_file_that_is_not_a_zip_is_not_a_checkpoint() {
    check(
        "not_a_zip.ckpt",
        "bert",
        |e| matches!(e, Error::InvalidCheckpoint { .. }),
        "not a valid Detoxify checkpoint",
    );
    check(
        "text_file.ckpt",
        "bert",
        |e| matches!(e, Error::InvalidCheckpoint { .. }),
        "not a valid Detoxify checkpoint",
    );
}

#[test]
fn a_truncated_file_is_reported() {
    check("truncated.ckpt", "bert", |e| matches!(e, Error::InvalidCheckpoint { .. }), "truncated");
}

#[test]
fn a_checkpoint_without_state_dict_is_reported() {
    check(
        "no_state_dict.ckpt",
        "roberta",
        |e| matches!(e, Error::InvalidCheckpoint { .. }),
        "it has no top-level `state_dict` entry",
    );
}

#[test]
fn a_missing_tensor_is_named() {
    check(
        "missing_tensor.ckpt",
        "roberta",
        |e| matches!(e, Error::MissingTensor { .. }),
        "roberta.encoder.layer.1.output.dense.weight",
    );
}

#[test]
fn a_misshaped_tensor_is_named_with_both_shapes() {
    check(
        "misshaped_tensor.ckpt",
        "roberta",
        |e| matches!(e, Error::TensorShape { .. }),
        "roberta.encoder.layer.0.attention.self.key.weight has shape [32, 16] (F32), expected [32, 32]",
    );
    check(
        "num_classes_mismatch.ckpt",
        "roberta",
        |e| matches!(e, Error::InvalidCheckpoint { .. } | Error::TensorShape { .. }),
        "6",
    );
}

#[test]
fn an_unknown_model_name_is_reported() {
    check(
        "unknown_model_name.ckpt",
        "roberta",
        |e| matches!(e, Error::UnknownArchitecture { .. }),
        "GPT2ForSequenceClassification",
    );
}

#[test]
fn pickles_calling_unexpected_globals_are_refused_without_running_them() {
    for file in ["global_os_system.ckpt", "global_builtins_eval.ckpt"] {
        check(file, "bert", |e| matches!(e, Error::InvalidCheckpoint { .. }), "not a valid Detoxify checkpoint");
    }
}

#[test]
fn a_storage_shorter_than_its_tensor_is_reported_before_allocating() {
    check(
        "short_storage.ckpt",
        "roberta",
        |e| matches!(e, Error::InvalidCheckpoint { .. }),
        "not a valid Detoxify checkpoint",
    );
}

#[test]
fn a_tokenizer_of_another_vocabulary_is_refused() {
    let base = fixtures().join("models/bert");
    for tokenizer in ["vocab_100.txt", "tokenizer_100.json"] {
        let options = LoadOptions {
            hf_config: Some(base.join("config.json")),
            tokenizer: Some(fixtures().join("bad/checkpoints").join(tokenizer)),
            ..LoadOptions::default()
        };
        let error = Detoxify::load(&base.join("checkpoint.ckpt"), &options).unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, Error::Tokenizer { .. }), "{error:?}");
        assert!(message.contains(tokenizer) && message.contains("100") && message.contains("30522"), "{message}");
    }
}

/// Broken SentencePiece files, made from the fixture's good one: each is
/// refused with the file named and the problem said.
#[test]
fn a_broken_sentencepiece_model_is_refused() {
    let base = fixtures().join("models/albert-original");
    let good = std::fs::read(base.join("spiece.model")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Appending a second trainer_spec with model_type = 2 (BPE): protobuf
    // merges it into the first.
    let mut bpe = good.clone();
    bpe.extend_from_slice(&[0x12, 0x02, 0x18, 0x02]);
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("truncated.model", good[..good.len() - 3].to_vec(), "truncated at byte"),
        ("json.model", b"{\"model\": {\"type\": \"Unigram\"}}".to_vec(), "not a SentencePiece model"),
        ("empty.model", Vec::new(), "it holds no pieces"),
        ("bpe.model", bpe, "BPE SentencePiece model"),
    ];
    for (name, bytes, needle) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let options =
            LoadOptions { hf_config: Some(base.join("config.json")), tokenizer: Some(path), ..LoadOptions::default() };
        let error = Detoxify::load(&base.join("checkpoint.ckpt"), &options).unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, Error::Tokenizer { .. }), "{name}: {error:?}");
        assert!(message.contains(name) && message.contains(needle), "{name}: {message}");
    }
    // A SentencePiece model given to a BERT checkpoint.
    let bert = fixtures().join("models/bert");
    let options = LoadOptions {
        hf_config: Some(bert.join("config.json")),
        tokenizer: Some(base.join("spiece.model")),
        ..LoadOptions::default()
    };
    let message = Detoxify::load(&bert.join("checkpoint.ckpt"), &options).unwrap_err().to_string();
    assert!(message.contains("spiece.model") && message.contains("not the tokenizer of a"), "{message}");
}

#[test]
fn a_missing_file_is_an_io_error_naming_it() {
    let error = load_bad("does_not_exist.ckpt", "bert");
    assert!(matches!(error, Error::Io { .. }), "{error:?}");
    assert!(error.to_string().contains("does_not_exist.ckpt"));
}

#[test]
fn a_config_of_the_wrong_shape_names_the_tensor() {
    // The bert checkpoint with the built-in bert-base config (768 wide).
    let base = fixtures().join("models/bert");
    let options = LoadOptions { tokenizer: Some(base.clone()), ..LoadOptions::default() };
    let error = Detoxify::load(&base.join("checkpoint.ckpt"), &options).unwrap_err();
    assert!(matches!(error, Error::TensorShape { .. }), "{error:?}");
    assert!(error.to_string().contains(", 768] (a floating-point type)"), "{error}");
}
