//! The Detoxify toxicity classifiers, ported to Burn.
//!
//! Loads Detoxify's own `.ckpt` files (a `torch.save` zip holding `config`
//! and `state_dict`) and computes the same probabilities as PyTorch
//! transformers: `BertForSequenceClassification` (`original`) and
//! `RobertaForSequenceClassification` (`unbiased`), fp32, sigmoid outputs.
//!
//! ```no_run
//! use std::path::Path;
//! use toxmodel::{Detoxify, LoadOptions};
//!
//! # fn main() -> toxmodel::Result<()> {
//! let options = LoadOptions { tokenizer: Some("bert-base-uncased/vocab.txt".into()), ..LoadOptions::default() };
//! let model = Detoxify::load(Path::new("toxic_original-c1212f89.ckpt"), &options)?;
//! for scores in model.predict(&["shut up, you liar", "have a nice day"])? {
//!     println!("toxicity {:.3}", scores.get("toxicity").unwrap_or(f32::NAN));
//! }
//! # Ok(()) }
//! ```
//!
//! # Invariants
//! - The architecture comes from the checkpoint's declared `model_name`,
//!   never from tensor shapes; every tensor is shape-checked, and a tensor
//!   left unused is an error (buffers such as `position_ids` excepted).
//! - [`Detoxify::forward`] cannot fail: input is validated when a
//!   [`TokenBatch`] is built.
//! - Model code is generic over the backend: Burn's [`Device`] picks it at
//!   run time, named by one [`DeviceSpec`] (`cpu` on `flex` by default;
//!   `ndarray`, `wgpu` and `cuda` behind their features). A device that is
//!   not there is an error, never a silent fall-back to the CPU.
//!
//! This crate knows nothing of SQL, async runtimes or storage.
#![warn(missing_docs)]

mod batch;
mod budget;
mod checkpoint;
mod config;
pub mod device;
mod error;
mod loader;
mod model;
pub mod registry;
mod sentencepiece;
mod tokenizer;

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use batch::{BatchSpec, TokenBatch};
pub use budget::{ASSUMED_DEVICE_MEMORY, BatchBudget, DEVICE_LENGTH_MULTIPLE, DeviceMemory, TOKENS_PER_TEXT};
pub use burn::tensor::Device;
pub use checkpoint::{Checkpoint, CheckpointInfo, rename_class, sha256_file};
pub use config::{Activation, Architecture, EncoderConfig};
pub use device::{DeviceIdentity, DeviceSpec, Precision};
pub use error::{Error, Result};
pub use tokenizer::TextTokenizer;

use model::{ForwardSettings, SequenceClassifier};

/// The identity outputs of the 16-output models (`identity_classes` in their
/// config). Detoxify returns only the named classes;
/// [`Detoxify::predict_all_outputs`] exposes these too.
pub const IDENTITY_CLASSES: &[&str] = &[
    "male",
    "female",
    "homosexual_gay_or_lesbian",
    "christian",
    "jewish",
    "muslim",
    "black",
    "white",
    "psychiatric_or_mental_illness",
];

/// How to load a model.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// A Hugging Face `config.json` overriding the built-in base config, or
    /// a folder holding one (and, as Detoxify's `huggingface_config_path`,
    /// the tokenizer files too).
    pub hf_config: Option<PathBuf>,
    /// The tokenizer: a `tokenizer.json`, `vocab.txt`, `vocab.json` (with
    /// `merges.txt`), or a folder holding them. Default: the `hf_config`
    /// folder where that is a folder, else the checkpoint's folder.
    pub tokenizer: Option<PathBuf>,
    /// Where the model runs (default: the CPU, on `flex`). Opened while
    /// loading: a device this build or machine lacks is an [`Error::Device`].
    pub device: DeviceSpec,
    /// The floating-point type it computes in (default f32; f16 on GPUs only).
    pub precision: Precision,
    /// The batch size [`Detoxify::predict`] uses; default 32.
    pub batch_size: Option<usize>,
    /// How many batches run at once, each on its own thread (default: the
    /// number of cores). Running whole batches side by side keeps every
    /// core busy; splitting each matrix product across cores leaves them
    /// waiting during the element-wise work between products. On a GPU
    /// there is one worker whatever this says: one model instance, fed one
    /// stream of batches, while the CPU threads tokenize.
    pub workers: Option<usize>,
}

