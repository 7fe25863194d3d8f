//! neoc-runtime: loads and runs `.neo` artifacts written by the neoc compiler.
//!
//! ```no_run
//! use neoc_runtime::{Model, Tensor};
//! let model = Model::load("digits.neo")?;
//! println!("inputs: {:?}", model.inputs());
//! let image = Tensor::from_vec([1, 1, 8, 8], vec![0f32; 64])?;
//! let outputs = model.run(&[image])?;
//! println!("{:?}", outputs[0].as_slice::<f32>()?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The crate depends on nothing from the compiler, Cranelift or prost: only `memmap2`
//! (file mapping, executable memory) and `thiserror`.
//!
//! # The artifact
//!
//! One file, little-endian: a fixed header (magic `NEOC\0ART`, format version, header
//! and file lengths, an XXH64 checksum over the whole file, the neoc version), a section
//! table, then three sections: **metadata** (target, ISA, calling convention, required
//! CPU features, input and output signatures, arena size, entry offset, kernel ABI
//! version; a small length-prefixed binary encoding), **code** (page-aligned in the
//! file) and **weights** (64-byte aligned). The byte-level layout is in [`artifact`].
//! [`ArtifactWriter`] writes it; [`Artifact::parse`] validates all of it without ever
//! panicking.
//!
//! # Loading
//!
//! [`Model::load`] memory-maps the file; [`Model::from_bytes`] copies the bytes into
//! 64-byte-aligned memory. Before anything runs, load checks the format version, the
//! checksum, the sections, the ISA against `std::env::consts::ARCH`, the calling
//! convention, every required CPU feature against `is_x86_feature_detected!` /
//! `is_aarch64_feature_detected!` ("artifact needs avx512f, this CPU lacks it"), and the
//! kernel ABI version. The code is then copied into anonymous memory made read+execute.
//!
//! An artifact is a program: its code runs as it is. The checksum catches corruption,
//! not malice; load artifacts you trust, as you would a shared library.
//!
//! # The ABI
//!
//! The entry point is `code + entry_offset`, an `extern "C" fn(*const RunContext) -> i32`
//! (0 = success, anything else becomes [`RunError::Code`]). The [`abi::RunContext`] gives
//! the code its input and output pointers (in signature order), a private 64-byte-aligned
//! arena of `arena_size` bytes, the 64-byte-aligned weights, the [`abi::KernelTable`]
//! (GEMM, `parallel_for`, memcpy, memset) and the thread count. Field offsets and the
//! full contract are in [`abi`].
//!
//! # Running
//!
//! [`Model::run`] allocates its outputs; [`Model::run_into`] writes into caller buffers
//! and allocates nothing once an arena is free (one is made at load; a run that finds
//! every arena busy, because other threads are running, makes another and keeps it).
//! Every run checks input and output count, dtype, shape and alignment first. `Model` is
//! `Send + Sync`; concurrent runs each get their own arena.
//!
//! # Strings
//!
//! String tensors ([`DType::String`]) hold Rust `String`s: build inputs with
//! [`Tensor::from_strings`] / [`TensorRef::from_strings`] and read outputs with
//! [`Tensor::as_strings`]. Inside a run they are handles into a heap that lives for that
//! run only ([`kernels::strings`] describes the design); a model with string inputs or
//! outputs allocates per run (the handle arrays, the heap and the output strings).
//! RegexFullMatch needs this crate's `strings-regex` cargo feature (the `regex` crate);
//! loading an artifact that uses it on a runtime built without the feature fails with
//! [`LoadError::MissingRuntimeFeature`].

pub mod abi;
pub mod artifact;
mod checksum;
pub mod cuda;
pub mod dtype;
mod error;
mod host;
pub mod kernels;
mod sys;
mod tensor;
mod threads;
pub mod variants;
mod workers;

use std::ops::Range;
use std::path::Path;
use std::sync::Mutex;

pub use artifact::{Artifact, ArtifactWriter, FormatError, Metadata, StepInfo, StepTable, TensorSig};
pub use checksum::{Xxh64, xxh64};
pub use error::{LoadError, Role, RunError};
pub use host::{AARCH64_FEATURES, CallConv, HostCpu, Isa, X86_64_FEATURES};
pub use tensor::{DType, Element, Tensor, TensorError, TensorMut, TensorRef, byte_len, numel};
pub use threads::default_thread_count;
pub use variants::CodeVariant;

