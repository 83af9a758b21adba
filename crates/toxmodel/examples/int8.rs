//! Issue 6's int8 question: Burn's int8 dynamic quantization of the encoder's
//! Linear weights against fp32, on the same texts, same process.
//!
//! ```text
//! cargo run --release -p toxmodel --features int8-experiment --example int8 -- DIR CORPUS N [BATCH]
//! ```
//!
//! Prints the time of each, the speed ratio, and the drift of the scores
//! (max and mean |int8 - fp32| over every text and class, and how often the
//! 0.5 decision agrees).
use std::path::PathBuf;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        return Err("usage: int8 DIR CORPUS N [BATCH]".into());
    }
    let dir = PathBuf::from(&args[1]);
    let corpus = std::fs::read_to_string(&args[2])?;
    let n: usize = args[3].parse()?;
    let batch_size: usize = args.get(4).map_or(Ok(32), |batch| batch.parse())?;
    let texts: Vec<&str> = corpus.lines().take(n).collect();
    let options = toxmodel::LoadOptions {
        hf_config: Some(dir.join("config.json")),
        tokenizer: Some(dir.clone()),
        batch_size: Some(batch_size),
        ..Default::default()
    };
    let checkpoint = dir.join("checkpoint.ckpt");
    let fp32 = toxmodel::Detoxify::load(&checkpoint, &options)?;
    let mut int8 = toxmodel::Detoxify::load(&checkpoint, &options)?;
    int8.quantize_linear_weights_int8();

    let time = |model: &toxmodel::Detoxify| -> Result<(f64, Vec<Vec<f32>>), toxmodel::Error> {
        let start = Instant::now();
        let scores = model.predict(&texts)?;
        Ok((start.elapsed().as_secs_f64(), scores.iter().map(|row| row.values().to_vec()).collect()))
    };
    // Alternate, twice each, and keep the faster run of each.
    let (mut fp32_best, mut int8_best) = (f64::INFINITY, f64::INFINITY);
    let (mut fp32_scores, mut int8_scores) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        let (seconds, scores) = time(&fp32)?;
        fp32_best = fp32_best.min(seconds);
        fp32_scores = scores;
        let (seconds, scores) = time(&int8)?;
        int8_best = int8_best.min(seconds);
        int8_scores = scores;
    }
    let (mut max, mut sum, mut count, mut agree) = (0f32, 0f64, 0usize, 0usize);
    for (a, b) in fp32_scores.iter().flatten().zip(int8_scores.iter().flatten()) {
        let diff = (a - b).abs();
        max = max.max(diff);
        sum += f64::from(diff);
        count += 1;
        agree += usize::from((*a >= 0.5) == (*b >= 0.5));
    }
    println!("texts {}, batch {batch_size}, workers {}", texts.len(), fp32.workers());
    println!("fp32: {fp32_best:.2} s ({:.2} texts/s)", texts.len() as f64 / fp32_best);
    println!("int8: {int8_best:.2} s ({:.2} texts/s)", texts.len() as f64 / int8_best);
    println!("speed int8 / fp32: {:.2}x", fp32_best / int8_best);
    println!(
        "drift over {count} scores: max {max:.3e}, mean {:.3e}; 0.5 decision agrees on {:.2}%",
        sum / count.max(1) as f64,
        100.0 * agree as f64 / count.max(1) as f64
    );
    Ok(())
}