impl LoadOptions {
    /// Takes the tokenizer from `folder` unless these options already say
    /// where it comes from (`tokenizer`, or an `hf_config` folder). For a
    /// released model: [`registry::CachedModel::tokenizer_dir`], which is not
    /// the checkpoint's folder when the checkpoint is Detoxify's download in
    /// torch hub's folder.
    pub fn or_tokenizer(mut self, folder: &Path) -> LoadOptions {
        let has_config_folder = self.hf_config.as_deref().is_some_and(Path::is_dir);
        if self.tokenizer.is_none() && !has_config_folder {
            self.tokenizer = Some(folder.to_owned());
        }
        self
    }
}

/// Texts tokenized and grouped into batches by [`Detoxify::prepare`].
#[derive(Debug)]
pub struct PreparedTexts {
    plan: Vec<Vec<usize>>,
    batches: Vec<TokenBatch>,
    n_texts: usize,
}

impl PreparedTexts {
    /// The number of texts.
    pub fn len(&self) -> usize {
        self.n_texts
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.n_texts == 0
    }
}

/// One text's scores: the sigmoid of each output, by class name, in the
/// checkpoint's order.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    names: Arc<[String]>,
    values: Vec<f32>,
}

impl Scores {
    /// The score of a class, if the model has it.
    pub fn get(&self, class: &str) -> Option<f32> {
        self.names.iter().position(|name| name == class).map(|idx| self.values[idx])
    }

    /// `(class name, score)` pairs in the checkpoint's order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, f32)> {
        self.names.iter().map(String::as_str).zip(self.values.iter().copied())
    }

    /// The scores in the checkpoint's order.
    pub fn values(&self) -> &[f32] {
        &self.values
    }
}

/// A loaded Detoxify model with its tokenizer: load once, predict many times.
/// It is `Send + Sync`; share it behind an `Arc` rather than cloning weights.
#[derive(Debug)]
pub struct Detoxify {
    classifier: SequenceClassifier,
    settings: ForwardSettings,
    tokenizer: TextTokenizer,
    spec: BatchSpec,
    info: CheckpointInfo,
    device: Device,
    device_spec: DeviceSpec,
    precision: Precision,
    batch_size: usize,
    /// On a device: what its memory allows a batch (`None` on the CPU).
    device_fit: Option<budget::DeviceFit>,
    /// On a device: its runtime's name for it (`None` on the CPU).
    device_identity: Option<DeviceIdentity>,
    /// One single-thread pool per worker: Burn's CPU backends parallelise
    /// through rayon, and inside such a pool a forward pass runs on its thread alone.
    workers: Vec<rayon::ThreadPool>,
    all_names: Arc<[String]>,
    named_names: Arc<[String]>,
    named_indexes: Vec<usize>,
    ignored_tensors: Vec<String>,
}