use abi::{KERNEL_ABI_VERSION, KernelTable};
use kernels::strings::StringHeap;
use sys::{AlignedBuf, ExecCode, PtrScratch};
use workers::Workers;

/// Where the artifact's bytes live while the model is loaded.
enum Storage {
    Mapped(memmap2::Mmap),
    Owned(AlignedBuf),
}

impl Storage {
    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Mapped(m) => m,
            Storage::Owned(b) => b.as_slice(),
        }
    }
}

/// What runs the artifact: machine code on this CPU, or a CUDA program on a GPU (the
/// `cuda` feature; [`crate::cuda`]).
enum Engine {
    Cpu(ExecCode),
    #[cfg(feature = "cuda")]
    Cuda(Box<cuda::CudaEngine>),
}

/// What a parsed CUDA artifact hands to [`Model::from_cuda_artifact`].
struct CudaParts {
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    program: cuda::Program,
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    weights: Range<usize>,
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    format_version: u32,
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    neoc_version: String,
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    meta: Metadata,
}

/// One run's private memory and threads: the arena, the pointer arrays of the context,
/// and the intra-op workers with their scratch.
struct RunState {
    arena: AlignedBuf,
    ptrs: PtrScratch,
    workers: Workers,
}

impl RunState {
    fn new(meta: &Metadata, threads: usize) -> Option<RunState> {
        let arena = AlignedBuf::zeroed(meta.arena_size as usize)?;
        let ptrs = PtrScratch::with_capacity(meta.inputs.len() + meta.outputs.len());
        Some(RunState { arena, ptrs, workers: Workers::new(threads) })
    }
}

/// How to load an artifact: [`Model::load_with`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadOptions {
    /// Run this code variant (by name) instead of the best one the CPU supports; an error
    /// if the artifact has no such variant or the CPU lacks its features. Artifacts with
    /// one code section accept only `None`.
    pub code_variant: Option<String>,
    /// The most memory the model may need while it runs (arena, weights, inputs and outputs
    /// of one run); a model that needs more is refused at load with the numbers. `None`: no
    /// limit. The default is this machine's memory ([`physical_memory`]).
    pub max_memory: Option<u64>,
    /// Whether `max_memory` is the default (the error message says so).
    pub default_limit: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions { code_variant: None, max_memory: physical_memory(), default_limit: true }
    }
}

impl LoadOptions {
    /// A limit of `bytes`, or none.
    pub fn max_memory(bytes: Option<u64>) -> LoadOptions {
        LoadOptions { code_variant: None, max_memory: bytes, default_limit: false }
    }
}

/// This machine's memory in bytes: the total RAM (`/proc/meminfo`), or the cgroup's memory
/// limit when that is lower (`/sys/fs/cgroup/memory.max`, a container's limit). `None` off
/// Linux or when neither can be read.
pub fn physical_memory() -> Option<u64> {
    let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
        let line = s.lines().find(|l| l.starts_with("MemTotal:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        kb.checked_mul(1024)
    });
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max").ok().and_then(|s| s.trim().parse::<u64>().ok());
    match (total, cgroup) {
        (Some(t), Some(c)) => Some(t.min(c)),
        (t, c) => t.or(c),
    }
}

/// How many times this process has mapped an artifact's code (for tests: a refused
/// artifact is refused before its code is mapped).
#[doc(hidden)]
pub fn code_mappings_made() -> usize {
    sys::CODE_MAPPINGS.load(std::sync::atomic::Ordering::Relaxed)
}

/// A loaded artifact, ready to run. `Send + Sync`: share it between threads (e.g. in an
/// `Arc`) and call [`Model::run`] from all of them at once.
pub struct Model {
    storage: Storage,
    format_version: u32,
    neoc_version: String,
    meta: Metadata,
    weights: Range<usize>,
    engine: Engine,
    kernels: &'static KernelTable,
    threads: usize,
    states: Mutex<Vec<RunState>>,
    /// Whether an input or output is a string tensor (runs then go through handles).
    string_io: bool,
    /// The code variant that runs, for artifacts that carry several.
    code_variant: Option<String>,
    /// The step table of the code that runs (artifacts from before it have none).
    steps: Option<(Vec<StepInfo>, Vec<u64>)>,
}

