//! `toxscore._toxscore`: the extension module under the `toxscore` Python
//! package (`python/`).
//!
//! Glue only, as `toxcli` is: it converts Python arguments to `toxmodel`
//! calls and `toxmodel` results and errors back to Python objects. The
//! friendly, Detoxify-shaped API is the pure-Python package on top
//! (`python/toxscore/__init__.py`); its signatures are in
//! `python/toxscore/_toxscore.pyi`.
//!
//! ```python
//! from toxscore._toxscore import Model
//! model = Model.open(checkpoint="checkpoint.ckpt", hf_config=None, tokenizer=None)
//! columns = model.predict(["shut up, you liar"], all_outputs=False, batch_size=32)
//! ```
//!
//! # Invariants
//! - toxpy sits above toxmodel and nothing depends on it; toxmodel knows
//!   nothing of Python.
//! - Every `toxmodel::Error` becomes a Python exception in one place,
//!   [`to_python_error`]; a panic in the model becomes a `RuntimeError`
//!   ([`no_panic`]), never an abort.
//! - Loading and scoring run with the GIL released.

use std::ops::ControlFlow;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use toxmodel::registry::{self, ModelCache};
use toxmodel::{Detoxify, DeviceSpec, Error, LoadOptions, Precision};

/// The one mapping of toxmodel's errors to Python exceptions, with
/// toxmodel's message and its cause chain: `ValueError` for bad input (a
/// checkpoint, config, tokenizer or model name that is not what it should
/// be, a text that cannot be batched), `OSError` for files and downloads
/// (`FileNotFoundError` for a missing file, through `OSError`'s own errno
/// mapping), `RuntimeError` for anything else.
fn to_python_error(error: Error) -> PyErr {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        // Some errors print their cause inline already (an I/O error's text
        // inside a reader's): say it once.
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    if let Error::NotCached { name, .. } = &error {
        // toxmodel leaves how to get the model to its caller.
        message.push_str(&format!(
            "; pass allow_download=True, or checkpoint= a local file (`toxcli models download {name}` \
             fills the same cache)"
        ));
    }
    match &error {
        Error::Io { path, source } => match source.raw_os_error() {
            // OSError(errno, message, filename) picks the subclass
            // (FileNotFoundError, PermissionError ...) from the errno.
            Some(errno) => PyOSError::new_err((errno, message, path.display().to_string())),
            None => PyOSError::new_err(message),
        },
        Error::Download { .. } | Error::HashMismatch { .. } | Error::NotCached { .. } => PyOSError::new_err(message),
        // Stopped by a Python exception or signal: `open` raises that instead.
        Error::DownloadStopped { .. } => PyRuntimeError::new_err(message),
        Error::InvalidCheckpoint { .. }
        | Error::MissingTensor { .. }
        | Error::TensorShape { .. }
        | Error::UnknownArchitecture { .. }
        | Error::InvalidConfig { .. }
        | Error::Tokenizer { .. }
        | Error::InvalidBatch { .. }
        | Error::UnknownModel { .. }
        | Error::Device { .. }
        | Error::UnknownPrecision { .. }
        | Error::PrecisionNotOffered { .. } => PyValueError::new_err(message),
        _ => PyRuntimeError::new_err(message),
    }
}

