//! Where a model runs, and in what precision: one parser, shared by the CLI
//! (`--device`, `--precision`) and the Python package (`device=`,
//! `precision=`).
//!
//! | name            | runs on                                                        | Cargo feature |
//! |-----------------|----------------------------------------------------------------|---------------|
//! | `cpu`           | Burn's `flex` backend (pure Rust), every core                  | `flex` (default) |
//! | `ndarray`       | burn-ndarray, for comparison                                   | `ndarray`     |
//! | `wgpu`          | the best GPU wgpu finds (Vulkan, Metal, DX12), else a software one | `wgpu`    |
//! | `wgpu:N`        | the N-th discrete GPU wgpu finds (from 0)                      | `wgpu`        |
//! | `cuda`, `cuda:N`| NVIDIA GPU N (default 0), through CUDA and NVRTC               | `cuda`        |
//!
//! A device that this build lacks, or that the machine lacks, is an
//! [`Error::Device`] naming the Cargo feature or the missing driver: a model
//! never falls back to the CPU silently.

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;

use crate::error::{Error, Result};

/// A device, as `--device` names it: see the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DeviceSpec {
    /// The default CPU backend (`flex`).
    #[default]
    Cpu,
    /// burn-ndarray on the CPU.
    NdArray,
    /// A wgpu adapter: `None` for the best available one, `Some(n)` for
    /// the n-th discrete GPU.
    Wgpu(Option<usize>),
    /// A CUDA device: `None` for device 0.
    Cuda(Option<usize>),
}

/// The names `--device` accepts, for help and error texts.
pub const DEVICE_NAMES: &str = "cpu, ndarray, wgpu, wgpu:N, cuda, cuda:N";

impl DeviceSpec {
    /// The devices this build can run on (whether the machine has them or
    /// not), the default first.
    pub fn compiled_in() -> Vec<DeviceSpec> {
        let mut devices = Vec::new();
        if cfg!(feature = "flex") {
            devices.push(DeviceSpec::Cpu);
        }
        if cfg!(feature = "ndarray") {
            devices.push(DeviceSpec::NdArray);
        }
        if cfg!(feature = "wgpu") {
            devices.push(DeviceSpec::Wgpu(None));
        }
        if cfg!(feature = "cuda") {
            devices.push(DeviceSpec::Cuda(None));
        }
        devices
    }

    /// Whether the device is the CPU, where toxmodel runs whole batches side
    /// by side on its own worker threads and computes GELU on the host.
    pub fn is_cpu(self) -> bool {
        matches!(self, DeviceSpec::Cpu | DeviceSpec::NdArray)
    }

    /// The Cargo feature that compiles this device in.
    pub fn feature(self) -> &'static str {
        match self {
            DeviceSpec::Cpu => "flex",
            DeviceSpec::NdArray => "ndarray",
            DeviceSpec::Wgpu(_) => "wgpu",
            DeviceSpec::Cuda(_) => "cuda",
        }
    }

    /// The Burn backend's name: `flex`, `ndarray`, `wgpu` or `cuda`.
    pub fn backend_name(self) -> &'static str {
        self.feature()
    }

    /// Checks that this build has the device (not that the machine has it).
    pub fn check_compiled_in(self) -> Result<()> {
        if DeviceSpec::compiled_in().iter().any(|compiled| compiled.feature() == self.feature()) {
            Ok(())
        } else {
            Err(self.not_compiled_in())
        }
    }

    /// Opens the device: checks that this build has it and that the
    /// machine's driver can start it. The first use of a GPU device starts
    /// its runtime; later calls return the same device.
    pub fn open(self) -> Result<Device> {
        match self {
            DeviceSpec::Cpu => cpu_device(),
            DeviceSpec::NdArray => ndarray_device(),
            DeviceSpec::Wgpu(index) => wgpu_device(self, index),
            DeviceSpec::Cuda(index) => cuda_device(self, index),
        }
    }

    fn not_compiled_in(self) -> Error {
        Error::Device {
            device: self.to_string(),
            problem: format!(
                // How to rebuild depends on what is being built (the CLI,
                // the Python package): each caller adds its own command.
                "this toxscore was built without it: rebuild with the Cargo feature `{}`; this build has: {}",
                self.feature(),
                compiled_in_names()
            ),
        }
    }
}