impl Detoxify {
    /// Loads a Detoxify checkpoint and its tokenizer.
    pub fn load(checkpoint_path: &Path, options: &LoadOptions) -> Result<Detoxify> {
        let checkpoint = Checkpoint::open(checkpoint_path)?;
        let info = checkpoint.info().clone();
        let architecture = info.architecture;
        // A folder is Detoxify's `huggingface_config_path`: the config and
        // the tokenizer both come from it.
        let config_folder = options.hf_config.as_deref().filter(|path| path.is_dir());
        let config = match (&options.hf_config, config_folder) {
            (_, Some(folder)) => EncoderConfig::from_file(&folder.join("config.json"))?,
            (Some(path), None) => EncoderConfig::from_file(path)?,
            (None, _) if names_base_model(&info.base_model, architecture.base_model()) => {
                EncoderConfig::builtin(architecture)
            }
            (None, _) => {
                // Detoxify fetches `model_type`'s config from the hub; toxscore
                // has only the base models' configs built in, and guessing
                // another model's shape would score with the wrong one.
                return Err(Error::InvalidConfig {
                    source_name: checkpoint_path.display().to_string(),
                    problem: format!(
                        "config.arch.args.model_type is {:?}, whose Hugging Face config toxscore does not have \
                         built in (it has {} for {}): pass that model's config.json (--hf-config, or \
                         Detoxify's huggingface_config_path)",
                        info.base_model,
                        architecture.base_model(),
                        architecture.class_name()
                    ),
                });
            }
        };
        let tokenizer_path = match (&options.tokenizer, config_folder) {
            (Some(path), _) => path.clone(),
            (None, Some(folder)) => folder.to_owned(),
            (None, None) => checkpoint_path.parent().map(Path::to_owned).unwrap_or_else(|| PathBuf::from(".")),
        };
        // Detoxify tokenizes with `truncation=True`, which cuts at the
        // tokenizer's `model_max_length` (tokenizer_config.json), and not at
        // all without one (transformers' VERY_LARGE_INTEGER): a longer text
        // then fails in the position embeddings. toxscore cuts at the
        // positions the model has, so it scores every text Detoxify scores
        // alike and never fails where Detoxify would. (It cut at 512 too,
        // which is every released model's positions, so only a config with
        // more positions and no tokenizer_config.json scores differently: as
        // Detoxify does.)
        let positions = config.max_sequence_length(architecture);
        let max_length = match tokenizer::model_max_length(&tokenizer_path)? {
            Some(model_max_length) => model_max_length.min(positions),
            None => positions,
        };
        let tokenizer = TextTokenizer::from_path(&tokenizer_path, architecture, config.vocab_size, max_length)?;
        let device = options.device.open()?;
        options.precision.check(options.device, &device)?;
        let loader::Loaded { mut classifier, ignored_tensors } =
            loader::load_classifier(&checkpoint, architecture, &config, info.num_classes, &device)?;
        if options.precision == Precision::F16 {
            classifier = model::cast_floats(classifier, burn::tensor::FloatDType::F16);
        }
        let workers = if options.device.is_cpu() { options.workers } else { Some(1) };
        let device_fit = match options.device.is_cpu() {
            true => None,
            false => device::memory_of(&device).map(|memory| {
                use burn::module::Module;
                budget::DeviceFit::new(memory, &config, options.precision, classifier.num_params())
            }),
        };
        let device_identity = if options.device.is_cpu() { None } else { device::identity_of(&device) };
        let spec = BatchSpec::new(architecture, &config, tokenizer.pad_token_id());
        let named_indexes: Vec<usize> = (0..info.named_classes).collect();
        let named_names: Arc<[String]> = named_indexes.iter().map(|&idx| info.class_names[idx].clone()).collect();
        Ok(Detoxify {
            classifier,
            // GELU on the host pays on the CPU backends only (f32 there); on
            // a GPU it would copy every activation to the host and back.
            settings: ForwardSettings::new(&config, options.device.is_cpu() && options.precision == Precision::F32),
            tokenizer,
            spec,
            all_names: info.class_names.clone().into(),
            named_names,
            named_indexes,
            info,
            device,
            device_spec: options.device,
            precision: options.precision,
            batch_size: options.batch_size.unwrap_or(32).max(1),
            device_fit,
            device_identity,
            workers: worker_pools(workers)?,
            ignored_tensors,
        })
    }

    /// [`load`](Self::load)s a checkpoint and computes its SHA-256 at the
    /// same time, on another thread. With `released`, the hash must be that
    /// released model's ([`registry::RegisteredModel::check_sha256`]), and a
    /// mismatch is the error even when loading fails too: a damaged download
    /// usually fails both ways, and the hash says why.
    pub fn load_hashed(
        checkpoint_path: &Path,
        options: &LoadOptions,
        released: Option<&registry::RegisteredModel>,
    ) -> Result<(Detoxify, String)> {
        std::thread::scope(|scope| {
            let hashing = scope.spawn(|| sha256_file(checkpoint_path));
            let model = Detoxify::load(checkpoint_path, options);
            let sha256 = hashing.join().expect("hashing a file does not panic");
            if let (Some(released), Ok(sha256)) = (released, &sha256) {
                released.check_sha256(checkpoint_path, sha256)?;
            }
            Ok((model?, sha256?))
        })
    }

    /// The checkpoint's tensors that the architecture does not use (buffers
    /// such as `position_ids` aside), sorted. transformers ignores such
    /// tensors with a warning, and so does this crate; a caller should
    /// show them, since they may mean the checkpoint is not what it seems.
    pub fn ignored_tensors(&self) -> &[String] {
        &self.ignored_tensors
    }

    /// What the checkpoint declares (architecture, base model, classes).
    pub fn info(&self) -> &CheckpointInfo {
        &self.info
    }

