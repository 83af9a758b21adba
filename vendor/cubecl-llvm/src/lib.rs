//! cubecl-llvm 0.11.3's API as cubecl-cuda 0.11.3 uses it, without LLVM.
//!
//! cubecl-cuda depends on cubecl-llvm unconditionally, for its LLVM (PTX)
//! kernel compiler, and cubecl-llvm's build script downloads a prebuilt LLVM:
//! so Burn's `cuda` feature cannot be built offline. This crate takes
//! cubecl-llvm's place (`[patch.crates-io]` in the workspace's Cargo.toml)
//! with what cubecl-cuda names:
//!
//! - [`nvptx::ptx_version`] and [`shared::lowered_features`], copied from
//!   cubecl-llvm 0.11.3 (MIT OR Apache-2.0): plain Rust, used by the runtime
//!   whichever compiler it picks;
//! - the LLVM compiler's types, whose [`PlironCompiler`] refuses to compile.
//!
//! toxmodel's `cuda` feature turns on cubecl-cuda's `cpp` feature, which
//! makes its C++ backend the default: kernels are CUDA C++ compiled by NVRTC
//! when they first run, and the LLVM compiler is never chosen. If it were,
//! the kernel's compilation fails with the error below, never silently.

pub mod nvptx;
pub mod shared;

use cubecl_core::Compiler;
use cubecl_core::ir::nvidia::SmArch;
use cubecl_core::prelude::KernelDefinition;
use cubecl_environment::backtrace::BackTrace;
use cubecl_runtime::compiler::CompilationError;
use cubecl_runtime::kernel::BufferIOAttr;

use crate::nvptx::ptx_version::PtxVersion;

/// The targets of cubecl-llvm's compiler; here only NVIDIA's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LlvmTarget {
    #[default]
    Nvptx,
}

/// The options cubecl-cuda passes to the LLVM compiler.
#[derive(Clone, Debug, Default)]
pub struct PlironOptions {
    /// Unused by NVIDIA targets (cubecl-llvm: the AMD architecture).
    pub arch: Option<()>,
    /// The NVIDIA architecture.
    pub sm_arch: Option<SmArch>,
    /// The PTX version to emit.
    pub ptx_version: Option<PtxVersion>,
    /// Scalars and static metadata in the kernel parameter block.
    pub grid_constants: bool,
}

/// A compiled PTX module (never made here).
#[derive(Clone, Debug)]
pub struct NvptxModule {
    /// NUL-terminated PTX assembly.
    pub ptx: Vec<core::ffi::c_char>,
    /// Kernel entry point symbol.
    pub entrypoint: String,
    /// IR for logging and cache keys.
    pub ir: String,
    /// Shared memory required per launch, in bytes.
    pub shared_memory_size: usize,
    /// Buffer access modes in binding order.
    pub io: Vec<BufferIOAttr>,
}

/// What the LLVM compiler makes.
#[derive(Clone, Debug)]
pub enum PlironArtifact {
    NvptxCode(NvptxModule),
}

impl core::fmt::Display for PlironArtifact {
    fn fmt(&self, formatter: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PlironArtifact::NvptxCode(module) => formatter.write_str(&module.ir),
        }
    }
}

/// cubecl-llvm's compiler, left out of this build: [`Compiler::compile`]
/// fails, naming the way out.
#[derive(Clone, Debug, Default)]
pub struct PlironCompiler {
    pub target: LlvmTarget,
}

/// Why [`PlironCompiler`] does not compile.
pub const LEFT_OUT: &str = "cubecl's LLVM (PTX) compiler is left out of this toxscore build, which \
     compiles CUDA kernels with NVRTC (cubecl-cuda's `cpp` backend, turned on by toxmodel's `cuda` \
     feature); see vendor/cubecl-llvm/README.md";

impl Compiler for PlironCompiler {
    type Representation = PlironArtifact;
    type CompilationOptions = PlironOptions;

    fn compile(
        &mut self,
        _kernel: KernelDefinition,
        _options: &Self::CompilationOptions,
    ) -> Result<Self::Representation, CompilationError> {
        Err(CompilationError::Generic { reason: LEFT_OUT.to_owned(), backtrace: BackTrace::capture() })
    }

    fn buffer_io(representation: &Self::Representation) -> Option<Vec<BufferIOAttr>> {
        match representation {
            PlironArtifact::NvptxCode(module) => Some(module.io.clone()),
        }
    }

    fn extension(&self) -> &'static str {
        "ll"
    }

    fn lang_tag(&self) -> &'static str {
        "llvm"
    }
}