fn compiled_in_names() -> String {
    DeviceSpec::compiled_in().iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => formatter.write_str("cpu"),
            DeviceSpec::NdArray => formatter.write_str("ndarray"),
            DeviceSpec::Wgpu(None) => formatter.write_str("wgpu"),
            DeviceSpec::Wgpu(Some(index)) => write!(formatter, "wgpu:{index}"),
            DeviceSpec::Cuda(None) => formatter.write_str("cuda"),
            DeviceSpec::Cuda(Some(index)) => write!(formatter, "cuda:{index}"),
        }
    }
}

impl FromStr for DeviceSpec {
    type Err = Error;

    /// Parses a device name, case-insensitively, surrounding blanks
    /// ignored. `flex`, `cpu:flex` and `cpu:ndarray` are accepted too (the
    /// names of the CPU backends before devices had names), and `cpu:0`,
    /// which torch accepts (and prints for `torch.device("cpu", 0)`) as the
    /// one CPU device.
    fn from_str(text: &str) -> Result<DeviceSpec> {
        let name = text.trim().to_ascii_lowercase();
        let unknown = |problem: String| Error::Device { device: text.to_owned(), problem };
        let (kind, index) = match name.split_once(':') {
            Some((kind, index)) => (kind, Some(index)),
            None => (name.as_str(), None),
        };
        let parse_index = |index: &str| {
            index.parse::<usize>().map_err(|_| {
                unknown(format!("{index:?} is not a device number (0, 1, ...); expected one of {DEVICE_NAMES}"))
            })
        };
        match (kind, index) {
            ("cpu" | "flex", None) | ("cpu", Some("flex" | "0")) => Ok(DeviceSpec::Cpu),
            ("ndarray", None) | ("cpu", Some("ndarray")) => Ok(DeviceSpec::NdArray),
            ("wgpu", None) => Ok(DeviceSpec::Wgpu(None)),
            ("wgpu", Some(index)) => Ok(DeviceSpec::Wgpu(Some(parse_index(index)?))),
            ("cuda", None) => Ok(DeviceSpec::Cuda(None)),
            ("cuda", Some(index)) => Ok(DeviceSpec::Cuda(Some(parse_index(index)?))),
            _ => Err(unknown(format!("unknown device; expected one of {DEVICE_NAMES}"))),
        }
    }
}

/// The floating-point type the model computes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Precision {
    /// 32-bit floats, as Detoxify computes.
    #[default]
    F32,
    /// 16-bit floats (IEEE half), on GPUs only: parsed only by builds with
    /// the Cargo feature `f16-experiment`, to measure it. Its drift from f32
    /// (docs/gpu.md) is over the 1e-3 issue #16 set for offering it.
    F16,
}

/// The largest drift of f16 from f32 over the fixture models, measured on
/// lavapipe (`tests/gpu.rs`): 2.7e-3 bert, 6.7e-3 roberta, 5.1e-3 xlmr,
/// 8.5e-3 albert-original, 4.0e-3 albert-unbiased.
pub const F16_MAX_DRIFT: f32 = 8.5e-3;

/// The same figure for PyTorch 2.15's own f16 (`model.half()`, f32
/// accumulation) on the same models and texts: 2.7e-3 bert, 4.9e-3
/// roberta, 3.6e-3 xlmr, 1.1e-2 albert-original, 4.4e-3 albert-unbiased
/// (autocast: 2.2e-3 to 1.2e-2). No f16 meets 1e-3 on them.
pub const TORCH_F16_MAX_DRIFT: f32 = 1.1e-2;

/// Whether this build parses `f16` (the Cargo feature `f16-experiment`).
pub const F16_OFFERED: bool = cfg!(feature = "f16-experiment");

impl fmt::Display for Precision {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
        })
    }
}

impl FromStr for Precision {
    type Err = Error;

    fn from_str(text: &str) -> Result<Precision> {
        Precision::parse(text, F16_OFFERED)
    }
}

impl Precision {
    /// Parses a precision name; `f16` only where `f16_offered`.
    fn parse(text: &str, f16_offered: bool) -> Result<Precision> {
        match text.trim().to_ascii_lowercase().as_str() {
            "f32" | "fp32" | "float32" => Ok(Precision::F32),
            "f16" | "fp16" | "float16" | "half" if f16_offered => Ok(Precision::F16),
            "f16" | "fp16" | "float16" | "half" => Err(Error::PrecisionNotOffered { name: text.to_owned() }),
            _ => Err(Error::UnknownPrecision { name: text.to_owned() }),
        }
    }
}