    /// The named classes [`predict`](Self::predict) returns, in order
    /// (Detoxify's 6 or 7).
    pub fn class_names(&self) -> &[String] {
        &self.named_names
    }

    /// All output names, identity outputs included.
    pub fn all_class_names(&self) -> &[String] {
        &self.all_names
    }

    /// The number of weights held in memory (4 bytes each in fp32). ALBERT's
    /// shared layers count once.
    pub fn num_parameters(&self) -> usize {
        use burn::module::Module;
        self.classifier.num_params()
    }

    /// How many distinct sets of layer weights the encoder holds: one per
    /// layer for BERT and RoBERTa, one per group (1) for ALBERT.
    pub fn layer_weight_sets(&self) -> usize {
        self.classifier.layers.len()
    }

    /// Where the model runs.
    pub fn device(&self) -> DeviceSpec {
        self.device_spec
    }

    /// The floating-point type it computes in.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// What a valid batch for this model looks like.
    pub fn batch_spec(&self) -> &BatchSpec {
        &self.spec
    }

    /// Scores texts: the named classes, in input order.
    pub fn predict(&self, texts: &[&str]) -> Result<Vec<Scores>> {
        let probabilities = self.predict_probabilities(texts)?;
        Ok(probabilities
            .into_iter()
            .map(|row| Scores {
                names: self.named_names.clone(),
                values: self.named_indexes.iter().map(|&idx| row[idx]).collect(),
            })
            .collect())
    }

    /// Scores texts: every output, identity outputs included, in input order.
    pub fn predict_all_outputs(&self, texts: &[&str]) -> Result<Vec<Scores>> {
        let probabilities = self.predict_probabilities(texts)?;
        Ok(probabilities.into_iter().map(|values| Scores { names: self.all_names.clone(), values }).collect())
    }

    /// Picks the named classes out of a row of all outputs.
    pub fn named_scores(&self, all_outputs: &[f32]) -> Vec<f32> {
        self.named_indexes.iter().map(|&idx| all_outputs[idx]).collect()
    }

    /// Tokenizes, groups texts of similar length into batches of at most the
    /// batch size (so little compute goes to padding), runs the batches on
    /// the workers, and returns all outputs per text in input order.
    fn predict_probabilities(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        // One round: with no one to report to, every batch is balanced over
        // the workers at once.
        Ok(self.predict_prepared(&self.prepare(texts)?))
    }

    /// As [`predict_all_outputs`](Self::predict_all_outputs), as rows of
    /// probabilities (every output, in the checkpoint's order), with a batch
    /// size of its own and a progress callback: after each round of batches
    /// (a few per worker) `progress` gets the number of texts scored so far,
    /// and may stop the work by returning `Break` (then `Ok(None)`). The
    /// rounds keep the scoring sorted by length over all `texts`.
    pub fn predict_rows(
        &self,
        texts: &[&str],
        batch_size: usize,
        progress: &mut dyn FnMut(usize) -> ControlFlow<()>,
    ) -> Result<Option<Vec<Vec<f32>>>> {
        // Rounds of a few batches per worker: the callback runs often enough
        // for a progress bar, and each round still balances its workers.
        self.predict_in_rounds(texts, batch_size, self.workers() * BATCHES_PER_WORKER_AND_ROUND, progress)
    }

    fn predict_in_rounds(
        &self,
        texts: &[&str],
        batch_size: usize,
        batches_per_round: usize,
        progress: &mut dyn FnMut(usize) -> ControlFlow<()>,
    ) -> Result<Option<Vec<Vec<f32>>>> {
        let prepared = self.prepare_with(texts, batch_size)?;
        let mut results = vec![Vec::new(); texts.len()];
        let mut scored = 0;
        let round = batches_per_round.max(1);
        for (plan_round, batch_round) in prepared.plan.chunks(round).zip(prepared.batches.chunks(round)) {
            scored += scatter(&mut results, plan_round, self.forward_many(batch_round));
            if progress(scored).is_break() {
                return Ok(None);
            }
        }
        Ok(Some(results))
    }

    /// Tokenizes texts and groups them into batches (as
    /// [`plan_batches`](Self::plan_batches) does), without running the
    /// model: a caller can prepare the next texts on CPU threads while the
    /// device scores these ([`predict_prepared`](Self::predict_prepared)).
    pub fn prepare(&self, texts: &[&str]) -> Result<PreparedTexts> {
        self.prepare_with(texts, self.batch_size)
    }

