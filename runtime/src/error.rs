//! The runtime's errors: [`LoadError`] from loading, [`RunError`] from running.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::artifact::FormatError;
use crate::host::{CallConv, Isa};
use crate::tensor::{DType, ShapeDisplay, TensorError};

/// Why an artifact cannot be loaded on this machine.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("artifact is for {artifact}, this machine is {host}")]
    WrongIsa { artifact: Isa, host: String },
    #[error("artifact uses the {artifact} calling convention, this platform uses {host}")]
    WrongCallConv { artifact: CallConv, host: CallConv },
    #[error("artifact needs {}, this CPU lacks {}", and_list(missing), if missing.len() == 1 { "it" } else { "them" })]
    MissingCpuFeatures { missing: Vec<String> },
    #[error("artifact needs kernel ABI version {artifact}, this runtime provides version {runtime}; upgrade neoc-runtime")]
    KernelAbiTooNew { artifact: u32, runtime: u32 },
    #[error("artifact needs the neoc-runtime cargo feature '{feature}', which this build of the runtime lacks; rebuild it with features = [\"{feature}\"]")]
    MissingRuntimeFeature { feature: String },
    #[error("the artifact has no code variant '{wanted}'; it has {}", if available.is_empty() { "only one code section".to_string() } else { available.join(", ") })]
    NoSuchVariant { wanted: String, available: Vec<String> },
    #[error("cannot map executable memory for the code: {0}")]
    ExecMemory(io::Error),
    #[error("out of memory allocating the {bytes}-byte arena")]
    OutOfMemory { bytes: u64 },
    #[error("the model needs {needs} bytes of memory (arena {arena}, weights {weights}, inputs and outputs {io}), more than the limit of {limit} bytes{}", if *.default_limit { " (this machine's memory; set LoadOptions::max_memory to change it)" } else { "" })]
    TooMuchMemory { needs: u64, arena: u64, weights: u64, io: u64, limit: u64, default_limit: bool },
    /// A CUDA artifact cannot run here: no driver, no GPU, an older GPU than the artifact
    /// needs, or a driver that refuses its PTX (the message says which).
    #[error("CUDA: {0}")]
    Cuda(String),
}

/// `a`, `a and b`, `a, b and c`.
fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// Whether an error is about an input or an output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Input,
    Output,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Input => "input",
            Role::Output => "output",
        })
    }
}

/// Why a run did not happen or did not succeed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RunError {
    #[error("the model takes {expected} {role}s, got {got}")]
    Count { role: Role, expected: usize, got: usize },
    #[error("{role} {index} ('{name}'): expected dtype {expected}, got {got}")]
    DType { role: Role, index: usize, name: String, expected: DType, got: DType },
    #[error("{role} {index} ('{name}'): expected shape {}, got {}", ShapeDisplay(expected), ShapeDisplay(got))]
    Shape { role: Role, index: usize, name: String, expected: Vec<usize>, got: Vec<usize> },
    #[error("{role} {index} ('{name}'): the buffer is not aligned to {align} bytes, as {dtype} data must be")]
    Misaligned { role: Role, index: usize, name: String, dtype: DType, align: usize },
    #[error("the model has no input named '{name}'; its inputs are {}", known.join(", "))]
    UnknownInput { name: String, known: Vec<String> },
    #[error("input '{name}' is given more than once")]
    DuplicateInput { name: String },
    #[error("input '{name}' is missing")]
    MissingInput { name: String },
    #[error("the compiled code failed with error code {0}{what}", what = crate::abi::errors::describe(*.0).map(|w| format!(" ({w})")).unwrap_or_default())]
    Code(i32),
    #[error("output {index} ('{name}'): the compiled code left an invalid string handle {handle}")]
    BadStringHandle { index: usize, name: String, handle: u64 },
    #[error("the artifact has no step table to profile with (it was compiled before neoc wrote one, or for a GPU); recompile it")]
    NoStepTable,
    #[error("out of memory allocating the {bytes}-byte arena")]
    OutOfMemory { bytes: u64 },
    #[error(transparent)]
    Tensor(#[from] TensorError),
    /// A CUDA driver call failed during the run.
    #[error("CUDA: {0}")]
    Cuda(String),
}