impl Precision {
    /// Checks that `device` can compute in this precision: f16 only on a
    /// GPU that supports it (CPUs here have no fast f16, and Burn's CPU
    /// backends would run it slower than f32).
    pub fn check(self, spec: DeviceSpec, device: &Device) -> Result<()> {
        if self == Precision::F32 {
            return Ok(());
        }
        if spec.is_cpu() {
            return Err(Error::Device {
                device: spec.to_string(),
                problem: "--precision f16 is for GPUs only (on a CPU it is slower than f32); use f32".to_owned(),
            });
        }
        if !device.supports_dtype(burn::tensor::DType::F16) {
            return Err(Error::Device {
                device: spec.to_string(),
                problem: "this GPU (or its driver) does not compute in f16 (wgpu needs the shader-f16 feature); \
                          use --precision f32"
                    .to_owned(),
            });
        }
        Ok(())
    }
}

/// What the runtime of a GPU device says of its memory: CubeCL's largest
/// buffer (wgpu: the storage-binding and buffer limits) and, where the
/// runtime states it, its capacity. `None` for the CPU backends.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
pub(crate) fn memory_of(device: &Device) -> Option<crate::DeviceMemory> {
    match device.as_dispatch() {
        burn_dispatch::DispatchDevice::Cube(cube) => {
            let client = cube.client();
            let memory = &client.properties().memory;
            Some(crate::DeviceMemory { max_allocation: memory.max_page_size, capacity: memory.max_memory() })
        }
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// Who a GPU device is, as its runtime names it: wgpu's adapter (for
/// lavapipe, `llvmpipe (LLVM 15.0.6, 256 bits)`) or CUDA's card (`NVIDIA
/// H200`), and whether it is a card at all. `None` for the CPU backends.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
pub(crate) fn identity_of(device: &Device) -> Option<DeviceIdentity> {
    match device.as_dispatch() {
        burn_dispatch::DispatchDevice::Cube(cube) => {
            let client = cube.client();
            let identity = &client.properties().identity;
            // CubeCL names no card for a CPU adapter or a software rasterizer.
            Some(DeviceIdentity { name: identity.name.clone(), software: identity.physical.is_none() })
        }
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// A build without GPU backends has no device to name.
#[cfg(not(any(feature = "wgpu", feature = "cuda")))]
pub(crate) fn identity_of(_device: &Device) -> Option<DeviceIdentity> {
    None
}

/// A GPU device as its runtime names it ([`Detoxify::device_identity`](crate::Detoxify::device_identity)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceIdentity {
    /// The adapter's or card's own name.
    pub name: String,
    /// No card behind it: a software driver (lavapipe) or a CPU adapter,
    /// which computes on the CPU, slower than `--device cpu`.
    pub software: bool,
}

impl fmt::Display for DeviceIdentity {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.name)?;
        if self.software {
            formatter.write_str(", a software driver: no GPU")?;
        }
        Ok(())
    }
}

/// A build without GPU backends has no device memory to read.
#[cfg(not(any(feature = "wgpu", feature = "cuda")))]
pub(crate) fn memory_of(_device: &Device) -> Option<crate::DeviceMemory> {
    None
}

fn cpu_device() -> Result<Device> {
    #[cfg(feature = "flex")]
    {
        Ok(Device::flex())
    }
    #[cfg(not(feature = "flex"))]
    {
        Err(DeviceSpec::Cpu.not_compiled_in())
    }
}

fn ndarray_device() -> Result<Device> {
    #[cfg(feature = "ndarray")]
    {
        // burn-ndarray is deprecated in Burn 0.22 but is the design card's
        // backend: kept, behind its feature, for comparison.
        #[allow(deprecated)]
        Ok(Device::ndarray())
    }
    #[cfg(not(feature = "ndarray"))]
    {
        Err(DeviceSpec::NdArray.not_compiled_in())
    }
}

#[cfg(feature = "wgpu")]
fn wgpu_device(spec: DeviceSpec, index: Option<usize>) -> Result<Device> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};

    use burn::tensor::DeviceKind;

    // A wgpu runtime starts once per process and adapter; a second `init`
    // of the same one is an error, so each opened device is kept.
    static OPENED: OnceLock<Mutex<HashMap<Option<usize>, Device>>> = OnceLock::new();
    let mut opened = OPENED.get_or_init(Default::default).lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(device) = opened.get(&index) {
        return Ok(device.clone());
    }
    let kind = index.map_or(DeviceKind::DefaultDevice, DeviceKind::DiscreteGpu);
    // wgpu panics on some driver failures instead of returning an error.
    let started = caught_quietly(|| Device::wgpu_options().device_kind(kind).init());
    let device = match started {
        Ok(Ok(device)) => device,
        Ok(Err(error)) => {
            return Err(Error::Device {
                device: spec.to_string(),
                problem: format!(
                    "wgpu found no usable adapter ({error}); a GPU needs its Vulkan driver \
                     (libvulkan1 and the vendor's driver; for the software one, Debian's mesa-vulkan-drivers)"
                ),
            });
        }
        Err(cause) => {
            return Err(Error::Device {
                device: spec.to_string(),
                problem: format!(
                    "wgpu could not start ({cause}); a GPU needs its Vulkan driver \
                     (libvulkan1 and the vendor's driver; for the software one, Debian's mesa-vulkan-drivers)"
                ),
            });
        }
    };
    opened.insert(index, device.clone());
    Ok(device)
}