    fn prepare_with(&self, texts: &[&str], batch_size: usize) -> Result<PreparedTexts> {
        let batch_size = batch_size.max(1);
        let sequences = self.tokenizer.encode_batch(texts)?;
        let lengths: Vec<usize> = sequences.iter().map(Vec::len).collect();
        let plan = self.batch_budget(batch_size).plan(&lengths);
        let batches = plan
            .iter()
            .map(|chunk| {
                let batch_sequences: Vec<&[u32]> = chunk.iter().map(|&idx| sequences[idx].as_slice()).collect();
                self.batch(&batch_sequences)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(PreparedTexts { plan, batches, n_texts: texts.len() })
    }

    /// Scores [`prepare`](Self::prepare)d texts: every output's
    /// probability, one row per text, in the order the texts were given.
    pub fn predict_prepared(&self, prepared: &PreparedTexts) -> Vec<Vec<f32>> {
        let mut results = vec![Vec::new(); prepared.n_texts];
        scatter(&mut results, &prepared.plan, self.forward_many(&prepared.batches));
        results
    }

    /// Groups texts, given their token counts, into batches: sorted by
    /// length, so texts of similar length share a batch and little compute
    /// goes to padding; at most the batch size per batch, and within the
    /// [`batch_budget`](Self::batch_budget) of the batch's longest text.
    /// Returns the indexes of each batch.
    pub fn plan_batches(&self, lengths: &[usize]) -> Vec<Vec<usize>> {
        self.batch_budget(self.batch_size).plan(lengths)
    }

    /// How many texts of each length one batch of at most `batch_size`
    /// texts holds: on the CPU, [`TOKENS_PER_TEXT`] tokens per text of the
    /// batch size (long texts come in smaller batches, and a batch's memory
    /// does not grow with its texts' length); on a device, what fits its
    /// memory (the largest buffer its runtime allows, and its capacity where
    /// stated, else [`ASSUMED_DEVICE_MEMORY`]).
    pub fn batch_budget(&self, batch_size: usize) -> BatchBudget {
        match self.device_fit {
            None => BatchBudget::cpu(batch_size),
            Some(fit) => BatchBudget::device(batch_size, fit),
        }
    }

    /// What the device's runtime says of its memory: `None` on the CPU.
    pub fn device_memory(&self) -> Option<DeviceMemory> {
        self.device_fit.map(|fit| fit.memory())
    }

    /// Who the device is, as its runtime names it (the wgpu adapter, the
    /// CUDA card), and whether it is a software driver: `None` on the CPU.
    pub fn device_identity(&self) -> Option<&DeviceIdentity> {
        self.device_identity.as_ref()
    }

    /// The number of workers: batches that run at once.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// Runs several batches at once, one per worker, and returns each
    /// batch's rows in order.
    ///
    /// Workers take the batches longest first, so the last ones to run are
    /// the shortest and no worker waits long for another at the end.
    pub fn forward_many(&self, batches: &[TokenBatch]) -> Vec<Vec<Vec<f32>>> {
        let mut order: Vec<usize> = (0..batches.len()).collect();
        order.sort_by_key(|&idx| std::cmp::Reverse(batches[idx].batch_size() * batches[idx].seq_len()));
        let next = std::sync::atomic::AtomicUsize::new(0);
        let mut results: Vec<Vec<Vec<f32>>> = vec![Vec::new(); batches.len()];
        let slots: Vec<std::sync::Mutex<&mut Vec<Vec<f32>>>> = results.iter_mut().map(std::sync::Mutex::new).collect();
        std::thread::scope(|scope| {
            for worker in 0..self.workers().min(batches.len()) {
                let (next, slots, order) = (&next, &slots, &order);
                scope.spawn(move || {
                    loop {
                        let position = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(&batch_idx) = order.get(position) else { break };
                        let batch = &batches[batch_idx];
                        let rows = self.forward_on(worker, batch);
                        **slots[batch_idx].lock().expect("a worker panicked") = rows;
                    }
                });
            }
        });
        drop(slots);
        results
    }

    /// Runs one batch on worker `worker` (modulo the number of workers):
    /// callers that run their own threads, one per worker, use this.
    pub fn forward_on(&self, worker: usize, batch: &TokenBatch) -> Vec<Vec<f32>> {
        self.workers[worker % self.workers.len()].install(|| self.forward(batch))
    }

    /// Builds a batch from token ids (as [`TextTokenizer::encode`] gives
    /// them), padded to the longest; on a device, to a multiple of
    /// [`DEVICE_LENGTH_MULTIPLE`] tokens.
    pub fn batch<S: AsRef<[u32]>>(&self, sequences: &[S]) -> Result<TokenBatch> {
        let multiple = if self.device_spec.is_cpu() { 1 } else { DEVICE_LENGTH_MULTIPLE };
        TokenBatch::padded(&self.spec, sequences, multiple)
    }

    /// The lower-level entry point: runs the model on a pre-tokenized batch
    /// and returns every output's probability, one row per sequence. It runs
    /// on the calling thread, splitting matrix products over rayon's current
    /// pool; [`forward_on`](Self::forward_on) runs it on one worker.
    pub fn forward(&self, batch: &TokenBatch) -> Vec<Vec<f32>> {
        let flat = self.classifier.forward(self.settings, batch, &self.device);
        flat.chunks(self.info.num_classes).map(<[f32]>::to_vec).collect()
    }
}

/// Issue 6's int8 question, measured by `examples/int8.rs`.
#[cfg(feature = "int8-experiment")]
impl Detoxify {
    /// Experimental: quantizes the weights of every encoder Linear layer
    /// (attention and feed-forward; not the embeddings, LayerNorms, biases or
    /// head) to int8, symmetric per tensor, with Burn's dynamic quantization.
    ///
    /// Burn 0.22's CPU backends dequantize a quantized weight back to f32
    /// before each matrix product, so this saves memory but costs time; the
    /// feature exists to reproduce that measurement (docs/performance.md),
    /// not for use.
    pub fn quantize_linear_weights_int8(&mut self) {
        use burn::tensor::quantization::QuantValue;
        let scheme = self.device.settings().quantization.scheme.with_value(QuantValue::Q8S);
        let quantize = |linear: &mut burn::nn::Linear| {
            linear.weight = linear.weight.clone().map(|weight| weight.quantize_dynamic(&scheme));
        };
        for layer in &mut self.classifier.layers {
            quantize(&mut layer.query_key_value);
            quantize(&mut layer.attention_output);
            quantize(&mut layer.intermediate);
            quantize(&mut layer.output);
        }
    }
}

/// Whether a checkpoint's `model_type` names a base model: the hub name
/// itself (`bert-base-uncased`), with an organisation (`google-bert/bert-base-uncased`,
/// the hub's current name), or a local folder of that name.
fn names_base_model(model_type: &str, base_model: &str) -> bool {
    let model_type = model_type.trim_end_matches('/');
    model_type == base_model || model_type.rsplit('/').next() == Some(base_model)
}

/// Batches each worker runs between two progress reports of
/// [`Detoxify::predict_rows`].
const BATCHES_PER_WORKER_AND_ROUND: usize = 4;

/// Puts each batch's rows back at their texts' places in `results`;
/// returns how many texts the batches held.
fn scatter(results: &mut [Vec<f32>], plan: &[Vec<usize>], batch_rows: Vec<Vec<Vec<f32>>>) -> usize {
    let mut placed = 0;
    for (chunk, rows) in plan.iter().zip(batch_rows) {
        for (&text_idx, row) in chunk.iter().zip(rows) {
            results[text_idx] = row;
        }
        placed += chunk.len();
    }
    placed
}

fn worker_pools(workers: Option<usize>) -> Result<Vec<rayon::ThreadPool>> {
    let count = workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from)).max(1);
    (0..count)
        .map(|worker| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .thread_name(move |_| format!("toxmodel-worker-{worker}"))
                .build()
                .map_err(|error| Error::InvalidBatch {
                    problem: format!("cannot start model worker {worker}: {error}"),
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::names_base_model;

    #[test]
    fn model_types_name_base_models_with_or_without_an_organisation() {
        assert!(names_base_model("bert-base-uncased", "bert-base-uncased"));
        assert!(names_base_model("google-bert/bert-base-uncased", "bert-base-uncased"));
        assert!(names_base_model("/models/bert-base-uncased/", "bert-base-uncased"));
        assert!(!names_base_model("bert-base-cased", "bert-base-uncased"));
        assert!(!names_base_model("bert-base-uncased-finetuned", "bert-base-uncased"));
    }
}