/// Where [`Model::run_profiled`] hands each step's index and wall time.
type StepTimer<'t> = &'t mut dyn FnMut(usize, Range<std::time::Instant>);

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("target", &self.meta.target)
            .field("isa", &self.meta.isa)
            .field("inputs", &self.meta.inputs)
            .field("outputs", &self.meta.outputs)
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

impl Model {
    /// Memory-maps and loads an artifact file. The file must not be truncated or
    /// rewritten while the model is alive (the weights are read from the mapping).
    /// Refuses a model that needs more memory than this machine has (see [`LoadOptions`]).
    pub fn load(path: impl AsRef<Path>) -> Result<Model, LoadError> {
        Model::load_with(path, &LoadOptions::default())
    }

    /// As [`Model::load`], with options (which code variant to run, a memory limit).
    pub fn load_with(path: impl AsRef<Path>, opts: &LoadOptions) -> Result<Model, LoadError> {
        let path = path.as_ref();
        let io = |source| LoadError::Io { path: path.to_path_buf(), source };
        let file = std::fs::File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len < artifact::FIXED_HEADER_LEN as u64 {
            // Too short to map usefully (and an empty file cannot be mapped at all).
            return Err(FormatError::TooShort { len: len as usize }.into());
        }
        let map = sys::map_file(&file).map_err(io)?;
        Model::from_storage(Storage::Mapped(map), opts)
    }

    /// Loads an artifact from bytes, copying them into 64-byte-aligned memory.
    pub fn from_bytes(bytes: &[u8]) -> Result<Model, LoadError> {
        Model::from_bytes_with(bytes, &LoadOptions::default())
    }

    /// As [`Model::from_bytes`], with options.
    pub fn from_bytes_with(bytes: &[u8], opts: &LoadOptions) -> Result<Model, LoadError> {
        let mut buf = AlignedBuf::zeroed(bytes.len()).ok_or(LoadError::OutOfMemory { bytes: bytes.len() as u64 })?;
        buf.as_mut_slice().copy_from_slice(bytes);
        Model::from_storage(Storage::Owned(buf), opts)
    }

    /// Everything is checked before any code is mapped: the format (magic, version, length,
    /// checksum, sections, metadata), then the host (ISA, calling convention, CPU
    /// features), the kernel ABI, the runtime features and the memory limit.
    fn from_storage(storage: Storage, opts: &LoadOptions) -> Result<Model, LoadError> {
        let mut art = Artifact::parse(storage.bytes())?;
        if let Some(program) = art.cuda_program().cloned() {
            let weights = art.weights_range();
            let Artifact { format_version, neoc_version, metadata, .. } = art;
            let cuda = CudaParts { program, weights, format_version, neoc_version, meta: metadata };
            return Model::from_cuda_artifact(storage, cuda, opts);
        }
        let host = HostCpu::detect();
        let code_variant = variants::pick(&mut art, &host, opts)?;
        host.check(&art.metadata)?;
        if art.metadata.kernel_abi_version > KERNEL_ABI_VERSION {
            return Err(LoadError::KernelAbiTooNew { artifact: art.metadata.kernel_abi_version, runtime: KERNEL_ABI_VERSION });
        }
        for f in &art.metadata.runtime_features {
            if !kernels::strings::RUNTIME_FEATURES.iter().any(|(name, on)| name == f && *on) {
                return Err(LoadError::MissingRuntimeFeature { feature: f.clone() });
            }
        }
        if let Some(limit) = opts.max_memory {
            let m = &art.metadata;
            let io = m.inputs.iter().chain(&m.outputs).fold(0u64, |a, s| a.saturating_add(s.byte_len() as u64));
            let weights = art.weights().len() as u64;
            let needs = m.arena_size.saturating_add(weights).saturating_add(io);
            if needs > limit {
                return Err(LoadError::TooMuchMemory { needs, arena: m.arena_size, weights, io, limit, default_limit: opts.default_limit });
            }
        }
        let code = Engine::Cpu(ExecCode::new(art.code()).map_err(LoadError::ExecMemory)?);
        let steps = art.steps().map(|list| list.into_iter().unzip());
        let weights = art.weights_range();
        // Both storages start 64-byte aligned (a mapping starts on a page) and the section
        // is 64-byte aligned in the file.
        debug_assert_eq!(art.weights().as_ptr() as usize % abi::WEIGHTS_ALIGN, 0);
        let Artifact { format_version, neoc_version, metadata: meta, .. } = art;
        let threads = default_thread_count();
        let state = RunState::new(&meta, threads).ok_or(LoadError::OutOfMemory { bytes: meta.arena_size })?;
        let string_io = meta.inputs.iter().chain(&meta.outputs).any(|s| s.dtype.is_string());
        Ok(Model {
            storage,
            format_version,
            neoc_version,
            meta,
            weights,
            engine: code,
            kernels: kernels::for_host(),
            threads,
            states: Mutex::new(vec![state]),
            string_io,
            code_variant,
            steps,
        })
    }