#[cfg(not(feature = "wgpu"))]
fn wgpu_device(spec: DeviceSpec, _index: Option<usize>) -> Result<Device> {
    Err(spec.not_compiled_in())
}

#[cfg(feature = "cuda")]
fn cuda_device(spec: DeviceSpec, index: Option<usize>) -> Result<Device> {
    let index = index.unwrap_or(0);
    let device = Device::cuda(index);
    // The CUDA runtime starts lazily, at the first tensor, and NVRTC at the
    // first kernel (with the CUDA headers): start both here, so that a
    // missing driver, NVRTC or header folder is this error and not a panic
    // mid-run.
    let probe = device.clone();
    caught_quietly(move || {
        let _ = burn::tensor::Tensor::<1>::zeros([1], &probe).add_scalar(1.0).into_data();
    })
    .map_err(|cause| Error::Device {
        device: spec.to_string(),
        problem: format!(
            "CUDA could not start on device {index} ({cause}); it needs the NVIDIA driver (libcuda), NVRTC \
             (libnvrtc, from the CUDA toolkit or the nvidia-cuda-nvrtc wheel) and the CUDA headers \
             (CUDA_PATH, else /usr/local/cuda) at run time"
        ),
    })?;
    Ok(device)
}

#[cfg(not(feature = "cuda"))]
fn cuda_device(spec: DeviceSpec, _index: Option<usize>) -> Result<Device> {
    Err(spec.not_compiled_in())
}

/// Runs `work` (a device's start), catching a panic in it or in a runtime
/// thread it waits on, without the panic hook's report (toxcli's says "a bug
/// in toxcli"): the error is the first panic's message, which names the
/// cause (later ones echo it: a runtime thread's failure, read back by the
/// caller). The hook is the process's: while `work` runs, a panic elsewhere
/// would be silenced too, so only a device's start goes through here.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn caught_quietly<T>(work: impl FnOnce() -> T + std::panic::UnwindSafe) -> std::result::Result<T, String> {
    use std::sync::{Arc, Mutex, PoisonError};

    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    let first: Arc<Mutex<Option<String>>> = Arc::default();
    let previous = std::panic::take_hook();
    let record = Arc::clone(&first);
    std::panic::set_hook(Box::new(move |info| {
        record.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert_with(|| panic_message(info.payload()));
    }));
    let result = std::panic::catch_unwind(work);
    std::panic::set_hook(previous);
    result.map_err(|panic| {
        let cause = first.lock().unwrap_or_else(PoisonError::into_inner).take();
        let cause = cause.unwrap_or_else(|| panic_message(&*panic));
        // cudarc lists the thirty-odd file names it tried.
        match cause.split_once(" - searched for library names") {
            Some((said, _)) => said.to_owned(),
            None => cause,
        }
    })
}

#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown cause".to_owned())
}