/// Runs `work`, turning a panic (a bug: toxmodel validates its input) into
/// a `RuntimeError` instead of letting it unwind into Python.
fn no_panic<T>(what: &str, work: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    std::panic::catch_unwind(AssertUnwindSafe(work)).unwrap_or_else(|panic| {
        let reason = panic
            .downcast_ref::<&str>()
            .map(|text| (*text).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown cause".to_owned());
        Err(PyRuntimeError::new_err(format!("internal error while {what}: {reason}")))
    })
}

/// Parses a device name with toxmodel's one parser (`cpu`, `ndarray`,
/// `wgpu`, `wgpu:N`, `cuda`, `cuda:N`; `flex` and `cpu:NAME` too).
fn parse_device(device: &str) -> PyResult<DeviceSpec> {
    let spec: DeviceSpec = device.parse().map_err(to_python_error)?;
    // toxmodel names the Cargo feature; how to rebuild this package with it
    // is ours to say.
    spec.check_compiled_in().map_err(|error| {
        PyValueError::new_err(format!(
            "{error} (`MATURIN_PEP517_ARGS=\"--features {}\" pip install ./python` in a toxscore checkout)",
            spec.feature()
        ))
    })?;
    Ok(spec)
}

/// A loaded Detoxify model.
#[pyclass(frozen, module = "toxscore._toxscore")]
struct Model {
    model: Arc<Detoxify>,
    checkpoint: PathBuf,
}

impl Model {
    fn load(
        py: Python<'_>,
        checkpoint: PathBuf,
        options: LoadOptions,
        registered: Option<&'static registry::RegisteredModel>,
    ) -> PyResult<Model> {
        let loaded = py.detach(|| {
            no_panic("loading the model", || {
                let (model, _sha256) =
                    Detoxify::load_hashed(&checkpoint, &options, registered).map_err(to_python_error)?;
                Ok(model)
            })
        })?;
        Ok(Model { model: Arc::new(loaded), checkpoint })
    }
}

#[pymethods]
impl Model {
    /// Loads a model: a local Detoxify `checkpoint`, or else the released
    /// model `name` from the cache (downloaded first when it is missing and
    /// `allow_download` is set; its SHA-256 checked against the one its file
    /// name carries).
    #[staticmethod]
    #[pyo3(signature = (*, checkpoint=None, name="original", cache_dir=None, allow_download=true, hf_config=None, tokenizer=None, device="cpu", precision="f32", workers=None))]
    #[allow(clippy::too_many_arguments)]
    fn open(
        py: Python<'_>,
        checkpoint: Option<PathBuf>,
        name: &str,
        cache_dir: Option<PathBuf>,
        allow_download: bool,
        hf_config: Option<PathBuf>,
        tokenizer: Option<PathBuf>,
        device: &str,
        precision: &str,
        workers: Option<usize>,
    ) -> PyResult<Model> {
        let device = parse_device(device)?;
        let precision: Precision = precision.parse().map_err(to_python_error)?;
        let options = LoadOptions { hf_config, tokenizer, device, precision, batch_size: None, workers };
        if let Some(checkpoint) = checkpoint {
            return Model::load(py, checkpoint, options, None);
        }
        let registered = registry::find(name).map_err(to_python_error)?;
        if registered.architecture.is_none() {
            return Err(PyValueError::new_err(format!(
                "model {name} ({}) is not supported by this toxscore yet",
                registered.class_name
            )));
        }
        let cache = match cache_dir {
            // Detoxify's downloads are found whatever the cache folder.
            Some(folder) => ModelCache::new(folder).with_torch_hub_checkpoints(model_cache().torch_hub_checkpoints()),
            None => model_cache(),
        };
        let mut stopped_by: Option<PyErr> = None;
        let found = py.detach(|| {
            no_panic("downloading the model", || {
                // The GIL is released while downloading, so a Ctrl-C only
                // reaches Python when something checks for it: here, as each
                // piece arrives.
                let mut check_signals = |_: registry::Progress<'_>| {
                    Python::attach(|py| match py.check_signals() {
                        Ok(()) => ControlFlow::Continue(()),
                        Err(error) => {
                            stopped_by = Some(error);
                            ControlFlow::Break(())
                        }
                    })
                };
                cache.ensure(registered, allow_download, &mut check_signals).map_err(to_python_error)
            })
        });
        let found = match (found, stopped_by) {
            (Err(_), Some(signal)) => return Err(signal),
            (found, _) => found?,
        };
        let options = options.or_tokenizer(&found.tokenizer_dir);
        Model::load(py, found.checkpoint, options, Some(registered))
    }

    /// The named classes `predict` returns (Detoxify's), in order.
    #[getter]
    fn class_names(&self) -> Vec<String> {
        self.model.class_names().to_vec()
    }

    /// Every output's name, identity outputs included.
    #[getter]
    fn all_class_names(&self) -> Vec<String> {
        self.model.all_class_names().to_vec()
    }

    /// The checkpoint file.
    #[getter]
    fn checkpoint(&self) -> PathBuf {
        self.checkpoint.clone()
    }

    /// The Burn backend the model runs on: flex, ndarray, wgpu or cuda.
    #[getter]
    fn backend(&self) -> &'static str {
        self.model.device().backend_name()
    }

    /// The device the model runs on, as `device=` names it (`cpu`, `wgpu:1`).
    #[getter]
    fn device(&self) -> String {
        self.model.device().to_string()
    }

    /// The device as its runtime names it (the wgpu adapter, the CUDA card;
    /// a software driver says so), or `None` on the CPU.
    #[getter]
    fn device_name(&self) -> Option<String> {
        self.model.device_identity().map(ToString::to_string)
    }

    /// Whether the device is a software driver (no GPU behind it): it
    /// computes on the CPU, slower than `cpu`.
    #[getter]
    fn device_is_software(&self) -> bool {
        self.model.device_identity().is_some_and(|identity| identity.software)
    }

    /// The floating-point type it computes in: f32 or f16.
    #[getter]
    fn precision(&self) -> String {
        self.model.precision().to_string()
    }

    /// The transformers class the checkpoint declares.
    #[getter]
    fn architecture(&self) -> &'static str {
        self.model.info().architecture.class_name()
    }

    /// How many batches run side by side.
    #[getter]
    fn workers(&self) -> usize {
        self.model.workers()
    }

    /// The checkpoint's tensors the architecture does not use.
    #[getter]
    fn ignored_tensors(&self) -> Vec<String> {
        self.model.ignored_tensors().to_vec()
    }

    /// Scores `texts` and returns one list of probabilities per class (the
    /// named classes, or every output with `all_outputs`), each in input
    /// order. `progress`, when given, is called with the number of texts
    /// scored so far after each round of batches; an exception it raises,
    /// or a signal such as Ctrl-C, stops the scoring and is raised here.
    #[pyo3(signature = (texts, *, all_outputs=false, batch_size=32, progress=None))]
    fn predict(
        &self,
        py: Python<'_>,
        texts: Vec<String>,
        all_outputs: bool,
        batch_size: usize,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Vec<Vec<f32>>> {
        if batch_size == 0 {
            return Err(PyValueError::new_err("batch_size must be at least 1, got 0"));
        }
        let model = &self.model;
        let mut stopped_by: Option<PyErr> = None;
        let rows = py.detach(|| {
            no_panic("scoring", || {
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                let mut report = |scored: usize| {
                    Python::attach(|py| {
                        let outcome = match &progress {
                            Some(callback) => callback.call1(py, (scored,)).map(drop),
                            None => Ok(()),
                        };
                        match outcome.and_then(|()| py.check_signals()) {
                            Ok(()) => ControlFlow::Continue(()),
                            Err(error) => {
                                stopped_by = Some(error);
                                ControlFlow::Break(())
                            }
                        }
                    })
                };
                model.predict_rows(&refs, batch_size, &mut report).map_err(to_python_error)
            })
        })?;
        let Some(rows) = rows else {
            return Err(stopped_by.unwrap_or_else(|| PyRuntimeError::new_err("scoring stopped")));
        };
        let rows: Vec<Vec<f32>> =
            if all_outputs { rows } else { rows.iter().map(|row| model.named_scores(row)).collect() };
        let n_classes = if all_outputs { model.all_class_names().len() } else { model.class_names().len() };
        Ok((0..n_classes).map(|class_idx| rows.iter().map(|row| row[class_idx]).collect()).collect())
    }

    fn __repr__(&self) -> String {
        format!(
            "Model(checkpoint={:?}, architecture={}, classes={})",
            self.checkpoint.display().to_string(),
            self.architecture(),
            self.model.class_names().len()
        )
    }
}