    /// A CUDA artifact: the runtime feature was checked by nobody yet, so check it here
    /// (a build without `cuda` refuses it, naming the feature), then load it on the GPU.
    fn from_cuda_artifact(storage: Storage, art: CudaParts, opts: &LoadOptions) -> Result<Model, LoadError> {
        if let Some(w) = &opts.code_variant {
            return Err(LoadError::NoSuchVariant { wanted: w.clone(), available: vec![] });
        }
        if !cuda::ENABLED {
            return Err(LoadError::MissingRuntimeFeature { feature: cuda::RUNTIME_FEATURE.into() });
        }
        #[cfg(not(feature = "cuda"))]
        {
            let _ = (storage, art);
            unreachable!("checked above")
        }
        #[cfg(feature = "cuda")]
        {
            let CudaParts { program, weights, format_version, neoc_version, meta } = art;
            let engine = cuda::CudaEngine::load(&program, &storage.bytes()[weights.clone()])?;
            let state = RunState::new(&meta, 1).ok_or(LoadError::OutOfMemory { bytes: meta.arena_size })?;
            Ok(Model {
                storage,
                format_version,
                neoc_version,
                meta,
                weights,
                engine: Engine::Cuda(Box::new(engine)),
                kernels: kernels::for_host(),
                threads: 1,
                states: Mutex::new(vec![state]),
                string_io: false,
                code_variant: None,
            })
        }
    }

    /// The GPU engine of a CUDA artifact: device addresses of the input and output slots,
    /// runs that leave data on the device, CUDA-graph switch, the GPU it runs on.
    #[cfg(feature = "cuda")]
    pub fn cuda(&self) -> Option<&cuda::CudaEngine> {
        match &self.engine {
            Engine::Cuda(e) => Some(e),
            Engine::Cpu(_) => None,
        }
    }

    /// The code variant that runs (`x86-64-v4`, …) when the artifact carries several.
    pub fn code_variant(&self) -> Option<&str> {
        self.code_variant.as_deref()
    }

    pub fn inputs(&self) -> &[TensorSig] {
        &self.meta.inputs
    }

    pub fn outputs(&self) -> &[TensorSig] {
        &self.meta.outputs
    }

    pub fn metadata(&self) -> &Metadata {
        &self.meta
    }

    /// The version of neoc that wrote the artifact.
    pub fn neoc_version(&self) -> &str {
        &self.neoc_version
    }

    pub fn format_version(&self) -> u32 {
        self.format_version
    }

    /// Intra-op threads the code may use. Defaults to [`default_thread_count`].
    pub fn thread_count(&self) -> usize {
        self.threads
    }

    /// Sets the intra-op thread count (0 is taken as 1). The worker threads are made
    /// here (and at load), never during a run.
    pub fn set_thread_count(&mut self, threads: usize) {
        self.threads = threads.max(1);
        let states = self.states.get_mut().unwrap_or_else(|e| e.into_inner());
        for state in states.iter_mut() {
            state.workers = Workers::new(self.threads);
        }
    }

    pub fn with_thread_count(mut self, threads: usize) -> Model {
        self.set_thread_count(threads);
        self
    }

    /// Runs on `inputs` (in signature order) and returns newly allocated outputs.
    pub fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, RunError> {
        let views: Vec<TensorRef<'_>> = inputs.iter().map(Tensor::view).collect();
        self.run_views(&views)
    }

