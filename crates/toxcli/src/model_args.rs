//! Choosing and loading the model: `--model NAME` from the cache (downloaded
//! on first use), or `--checkpoint PATH` offline.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Args;
use toxdedup::ModelTable;
use toxmodel::registry::{self, ModelCache};
use toxmodel::{Architecture, CheckpointInfo, Detoxify, DeviceSpec, LoadOptions, Precision};

/// The model flags shared by `predict` and `score`.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// Detoxify model: original, unbiased, multilingual, original-small, unbiased-small.
    /// Fetched into the cache on first use. With --checkpoint, names the score table
    /// the checkpoint's scores go to (default: inferred from the checkpoint).
    #[arg(long, env = "MODEL_NAME")]
    pub model: Option<String>,
    /// A local Detoxify checkpoint (.ckpt) to use instead of a cached download.
    #[arg(long, value_name = "PATH")]
    pub checkpoint: Option<PathBuf>,
    /// A Hugging Face config.json overriding the base model's built-in
    /// config, or a folder holding one (as Detoxify's
    /// huggingface_config_path: the tokenizer then comes from it too).
    #[arg(long, value_name = "PATH")]
    pub hf_config: Option<PathBuf>,
    /// Tokenizer: tokenizer.json, vocab.txt, vocab.json (+ merges.txt),
    /// sentencepiece.bpe.model / spiece.model, or a folder holding one of
    /// them. Default: the --hf-config folder, else the checkpoint's folder.
    #[arg(long, value_name = "PATH")]
    pub tokenizer: Option<PathBuf>,
    /// Where the model runs: cpu (default), ndarray, wgpu, wgpu:N (the N-th
    /// discrete GPU), cuda, cuda:N. GPUs need a build with the Cargo feature
    /// of that name (docs/gpu.md); a device this build or machine lacks is an
    /// error, never a silent fall-back to the CPU.
    #[arg(long, env = "TOXSCORE_DEVICE", default_value = "cpu", value_parser = parse_device)]
    pub device: DeviceSpec,
    /// The floating-point type: f32 (default, as Detoxify). f16 drifts over
    /// 1e-3 from f32 and is parsed only by builds with the Cargo feature
    /// `f16-experiment`, to measure it (docs/gpu.md).
    #[arg(long, env = "TOXSCORE_PRECISION", default_value = "f32", value_parser = parse_precision)]
    pub precision: Precision,
    /// Never download: fail if the model is not cached.
    #[arg(long, env = "TOXSCORE_OFFLINE", value_parser = clap::builder::BoolishValueParser::new(), default_value_t = false, num_args = 0..=1, default_missing_value = "true")]
    pub offline: bool,
}

/// Parses `--device` while the arguments are parsed, so that an unknown
/// name, or a device this build lacks, is a usage error (exit 2) before any
/// work starts. Whether the machine has the device is known when it opens
/// (also exit 2).
fn parse_device(name: &str) -> Result<DeviceSpec, String> {
    let device: DeviceSpec = name.parse().map_err(|error: toxmodel::Error| error.to_string())?;
    // toxmodel names the Cargo feature; how to rebuild with it is ours to say.
    device
        .check_compiled_in()
        .map_err(|error| format!("{error} (`cargo install --path crates/toxcli --features {}`)", device.feature()))?;
    Ok(device)
}

fn parse_precision(name: &str) -> Result<Precision, String> {
    name.parse().map_err(|error: toxmodel::Error| error.to_string())
}

/// A checkpoint's SHA-256 as messages show it: its first 12 hex digits
/// (what `verify --scored-by` takes back).
pub fn short_sha(sha256: &str) -> &str {
    sha256.get(..12).unwrap_or(sha256)
}

/// A loaded model with the score table its outputs go to.
#[derive(Debug, Clone)]
pub struct LoadedModel {
    /// The model, shared between threads.
    pub model: Arc<Detoxify>,
    /// Its score table.
    pub table: ModelTable,
    /// The checkpoint's SHA-256, stored beside every score.
    pub checkpoint_sha256: String,
}

/// The model cache: `TOXSCORE_CACHE_DIR` and the other variables
/// [`ModelCache::from_env`] reads (the Python package reads the same ones, so
/// both share downloads).
pub fn model_cache() -> ModelCache {
    ModelCache::from_env(|name| std::env::var_os(name))
}

impl ModelArgs {
    /// Resolves the checkpoint (downloading if needed), loads the model and
    /// hashes the checkpoint, both at once.
    pub fn load(&self, batch_size: usize) -> Result<LoadedModel> {
        self.load_with_workers(batch_size, None)
    }

