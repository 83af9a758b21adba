//! One model forward pass at batch 1, 8, 32 and 64 × 16, 32, 64 and 128
//! tokens (special tokens included, no padding), fp32, on the default CPU
//! backend.
//!
//! ```text
//! cargo bench -p toxmodel --bench forward                 # every shape
//! cargo bench -p toxmodel --bench forward -- 'b32x'       # batch 32 only
//! ```
//!
//! It uses the bert-base-shape checkpoint of `fixtures/large/original/` when
//! it exists (the real measure; group `forward/bert-base`), else the tiny
//! committed BERT fixture (`forward/tiny`). On two cores bert-base at
//! 64 × 128 takes seconds per pass, hence ten samples and a short
//! measurement time: criterion extends it as needed and says so.
//!
//! Throughput is in sequences (texts) per second.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use toxmodel::{Detoxify, LoadOptions};

mod common;

const BATCH_SIZES: [usize; 4] = [1, 8, 32, 64];
const SEQUENCE_LENGTHS: [usize; 4] = [16, 32, 64, 128];

/// `n_sequences` sequences of exactly `length` tokens: the tokenizer's own
/// special tokens around ordinary word-piece ids, different per sequence.
fn sequences(model: &Detoxify, n_sequences: usize, length: usize) -> Vec<Vec<u32>> {
    let specials = model.tokenizer().encode("").expect("the empty text tokenizes");
    let (first, last) = (specials[0], specials[specials.len() - 1]);
    let vocab_size = model.batch_spec().vocab_size as u32;
    // Ids from 1000 up skip bert's special and unused tokens.
    let ordinary = |seed: usize| 1000 + (seed as u32).wrapping_mul(7919) % (vocab_size - 1000);
    (0..n_sequences)
        .map(|sequence_idx| {
            let mut ids = vec![first];
            ids.extend((0..length - 2).map(|token_idx| ordinary(sequence_idx * length + token_idx)));
            ids.push(last);
            ids
        })
        .collect()
}

fn forward(c: &mut Criterion) {
    let fixture = common::model_fixture();
    let options = LoadOptions {
        hf_config: Some(fixture.dir.join("config.json")),
        tokenizer: Some(fixture.dir.join("vocab.txt")),
        ..LoadOptions::default()
    };
    let checkpoint = fixture.dir.join("checkpoint.ckpt");
    let model = Detoxify::load(&checkpoint, &options)
        .unwrap_or_else(|error| panic!("loading {}: {error}", checkpoint.display()));

    let mut group = c.benchmark_group(format!("forward/{}", fixture.label));
    for batch_size in BATCH_SIZES {
        for length in SEQUENCE_LENGTHS {
            let batch = model.batch(&sequences(&model, batch_size, length)).expect("a valid batch");
            group.throughput(Throughput::Elements(batch_size as u64));
            group.bench_with_input(
                BenchmarkId::from_parameter(format!("b{batch_size}x{length}")),
                &batch,
                |bencher, batch| {
                    bencher.iter(|| black_box(model.forward(batch)));
                },
            );
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = forward
}
criterion_main!(benches);