/// The model cache the environment describes, as `toxcli` reads it.
fn model_cache() -> ModelCache {
    ModelCache::from_env(|name| std::env::var_os(name))
}

/// The default model cache folder (`TOXSCORE_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/toxscore`, else `~/.cache/toxscore`), shared with `toxcli`.
#[pyfunction]
fn default_cache_dir() -> PathBuf {
    model_cache().root().to_owned()
}

/// The released models' names, in Detoxify's order.
#[pyfunction]
fn model_names() -> Vec<&'static str> {
    registry::MODELS.iter().map(|model| model.name).collect()
}

/// Where the cache holds (or would hold) a released model's checkpoint.
#[pyfunction]
#[pyo3(signature = (name, cache_dir=None))]
fn cached_checkpoint_path(name: &str, cache_dir: Option<PathBuf>) -> PyResult<PathBuf> {
    let registered = registry::find(name).map_err(to_python_error)?;
    let cache = cache_dir.map_or_else(model_cache, ModelCache::new);
    Ok(cache.checkpoint_path(registered))
}

/// The Burn backends compiled in, the default first: flex, ndarray, wgpu, cuda.
#[pyfunction]
fn backends() -> Vec<&'static str> {
    DeviceSpec::compiled_in().into_iter().map(DeviceSpec::backend_name).collect()
}

/// The devices compiled in, the default first, as `device=` names them
/// (whether this machine has them is known when a model loads).
#[pyfunction]
fn devices() -> Vec<String> {
    DeviceSpec::compiled_in().into_iter().map(|device| device.to_string()).collect()
}

#[pymodule]
mod _toxscore {
    #[pymodule_export]
    use super::{Model, backends, cached_checkpoint_path, default_cache_dir, devices, model_names};

    #[pymodule_init]
    fn init(module: &pyo3::Bound<'_, pyo3::types::PyModule>) -> pyo3::PyResult<()> {
        use pyo3::types::PyModuleMethods;
        module.add("__version__", env!("CARGO_PKG_VERSION"))
    }
}