    /// As [`Model::run`], with borrowed inputs.
    pub fn run_views(&self, inputs: &[TensorRef<'_>]) -> Result<Vec<Tensor>, RunError> {
        self.check_inputs(inputs)?;
        let mut outputs = self
            .meta
            .outputs
            .iter()
            .map(|s| Tensor::zeros(s.dtype, s.shape.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let mut views: Vec<TensorMut<'_>> = outputs.iter_mut().map(Tensor::view_mut).collect();
        self.run_into(inputs, &mut views)?;
        Ok(outputs)
    }

    /// Runs on inputs given by name, in any order.
    pub fn run_named(&self, inputs: &[(&str, TensorRef<'_>)]) -> Result<Vec<Tensor>, RunError> {
        let mut ordered: Vec<Option<TensorRef<'_>>> = vec![None; self.meta.inputs.len()];
        for (name, t) in inputs {
            let Some(i) = self.meta.inputs.iter().position(|s| s.name == *name) else {
                let known = self.meta.inputs.iter().map(|s| format!("'{}'", s.name)).collect();
                return Err(RunError::UnknownInput { name: name.to_string(), known });
            };
            if ordered[i].replace(*t).is_some() {
                return Err(RunError::DuplicateInput { name: name.to_string() });
            }
        }
        let mut views = Vec::with_capacity(ordered.len());
        for (slot, sig) in ordered.into_iter().zip(&self.meta.inputs) {
            views.push(slot.ok_or_else(|| RunError::MissingInput { name: sig.name.clone() })?);
        }
        self.run_views(&views)
    }

    /// Runs on `inputs`, writing `outputs` (both in signature order). Allocates nothing
    /// when an arena is free, which it is unless other threads are running this model,
    /// and the model has no string inputs or outputs.
    pub fn run_into(&self, inputs: &[TensorRef<'_>], outputs: &mut [TensorMut<'_>]) -> Result<(), RunError> {
        self.run_into_with(inputs, outputs, None)
    }

    /// The steps of the code that runs, in order (node, op, kind, estimated FLOPs), from the
    /// artifact's step table; `None` for artifacts without one (written before it existed)
    /// and for CUDA artifacts.
    pub fn steps(&self) -> Option<&[StepInfo]> {
        self.steps.as_ref().map(|(s, _)| &s[..])
    }

    /// As [`Model::run_into`], but calls the compiled step functions one by one — the same
    /// functions, in the same order and with the same context as the entry calls them — and
    /// hands `timed` each step's index (into [`Model::steps`]) and its start and end. An
    /// error, before running anything, for a model without a step table.
    pub fn run_profiled(&self, inputs: &[TensorRef<'_>], outputs: &mut [TensorMut<'_>], timed: StepTimer<'_>) -> Result<(), RunError> {
        if self.steps.is_none() {
            return Err(RunError::NoStepTable);
        }
        self.run_into_with(inputs, outputs, Some(timed))
    }

    fn run_into_with(&self, inputs: &[TensorRef<'_>], outputs: &mut [TensorMut<'_>], mut timed: Option<StepTimer<'_>>) -> Result<(), RunError> {
        self.check_inputs(inputs)?;
        check_count(Role::Output, &self.meta.outputs, outputs.len())?;
        for (i, (t, sig)) in outputs.iter().zip(&self.meta.outputs).enumerate() {
            check_tensor(Role::Output, i, sig, t.dtype(), t.shape(), t.bytes().as_ptr())?;
        }
        let weights = &self.storage.bytes()[self.weights.clone()];
        let mut heap = StringHeap::new(weights);
        if !self.string_io {
            return self.invoke(inputs, outputs, &mut heap, timed);
        }

        // String inputs become handles into the heap, borrowing the caller's strings.
        let in_handles: Vec<Vec<u64>> =
            inputs.iter().map(|t| t.strings().map_or_else(Vec::new, |s| s.iter().map(|s| heap.push_borrowed(s)).collect())).collect();
        let in_views = inputs
            .iter()
            .zip(&in_handles)
            .map(|(t, h)| if t.dtype().is_string() { TensorRef::from_slice::<u64>(t.shape(), h) } else { Ok(*t) })
            .collect::<Result<Vec<_>, _>>()?;
        // String outputs are written as handles (zero: the empty string), then resolved.
        let mut out_handles: Vec<Vec<u64>> =
            outputs.iter().map(|t| if t.dtype().is_string() { vec![0; numel(t.shape()).unwrap_or(0)] } else { Vec::new() }).collect();
        {
            let mut out_views = Vec::with_capacity(outputs.len());
            for (t, h) in outputs.iter_mut().zip(out_handles.iter_mut()) {
                out_views.push(if t.dtype().is_string() { TensorMut::from_slice::<u64>(t.shape(), h)? } else { t.reborrow() });
            }
            self.invoke(&in_views, &mut out_views, &mut heap, timed.take())?;
        }
        for (index, ((t, h), sig)) in outputs.iter_mut().zip(&out_handles).zip(&self.meta.outputs).enumerate() {
            let Some(dst) = t.strings_mut() else { continue };
            for (d, &handle) in dst.iter_mut().zip(h) {
                let s = heap.get(handle).ok_or_else(|| RunError::BadStringHandle { index, name: sig.name.clone(), handle })?;
                d.clear();
                d.push_str(s);
            }
        }
        Ok(())
    }

    /// One call of the entry point on checked buffers.
    fn invoke(&self, inputs: &[TensorRef<'_>], outputs: &mut [TensorMut<'_>], heap: &mut StringHeap<'_>, timed: Option<StepTimer<'_>>) -> Result<(), RunError> {
        let code = match &self.engine {
            Engine::Cpu(code) => code,
            #[cfg(feature = "cuda")]
            Engine::Cuda(e) => return e.run(inputs, outputs),
        };
        let mut state = self.take_state()?;
        let mut untimed = |_: usize, _: Range<std::time::Instant>| {};
        // Steps called one by one only when profiling: a normal run calls the entry.
        let (steps, timed): (&[u64], StepTimer<'_>) = match (timed, &self.steps) {
            (Some(t), Some((_, offsets))) => (offsets, t),
            _ => (&[], &mut untimed),
        };
        let status = sys::invoke_each(
            code,
            sys::Call {
                entry: self.meta.entry_offset as usize,
                inputs,
                outputs,
                arena: &mut state.arena,
                weights: &self.storage.bytes()[self.weights.clone()],
                kernels: self.kernels,
                thread_count: self.threads,
                ptrs: &mut state.ptrs,
                strings: (heap as *mut StringHeap<'_>).cast(),
                workers: &state.workers,
            },
            steps,
            timed,
        );
        self.lock_states().push(state);
        if status != 0 {
            return Err(RunError::Code(status));
        }
        Ok(())
    }

    fn check_inputs(&self, inputs: &[TensorRef<'_>]) -> Result<(), RunError> {
        check_count(Role::Input, &self.meta.inputs, inputs.len())?;
        for (i, (t, sig)) in inputs.iter().zip(&self.meta.inputs).enumerate() {
            check_tensor(Role::Input, i, sig, t.dtype(), t.shape(), t.bytes().as_ptr())?;
        }
        Ok(())
    }

    fn lock_states(&self) -> std::sync::MutexGuard<'_, Vec<RunState>> {
        // The lock is only held for a push or a pop, which cannot panic half-way.
        self.states.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn take_state(&self) -> Result<RunState, RunError> {
        if let Some(s) = self.lock_states().pop() {
            return Ok(s);
        }
        RunState::new(&self.meta, self.threads).ok_or(RunError::OutOfMemory { bytes: self.meta.arena_size })
    }
}

fn check_count(role: Role, sigs: &[TensorSig], got: usize) -> Result<(), RunError> {
    if sigs.len() != got {
        return Err(RunError::Count { role, expected: sigs.len(), got });
    }
    Ok(())
}

fn check_tensor(role: Role, index: usize, sig: &TensorSig, dtype: DType, shape: &[usize], data: *const u8) -> Result<(), RunError> {
    let name = || sig.name.clone();
    if dtype != sig.dtype {
        return Err(RunError::DType { role, index, name: name(), expected: sig.dtype, got: dtype });
    }
    if shape != sig.shape.as_slice() {
        return Err(RunError::Shape { role, index, name: name(), expected: sig.shape.clone(), got: shape.to_vec() });
    }
    let align = dtype.align();
    if !dtype.is_string() && !(data as usize).is_multiple_of(align) {
        return Err(RunError::Misaligned { role, index, name: name(), dtype, align });
    }
    Ok(())
}

const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Model>();
};