    /// As [`load`](Self::load), with `workers` batches run side by side
    /// (default: one per core).
    pub fn load_with_workers(&self, batch_size: usize, workers: Option<usize>) -> Result<LoadedModel> {
        let mut options = LoadOptions {
            hf_config: self.hf_config.clone(),
            tokenizer: self.tokenizer.clone(),
            device: self.device,
            precision: self.precision,
            batch_size: Some(batch_size),
            workers,
        };
        let (checkpoint, registered) = match &self.checkpoint {
            Some(path) => (path.clone(), None),
            None => {
                let name = self.model.as_deref().unwrap_or("original");
                let registered = registry::find(name)?;
                if registered.architecture.is_none() {
                    bail!("model {name} ({}) is not supported by this toxscore yet", registered.class_name);
                }
                let cache = model_cache();
                let mut announced = false;
                // Said once, when bytes first arrive: a model found in the
                // cache (or in Detoxify's torch hub folder) downloads nothing.
                let mut progress = |update: registry::Progress<'_>| {
                    if !announced {
                        announced = true;
                        eprintln!(
                            "downloading {} into {} (once; later runs use the cache)",
                            update.url,
                            cache.model_dir(registered).display()
                        );
                    }
                    ControlFlow::Continue(())
                };
                let found = match cache.ensure(registered, !self.offline, &mut progress) {
                    Err(error @ toxmodel::Error::NotCached { .. }) => {
                        return Err(anyhow::Error::new(error).context(format!(
                            "--offline: download the model first with `toxcli models download {name}`, \
                             or pass --checkpoint"
                        )));
                    }
                    found => found?,
                };
                options = options.or_tokenizer(&found.tokenizer_dir);
                (found.checkpoint, Some(registered))
            }
        };
        // Hash while loading: the hash is stored with every score, and it
        // verifies a cached download before its scores are written.
        let (model, sha256) = match Detoxify::load_hashed(&checkpoint, &options, registered) {
            Err(error @ toxmodel::Error::HashMismatch { .. }) => {
                return Err(
                    anyhow::Error::new(error).context("the cached model is damaged: delete it and download it again")
                );
            }
            loaded => loaded.with_context(|| format!("loading model from {}", checkpoint.display()))?,
        };
        if model.precision() == Precision::F16 {
            eprintln!(
                "warning: --precision f16 (an f16-experiment build) drifts up to 8.5e-3 from f32 on the fixture \
                 models (docs/gpu.md); use f32 for results you keep"
            );
        }
        // wgpu takes a software driver (lavapipe) when it finds no GPU's: it
        // computes right, on the CPU, and far slower than `--device cpu`.
        if let Some(identity) = model.device_identity().filter(|identity| identity.software) {
            eprintln!(
                "warning: --device {} runs on {:?}, a software driver: it computes on the CPU, slower than \
                 --device cpu; for a GPU, install its vendor's Vulkan driver (docs/gpu.md)",
                model.device(),
                identity.name
            );
        }
        let ignored = model.ignored_tensors();
        if !ignored.is_empty() {
            // transformers ignores such tensors too, with a warning.
            eprintln!(
                "warning: {} holds {} tensors the {} architecture does not use, ignored: {}{}",
                checkpoint.display(),
                ignored.len(),
                model.info().architecture.class_name(),
                ignored.iter().take(3).cloned().collect::<Vec<_>>().join(", "),
                if ignored.len() > 3 { ", ..." } else { "" }
            );
        }
        let table = self.table_for(model.info())?;
        if table.columns.len() != model.class_names().len() {
            bail!(
                "the checkpoint has {} named classes ({}) but score table {} has {} columns",
                model.class_names().len(),
                model.class_names().join(", "),
                table.table,
                table.columns.len()
            );
        }
        Ok(LoadedModel { model: Arc::new(model), table, checkpoint_sha256: sha256 })
    }

    fn table_for(&self, info: &CheckpointInfo) -> Result<ModelTable> {
        // The released model a checkpoint of this shape is (Detoxify's own).
        let released = match info.architecture {
            Architecture::XlmRoberta => "multilingual",
            Architecture::Roberta => "unbiased",
            Architecture::Bert => "original",
            Architecture::Albert if info.num_classes == 6 => "original-small",
            Architecture::Albert => "unbiased-small",
        };
        let name = self.model.as_deref().unwrap_or(released);
        let table = ModelTable::by_model(name)?.clone();
        // `--model` with `--checkpoint` names the table on purpose (a
        // fine-tuned checkpoint scored beside the released one, say), but a
        // checkpoint of another released model's shape filed under it is
        // more often a slip, and nothing downstream could tell.
        if self.checkpoint.is_some() && name != released {
            eprintln!(
                "warning: --model {name} files these scores in {}, but the checkpoint is a {} with {} outputs, \
                 the shape of Detoxify's `{released}`: its scores will sit with {name}'s; leave out --model to \
                 file them under {released}",
                table.table,
                info.architecture.class_name(),
                info.num_classes
            );
        }
        Ok(table)
    }
}