#[cfg(test)]
mod tests {
    use super::{DeviceSpec, Precision};

    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    #[test]
    fn a_device_start_that_panics_reports_the_first_cause() {
        assert_eq!(super::caught_quietly(|| 7), Ok(7));
        // A runtime thread fails, and the caller panics on reading it back.
        let cause = super::caught_quietly(|| {
            let runner = std::thread::spawn(|| panic!("libcuda.so - searched for library names: [..]"));
            runner.join().expect("the runner's result")
        });
        assert_eq!(cause, Err("libcuda.so".to_owned()));
    }

    #[track_caller]
    fn check(text: &str, expected: Option<DeviceSpec>) {
        let parsed = text.parse::<DeviceSpec>();
        match expected {
            Some(expected) => {
                let parsed = parsed.unwrap_or_else(|error| panic!("{text:?}: {error}"));
                assert_eq!(parsed, expected, "{text:?}");
                // Display gives a name that parses back to the same device.
                assert_eq!(parsed.to_string().parse::<DeviceSpec>().ok(), Some(expected));
            }
            None => {
                let error = parsed.expect_err(text).to_string();
                assert!(error.contains(text.trim()) && error.contains("cpu, ndarray, wgpu"), "{text:?}: {error}");
            }
        }
    }

    #[test]
    fn device_names_parse_and_print_back() {
        check("cpu", Some(DeviceSpec::Cpu));
        check(" CPU ", Some(DeviceSpec::Cpu));
        check("flex", Some(DeviceSpec::Cpu));
        check("cpu:flex", Some(DeviceSpec::Cpu));
        check("cpu:0", Some(DeviceSpec::Cpu));
        check(" CPU:0", Some(DeviceSpec::Cpu));
        check("ndarray", Some(DeviceSpec::NdArray));
        check("cpu:ndarray", Some(DeviceSpec::NdArray));
        check("wgpu", Some(DeviceSpec::Wgpu(None)));
        check("wgpu:1", Some(DeviceSpec::Wgpu(Some(1))));
        check("cuda", Some(DeviceSpec::Cuda(None)));
        check("cuda:0", Some(DeviceSpec::Cuda(Some(0))));
        check("gpu", None);
        check("cuda:", None);
        check("cuda:-1", None);
        check("wgpu:x", None);
        check("cpu:2", None);
        check("cpu:00", None);
        check("", None);
    }

    #[test]
    fn precisions_parse() {
        for offered in [false, true] {
            assert_eq!(Precision::parse("f32", offered).ok(), Some(Precision::F32));
            assert_eq!(Precision::parse(" Float32", offered).ok(), Some(Precision::F32));
            let error = Precision::parse("bf16", offered).expect_err("bf16").to_string();
            assert!(error.contains("unknown precision \"bf16\""), "{error}");
        }
        assert_eq!(Precision::parse("FP16", true).ok(), Some(Precision::F16));
        assert_eq!(Precision::parse("half", true).ok(), Some(Precision::F16));
    }

    #[test]
    fn f16_is_not_offered_without_its_experiment_feature_and_says_why() {
        for name in ["f16", "FP16", "half", "float16"] {
            let error = Precision::parse(name, false).expect_err("f16 is not offered").to_string();
            assert!(error.contains("not offered") && error.contains("8.5e-3") && error.contains("1e-3"), "{error}");
            assert!(error.contains("f16-experiment") && error.contains("use f32"), "{error}");
        }
        assert_eq!("f16".parse::<Precision>().is_ok(), cfg!(feature = "f16-experiment"));
    }

    #[test]
    fn a_device_this_build_lacks_names_its_feature() {
        // The test build has no `cuda` feature (CI only checks it, docs/gpu.md).
        if cfg!(feature = "cuda") {
            return;
        }
        let error = DeviceSpec::Cuda(Some(1)).open().expect_err("cuda is not compiled in").to_string();
        assert!(error.contains("cuda:1") && error.contains("feature `cuda`"), "{error}");
    }

    #[test]
    fn f16_is_refused_on_the_cpu() {
        let device = DeviceSpec::Cpu.open().expect("the test build has flex");
        let error = Precision::F16.check(DeviceSpec::Cpu, &device).expect_err("f16 on the CPU").to_string();
        assert!(error.contains("GPUs only"), "{error}");
        assert!(Precision::F32.check(DeviceSpec::Cpu, &device).is_ok());
    }
}
