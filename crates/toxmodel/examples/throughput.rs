//! Quick throughput check: `cargo run --release -p toxmodel --example throughput -- DIR CORPUS N BATCH`.
use std::path::PathBuf;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = PathBuf::from(&args[1]);
    let corpus = std::fs::read_to_string(&args[2]).unwrap();
    let n: usize = args[3].parse().unwrap();
    let batch: usize = args[4].parse().unwrap();
    let texts: Vec<&str> = corpus.lines().take(n).collect();
    let start = Instant::now();
    let options = toxmodel::LoadOptions {
        hf_config: Some(dir.join("config.json")),
        tokenizer: Some(dir.clone()),
        batch_size: Some(batch),
        workers: std::env::var("WORKERS").ok().map(|w| w.parse().unwrap()),
        ..Default::default()
    };
    let model = toxmodel::Detoxify::load(&dir.join("checkpoint.ckpt"), &options).unwrap();
    eprintln!("load {:?}", start.elapsed());
    let start = Instant::now();
    let scores = model.predict(&texts).unwrap();
    let elapsed = start.elapsed();
    eprintln!(
        "{} texts in {:?}: {:.2} texts/s; first {:?}",
        texts.len(),
        elapsed,
        texts.len() as f64 / elapsed.as_secs_f64(),
        scores[0].values()
    );
}
