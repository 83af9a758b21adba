//! The one error type of the model crate.

use std::path::PathBuf;

/// What went wrong while loading or running a model, in the caller's terms.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a Detoxify checkpoint, or is damaged.
    #[error("{path} is not a valid Detoxify checkpoint: {problem}")]
    InvalidCheckpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
        /// The reader's error, when there is one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A tensor the architecture needs is missing from the checkpoint.
    #[error("{path}: tensor {name} is missing from the state_dict")]
    MissingTensor {
        /// The checkpoint file.
        path: PathBuf,
        /// The Hugging Face parameter name.
        name: String,
    },
    /// A tensor has a shape (or type) other than the architecture needs.
    #[error("{path}: tensor {name} has shape {found:?} ({dtype}), expected {expected:?} (a floating-point type)")]
    TensorShape {
        /// The checkpoint file.
        path: PathBuf,
        /// The Hugging Face parameter name.
        name: String,
        /// The shape found in the file.
        found: Vec<usize>,
        /// The element type found in the file.
        dtype: String,
        /// The shape the configuration implies.
        expected: Vec<usize>,
    },
    /// The checkpoint names an architecture this crate does not implement.
    #[error("{path}: unknown model_name {model_name:?} in config.arch.args; supported: {supported}")]
    UnknownArchitecture {
        /// The checkpoint file.
        path: PathBuf,
        /// The `model_name` found.
        model_name: String,
        /// The supported class names.
        supported: String,
    },
    /// A Hugging Face `config.json` is unreadable or inconsistent.
    #[error("invalid model configuration {source_name}: {problem}")]
    InvalidConfig {
        /// Where the configuration came from (a path, or `built-in bert-base-uncased`).
        source_name: String,
        /// What is wrong.
        problem: String,
    },
    /// A tokenizer file is unreadable, or does not fit the model.
    #[error("tokenizer {path}: {problem}")]
    Tokenizer {
        /// The tokenizer file (or folder).
        path: PathBuf,
        /// What is wrong.
        problem: String,
        /// The tokenizers crate's error, when there is one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A batch could not be built from the given token ids.
    #[error("invalid batch: {problem}")]
    InvalidBatch {
        /// What is wrong, naming the text index.
        problem: String,
    },
    /// A model name that is not in the registry.
    #[error("unknown model {name:?}; known models: {known}")]
    UnknownModel {
        /// The name given.
        name: String,
        /// The registry's names.
        known: String,
    },
    /// A download failed.
    #[error("downloading {url}: {problem}")]
    Download {
        /// The address.
        url: String,
        /// What failed.
        problem: String,
        /// The underlying error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A download stopped by its caller (its progress callback returned
    /// `ControlFlow::Break`, on Ctrl-C); nothing was kept.
    #[error("downloading {url}: stopped")]
    DownloadStopped {
        /// The address.
        url: String,
    },
    /// A file's SHA-256 does not match the one its name or registry entry promises.
    #[error(
        "{path}: SHA-256 {actual} does not start with the expected {expected}; the file is damaged or not the released model"
    )]
    HashMismatch {
        /// The file.
        path: PathBuf,
        /// The expected prefix (or whole hash).
        expected: String,
        /// The file's hash.
        actual: String,
    },
    /// A model is not in the cache and downloads are disabled. (How to get
    /// it is the caller's to say: the CLI and the Python package differ.)
    #[error("model {name} is not in the cache {cache}, and downloading is off")]
    NotCached {
        /// The model name.
        name: String,
        /// The cache folder.
        cache: PathBuf,
    },
    /// A device that this build or this machine lacks, or cannot use as asked.
    #[error("device {device}: {problem}")]
    Device {
        /// The device's name, as given (`cuda:1`).
        device: String,
        /// What is wrong: the missing Cargo feature or driver.
        problem: String,
    },
    /// A precision name other than `f32` or `f16`.
    #[error("unknown precision {name:?}; expected f32")]
    UnknownPrecision {
        /// The name given.
        name: String,
    },
    /// f16 asked of a build without the Cargo feature `f16-experiment`.
    #[error(
        "precision {name:?} is not offered: f16 drifts up to {F16_MAX_DRIFT:.1e} from f32 on the fixture models \
         (PyTorch's own f16 up to {TORCH_F16_MAX_DRIFT:.1e}), over the 1e-3 toxscore allows; use f32 \
         (builds with the Cargo feature `f16-experiment` take f16, to measure it: docs/gpu.md)"
    )]
    PrecisionNotOffered {
        /// The name given.
        name: String,
    },
}

use crate::device::{F16_MAX_DRIFT, TORCH_F16_MAX_DRIFT};

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    pub(crate) fn checkpoint(path: impl Into<PathBuf>, problem: impl Into<String>) -> Self {
        Error::InvalidCheckpoint { path: path.into(), problem: problem.into(), source: None }
    }
}
