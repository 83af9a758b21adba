//! Every fixture model on a GPU through wgpu, against PyTorch's
//! probabilities (`fixtures/generate.py`).
//!
//! On this project's CI machines the adapter is Mesa's software Vulkan driver
//! (lavapipe, `mesa-vulkan-drivers`, installed by `.ci/run`): the same WGSL
//! kernels a real GPU runs, executed on the CPU. A machine without any
//! Vulkan driver fails these tests with the error that names the driver:
//! they are never skipped.
#![cfg(feature = "wgpu")]

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toxmodel::{Detoxify, DeviceSpec, LoadOptions, Precision};

/// Max absolute difference from PyTorch on a GPU, in f32. The GPU kernels
/// sum in other orders than the CPU ones (tiled matrix products, fused
/// element-wise work, GELU through Burn's erf rather than the host's), so
/// the CPU's 1e-5 becomes 1e-4: still ten times below any real mistake (a
/// wrong epsilon, GELU or mask moves scores by 1e-3 or more).
const GPU_TOLERANCE: f32 = 1e-4;

/// Max drift of f16 from f32 on the fixture models, for a working f16 path.
/// Issue #16 offers f16 only within 1e-3; on lavapipe it drifts 2.7e-3
/// (bert) to 8.5e-3 (albert-original), as PyTorch's own f16 does, so only
/// `f16-experiment` builds parse it (docs/gpu.md), and this bound only
/// catches a broken f16 path (a wrong cast or a mask in
/// f16 moves scores by 1e-1 or more).
const F16_TOLERANCE: f32 = 2e-2;

#[derive(Deserialize)]
struct Reference {
    texts: Vec<String>,
    probabilities: Vec<Vec<f32>>,
    probabilities_batch16: Vec<Vec<f32>>,
}

/// Each fixture model with one of its tokenizers.
const MODELS: [(&str, &str); 5] = [
    ("bert", "vocab.txt"),
    ("roberta", "vocab.json"),
    ("xlmr", "tokenizer.json"),
    ("albert-original", "spiece.model"),
    ("albert-unbiased", "tokenizer.json"),
];

fn fixture(model: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/models").join(model)
}

fn reference(model: &str) -> Reference {
    let text = std::fs::read_to_string(fixture(model).join("reference.json")).expect("fixture reference.json");
    serde_json::from_str(&text).expect("valid reference.json")
}

fn load(model: &str, tokenizer_file: &str, device: DeviceSpec, precision: Precision) -> toxmodel::Result<Detoxify> {
    let dir = fixture(model);
    let options = LoadOptions {
        hf_config: Some(dir.join("config.json")),
        tokenizer: Some(dir.join(tokenizer_file)),
        device,
        precision,
        batch_size: Some(16),
        workers: None,
    };
    Detoxify::load(&dir.join("checkpoint.ckpt"), &options)
}

fn max_abs_diff(ours: &[f32], theirs: &[f32]) -> f32 {
    assert_eq!(ours.len(), theirs.len());
    ours.iter().zip(theirs).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max)
}

#[test]
fn every_fixture_model_on_wgpu_equals_pytorch_within_the_gpu_tolerance() {
    for (model, tokenizer_file) in MODELS {
        let detoxify = load(model, tokenizer_file, DeviceSpec::Wgpu(None), Precision::F32)
            .unwrap_or_else(|error| panic!("loading {model} on wgpu: {error}"));
        assert_eq!(detoxify.device(), DeviceSpec::Wgpu(None));
        // One model instance on the device, fed one stream of batches.
        assert_eq!(detoxify.workers(), 1);
        let reference = reference(model);
        let texts: Vec<&str> = reference.texts.iter().map(String::as_str).collect();
        let ours = detoxify.predict_all_outputs(&texts).expect("scoring on wgpu");
        // Batches of 16 sorted by length: compare with both of PyTorch's runs
        // and keep the nearer, as padding differs between them.
        let mut worst = 0.0f32;
        for (text_idx, scores) in ours.iter().enumerate() {
            let diff = max_abs_diff(scores.values(), &reference.probabilities[text_idx])
                .min(max_abs_diff(scores.values(), &reference.probabilities_batch16[text_idx]));
            assert!(diff <= GPU_TOLERANCE, "{model} on wgpu: text {text_idx} differs from PyTorch by {diff}");
            worst = worst.max(diff);
        }
        eprintln!("{model} on wgpu: max abs diff {worst:e} over {} texts", texts.len());
    }
}

/// f16 where the adapter computes in it: within [`F16_TOLERANCE`] of f32
/// on bert and albert-original, the fixture models it drifts least and most
/// on (f16 is an experiment, not offered: the other three were measured once,
/// docs/gpu.md, and cost a minute of lavapipe each run). Where the adapter
/// has no f16 (no shader-f16), loading in f16 is an error that says so,
/// never a panic and never a silent f32.
#[test]
fn f16_on_wgpu_stays_near_f32_or_is_refused_by_name() {
    let device = DeviceSpec::Wgpu(None).open().expect("opening wgpu");
    let supported = Precision::F16.check(DeviceSpec::Wgpu(None), &device).is_ok();
    for (model, tokenizer_file) in [MODELS[0], MODELS[3]] {
        let loaded = load(model, tokenizer_file, DeviceSpec::Wgpu(None), Precision::F16);
        if !supported {
            let error = loaded.expect_err("f16 on an adapter without it").to_string();
            assert!(error.contains("wgpu") && error.contains("f16"), "{error}");
            continue;
        }
        let half = loaded.unwrap_or_else(|error| panic!("loading {model} in f16: {error}"));
        assert_eq!(half.precision(), Precision::F16);
        let full = load(model, tokenizer_file, DeviceSpec::Wgpu(None), Precision::F32).expect("f32 on wgpu");
        let reference = reference(model);
        let texts: Vec<&str> = reference.texts.iter().map(String::as_str).collect();
        let half_scores = half.predict_all_outputs(&texts).expect("scoring in f16");
        let full_scores = full.predict_all_outputs(&texts).expect("scoring in f32");
        let drift =
            half_scores.iter().zip(&full_scores).map(|(h, f)| max_abs_diff(h.values(), f.values())).fold(0.0, f32::max);
        eprintln!("{model}: f16 drift from f32 {drift:e}");
        assert!(drift <= F16_TOLERANCE, "{model}: f16 drifts {drift} from f32");
    }
    eprintln!("this adapter {} f16", if supported { "computes in" } else { "does not compute in" });
}

