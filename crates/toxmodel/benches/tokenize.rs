//! Tokenization throughput (texts per second) with the bert-base-uncased
//! WordPiece vocabulary, on the tweet-like corpus (or `fixtures/texts.json`
//! when the large corpus is absent).
//!
//! ```text
//! cargo bench -p toxmodel --bench tokenize
//! ```
//!
//! Two ways are measured: one text at a time on one thread (`encode`), and
//! the whole corpus at once with the tokenizers crate's own parallelism
//! (`encode_batch`, what `Detoxify::predict` and `toxcli` use).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use toxmodel::{Architecture, TextTokenizer};

mod common;

/// bert-base-uncased's vocabulary size.
const BERT_VOCAB_SIZE: usize = 30_522;
/// Detoxify truncates to 512 tokens, special tokens included.
const MAX_LENGTH: usize = 512;

fn tokenize(c: &mut Criterion) {
    let (texts, corpus_label) = common::corpus();
    let vocab = common::repo_root().join("fixtures/models/bert/vocab.txt");
    let tokenizer = TextTokenizer::from_path(&vocab, Architecture::Bert, BERT_VOCAB_SIZE, MAX_LENGTH)
        .unwrap_or_else(|error| panic!("loading {}: {error}", vocab.display()));
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();

    let mut group = c.benchmark_group(format!("tokenize/{corpus_label}"));
    group.throughput(Throughput::Elements(refs.len() as u64));
    group.bench_function("encode_one_thread", |bencher| {
        bencher.iter(|| {
            for text in &refs {
                black_box(tokenizer.encode(text).expect("the corpus tokenizes"));
            }
        });
    });
    group.bench_function("encode_batch", |bencher| {
        bencher.iter(|| black_box(tokenizer.encode_batch(&refs).expect("the corpus tokenizes")));
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
    targets = tokenize
}
criterion_main!(benches);
