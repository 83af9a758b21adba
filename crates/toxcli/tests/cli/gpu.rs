//! `toxcli` on a GPU through wgpu: in CI the adapter is Mesa's software
//! Vulkan driver (lavapipe, which `.ci/run` installs), running the same WGSL
//! kernels a GPU runs. Never skipped: without a Vulkan driver these fail
//! with the error that names it.
#![cfg(feature = "wgpu")]

use super::{check_run, fixture_tweets, model_flags, read_export, score_args};

/// The GPU tolerance of `crates/toxmodel/tests/gpu.rs`: other kernels sum
/// in other orders.
const GPU_TOLERANCE: f64 = 1e-4;

#[test]
fn score_on_wgpu_end_to_end_stores_the_scores_the_cpu_gives() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    let flags = model_flags();
    let tweets = fixture_tweets();
    let mut exports = Vec::new();
    for device in ["cpu", "wgpu"] {
        let store = format!("sqlite:{device}.db");
        check_run(dir, &["--store", &store, "import", "--input", &tweets], 0);
        check_run(dir, &["--store", &store, "migrate"], 0);
        let mut args = vec!["--store", store.as_str()];
        args.extend(score_args(&["--device", device, "--batch-size", "16"], &flags));
        let score = check_run(dir, &args, 0);
        // The device as its runtime names it: CI's adapter is lavapipe, no GPU.
        let on = match device {
            "wgpu" => "on wgpu (llvmpipe (",
            _ => "on cpu in f32",
        };
        assert!(score.stderr.contains(on), "{}", score.stderr);
        let software = "warning: --device wgpu runs on \"llvmpipe (";
        assert_eq!(score.stderr.contains(software), device == "wgpu", "{}", score.stderr);
        assert_eq!(score.stderr.contains(", a software driver: no GPU) in f32"), device == "wgpu", "{}", score.stderr);
        // lavapipe states its largest buffer and no capacity.
        let sized = "batches sized by the device's memory (largest buffer 128 MiB, capacity not stated: 4 GiB assumed)";
        assert_eq!(score.stderr.contains(sized), device == "wgpu", "{}", score.stderr);
        assert!(score.stderr.contains("scored 48 texts"), "{}", score.stderr);
        let output = format!("{device}.csv");
        check_run(dir, &["--store", &store, "export", "--output", &output], 0);
        exports.push(read_export(&dir.join(output)));
    }
    let (cpu, gpu) = (&exports[0], &exports[1]);
    assert_eq!(cpu.len(), 60);
    assert_eq!(cpu.keys().collect::<Vec<_>>(), gpu.keys().collect::<Vec<_>>());
    for (status_id, (user, text, scores)) in cpu {
        let (gpu_user, gpu_text, gpu_scores) = &gpu[status_id];
        assert_eq!((user, text), (gpu_user, gpu_text));
        for (on_cpu, on_gpu) in scores.iter().zip(gpu_scores) {
            assert!((on_cpu - on_gpu).abs() <= GPU_TOLERANCE, "status {status_id}: {scores:?} vs {gpu_scores:?}");
        }
    }
    // `TOXSCORE_DEVICE` names the device as --device does.
    let mut predict = vec!["predict"];
    predict.extend(flags.iter().map(String::as_str));
    predict.push("you are a liar");
    let on_wgpu = super::run(super::toxcli(dir).env("TOXSCORE_DEVICE", "wgpu").args(&predict));
    assert_eq!(on_wgpu.code, 0, "{}", on_wgpu.stderr);
    assert!(on_wgpu.stderr.contains("predicting on wgpu (llvmpipe ("), "{}", on_wgpu.stderr);
    let on_cpu = check_run(dir, &predict, 0);
    assert!(!on_cpu.stderr.contains("predicting on"), "{}", on_cpu.stderr);
    let score = |stdout: &str| -> f64 {
        let row: serde_json::Value = serde_json::from_str(stdout.lines().next().expect("a row")).expect("json");
        row["toxicity"].as_f64().expect("a toxicity score")
    };
    assert!((score(&on_wgpu.stdout) - score(&on_cpu.stdout)).abs() <= GPU_TOLERANCE);
}

#[test]
fn a_gpu_the_machine_lacks_is_a_usage_error_naming_the_driver() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    let flags = model_flags();
    let mut predict = vec!["predict"];
    predict.extend(flags.iter().map(String::as_str));
    predict.extend(["--device", "wgpu:7", "x"]);
    let missing = check_run(dir, &predict, 2);
    assert!(missing.stderr.contains("device wgpu:7") && missing.stderr.contains("Vulkan driver"), "{}", missing.stderr);
}