/// The CPU and the GPU give the same scores to the same texts, whatever
/// the batching: the GPU path is the model, not an approximation of it.
#[test]
fn wgpu_and_the_cpu_agree_and_batching_changes_nothing() {
    let (model, tokenizer_file) = ("bert", "vocab.txt");
    let gpu = load(model, tokenizer_file, DeviceSpec::Wgpu(None), Precision::F32).expect("bert on wgpu");
    let cpu = load(model, tokenizer_file, DeviceSpec::Cpu, Precision::F32).expect("bert on the CPU");
    let reference = reference(model);
    let texts: Vec<&str> = reference.texts.iter().map(String::as_str).collect();
    let on_gpu = gpu.predict_all_outputs(&texts).expect("scoring on wgpu");
    let on_cpu = cpu.predict_all_outputs(&texts).expect("scoring on the CPU");
    for (text_idx, (g, c)) in on_gpu.iter().zip(&on_cpu).enumerate() {
        let diff = max_abs_diff(g.values(), c.values());
        assert!(diff <= GPU_TOLERANCE, "text {text_idx}: wgpu and cpu differ by {diff}");
    }
    let one_by_one: Vec<Vec<f32>> = texts[..8]
        .iter()
        .map(|text| gpu.predict_all_outputs(&[text]).expect("one text").remove(0).values().to_vec())
        .collect();
    for (text_idx, (alone, batched)) in one_by_one.iter().zip(&on_gpu).enumerate() {
        let diff = max_abs_diff(alone, batched.values());
        assert!(diff <= GPU_TOLERANCE, "text {text_idx}: alone and batched differ by {diff} on wgpu");
    }
}

/// On a device, batches are sized by what its memory allows, not by the
/// CPU's token budget: long texts keep the full batch size (the fixture
/// models are small), and score as they do on the CPU.
#[test]
fn batches_on_wgpu_are_sized_by_the_devices_memory() {
    let gpu = load("bert", "vocab.txt", DeviceSpec::Wgpu(None), Precision::F32).expect("bert on wgpu");
    let cpu = load("bert", "vocab.txt", DeviceSpec::Cpu, Precision::F32).expect("bert on the CPU");
    let memory = gpu.device_memory().expect("wgpu states its buffer limits");
    eprintln!("wgpu memory: {memory:?}");
    assert!(memory.max_allocation >= 1 << 20, "{memory:?}");
    assert_eq!(cpu.device_memory(), None);
    // CI's adapter is lavapipe, which is no card: the model says so.
    let identity = gpu.device_identity().expect("wgpu names its adapter");
    assert!(identity.name.contains("llvmpipe") && identity.software, "{identity:?}");
    assert!(identity.to_string().ends_with(", a software driver: no GPU"), "{identity}");
    assert_eq!(cpu.device_identity(), None);
    // A device pads each batch to a multiple of 8 tokens (fewer shapes to
    // compile kernels for); the CPU to the longest text.
    let three = [[101u32, 2000, 102]];
    assert_eq!(gpu.batch(&three).expect("a batch").seq_len(), toxmodel::DEVICE_LENGTH_MULTIPLE);
    assert_eq!(cpu.batch(&three).expect("a batch").seq_len(), 3);

    // The load's batch size is 16: on the CPU, 16 * 64 tokens per batch.
    let long = vec![512; 32];
    let sizes = |model: &Detoxify| model.plan_batches(&long).iter().map(Vec::len).collect::<Vec<_>>();
    assert_eq!(sizes(&cpu), vec![2; 16]);
    assert_eq!(sizes(&gpu), vec![16, 16]);
    assert_eq!(gpu.batch_budget(16).texts_at(512), 16);

    let reference = reference("bert");
    let texts: Vec<String> = (0..16).map(|idx| reference.texts[idx % reference.texts.len()].repeat(60)).collect();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let lengths: Vec<usize> = texts.iter().map(|text| gpu.tokenizer().encode(text).expect("tokenizes").len()).collect();
    assert!(lengths.iter().all(|&len| len > 256), "{lengths:?}");
    assert_eq!(gpu.plan_batches(&lengths).len(), 1, "one batch on the device");
    let on_gpu = gpu.predict_all_outputs(&texts).expect("scoring long texts on wgpu");
    let on_cpu = cpu.predict_all_outputs(&texts).expect("scoring long texts on the CPU");
    for (text_idx, (ours, theirs)) in on_gpu.iter().zip(&on_cpu).enumerate() {
        let diff = max_abs_diff(ours.values(), theirs.values());
        assert!(diff <= GPU_TOLERANCE, "long text {text_idx}: wgpu differs from the CPU by {diff}");
    }
}
