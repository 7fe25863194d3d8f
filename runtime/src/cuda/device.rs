//! The CUDA engine: a [`Program`] on a GPU through the driver API alone (cudarc's thin
//! `result` layer over `libcuda`, opened at run time), with no toolkit, NVRTC, cuBLAS or
//! cuDNN. Built only with the `cuda` cargo feature.
//!
//! Load: find the driver library (its absence is a [`LoadError`], never a panic: cudarc
//! panics when it is missing, so [`driver_present`] asks first), `cuInit`, pick the device
//! (`NEOC_CUDA_DEVICE`, default 0), check its compute capability against the program's,
//! retain its primary context, make a stream, load every PTX module (`cuModuleLoadData`:
//! the driver JIT-compiles for the GPU and keeps the result in its JIT cache, on unless
//! `CUDA_CACHE_DISABLE` is set), look up the kernels, allocate the arena and the weights
//! and upload the weights once.
//!
//! Run: inputs copied into their arena slots, the launch sequence on the stream (replayed
//! from a CUDA graph captured on the first run, unless graphs are switched off), outputs
//! and the status word copied back, one synchronisation.

use std::ffi::{CString, c_void};
use std::sync::Mutex;

use cudarc::driver::{result, sys};

use super::{Launch, Program};
use crate::error::{LoadError, RunError};
use crate::tensor::{TensorMut, TensorRef};

/// The GPU a model runs on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    pub ordinal: usize,
    pub name: String,
    /// Compute capability as one number: 75 for sm_75.
    pub sm: u32,
    pub memory_bytes: u64,
}

/// Whether the CUDA driver library can be opened (cudarc panics on first use otherwise).
pub fn driver_present() -> bool {
    // SAFETY: only tries to open the library by its usual names; no driver call is made.
    unsafe { sys::is_culib_present() }
}

enum Prepared {
    Kernel { f: sys::CUfunction, grid: [u32; 3], block: [u32; 3], shared: u32, args: Vec<u64> },
    Copy { dst: u64, src: u64, bytes: usize },
    Fill { dst: u64, value: u8, bytes: usize },
}

struct Inner {
    dev: sys::CUdevice,
    ctx: sys::CUcontext,
    stream: sys::CUstream,
    modules: Vec<sys::CUmodule>,
    launches: Vec<Prepared>,
    arena: u64,
    weights: u64,
    status: u64,
    graph: Option<sys::CUgraphExec>,
    use_graph: bool,
}

// SAFETY: the raw driver handles are used only under the engine's mutex, with the context
// made current on the calling thread first (`bind`); the driver API is thread-safe.
unsafe impl Send for Inner {}

/// A loaded CUDA program: device memory, modules and the prepared launch sequence.
pub struct CudaEngine {
    inner: Mutex<Inner>,
    info: DeviceInfo,
    inputs: Vec<u64>,
    outputs: Vec<u64>,
}

fn load_err(what: &str, e: result::DriverError) -> LoadError {
    LoadError::Cuda(format!("{what}: {e:?}"))
}

fn run_err(what: &str, e: result::DriverError) -> RunError {
    RunError::Cuda(format!("{what}: {e:?}"))
}

/// The CUDA release that introduced PTX ISA `isa` ("6.3"), for messages about old drivers.
pub fn cuda_release_for_ptx(isa: &str) -> &'static str {
    match isa {
        "6.0" => "9.0 (driver 384.81)",
        "6.1" => "9.1 (driver 387.26)",
        "6.2" => "9.2 (driver 396.26)",
        "6.3" => "10.0 (driver 410.48)",
        "6.4" => "10.1 (driver 418.39)",
        "6.5" => "10.2 (driver 440.33)",
        "7.0" => "11.0 (driver 450.36)",
        "7.1" => "11.1 (driver 455.23)",
        "7.4" => "11.4 (driver 470.42)",
        "7.8" => "11.8 (driver 520.61)",
        _ => "a newer release",
    }
}

impl CudaEngine {
    /// Loads `program` (validated) with the artifact's `weights` section.
    pub fn load(program: &Program, weights: &[u8]) -> Result<CudaEngine, LoadError> {
        if !driver_present() {
            return Err(LoadError::Cuda("no CUDA driver library (libcuda.so) was found: this artifact needs an NVIDIA GPU and its driver".into()));
        }
        result::init().map_err(|e| load_err("cuInit failed (no usable NVIDIA GPU or driver?)", e))?;
        let count = result::device::get_count().map_err(|e| load_err("counting GPUs", e))?;
        let ordinal: usize = std::env::var("NEOC_CUDA_DEVICE").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
        if ordinal as i32 >= count {
            return Err(LoadError::Cuda(format!("GPU {ordinal} does not exist (the driver sees {count})")));
        }
        let dev = result::device::get(ordinal as i32).map_err(|e| load_err("cuDeviceGet", e))?;
        let attr = |a| {
            // SAFETY: `dev` is a device handle the driver just returned.
            unsafe { result::device::get_attribute(dev, a) }.map_err(|e| load_err("reading the compute capability", e))
        };
        let major = attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?;
        let minor = attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?;
        let sm = (major * 10 + minor) as u32;
        let name = result::device::get_name(dev).unwrap_or_else(|_| "?".into());
        // SAFETY: as above.
        let memory_bytes = unsafe { result::device::total_mem(dev) }.unwrap_or(0) as u64;
        if sm < program.min_sm {
            return Err(LoadError::Cuda(format!(
                "GPU {ordinal} ({name}) is sm_{sm}; the artifact (compiled for sm_{}) needs sm_{} or newer",
                program.sm, program.min_sm
            )));
        }
        // SAFETY: `dev` is valid; the primary context is released in Drop.
        let ctx = unsafe { result::primary_ctx::retain(dev) }.map_err(|e| load_err("retaining the primary context", e))?;
        // SAFETY: `ctx` was just retained.
        unsafe { result::ctx::set_current(ctx) }.map_err(|e| load_err("cuCtxSetCurrent", e))?;
        let stream = result::stream::create(result::stream::StreamKind::NonBlocking).map_err(|e| load_err("creating a stream", e))?;
        let mut inner = Inner { dev, ctx, stream, modules: vec![], launches: vec![], arena: 0, weights: 0, status: 0, graph: None, use_graph: true };
        for (i, text) in program.modules.iter().enumerate() {
            let c = CString::new(text.as_str()).map_err(|_| LoadError::Cuda(format!("PTX module {i} holds a NUL byte")))?;
            // SAFETY: `c` is NUL-terminated PTX text that lives across the call.
            let m = unsafe { result::module::load_data(c.as_ptr() as *const c_void) }.map_err(|e| {
                let unsupported = e.0 == sys::CUresult::CUDA_ERROR_UNSUPPORTED_PTX_VERSION;
                LoadError::Cuda(if unsupported {
                    format!("the NVIDIA driver does not accept PTX ISA {}: it needs the driver of CUDA {} or newer", program.ptx_isa, cuda_release_for_ptx(&program.ptx_isa))
                } else {
                    format!("loading PTX module {i}: {e:?}")
                })
            })?;
            inner.modules.push(m);
        }
        let arena_bytes = program.arena_bytes.max(1) as usize;
        // SAFETY: plain allocations in the current context, freed in Drop.
        inner.arena = unsafe { result::malloc_sync(arena_bytes) }.map_err(|e| load_err(&format!("allocating the {arena_bytes}-byte device arena"), e))?;
        inner.weights = unsafe { result::malloc_sync(weights.len().max(1)) }.map_err(|e| load_err("allocating device memory for the weights", e))?;
        // SAFETY: both ranges are inside the allocations just made.
        unsafe {
            result::memcpy_htod_sync(inner.weights, weights).map_err(|e| load_err("uploading the weights", e))?;
            result::memset_d8_sync(inner.arena, 0, arena_bytes).map_err(|e| load_err("clearing the arena", e))?;
        }
        inner.status = inner.arena + program.status_offset;
        for l in &program.launches {
            let (a, w) = (inner.arena, inner.weights);
            inner.launches.push(match l {
                Launch::Kernel { module, name, grid, block, shared, args } => {
                    let c = CString::new(name.as_str()).expect("validated identifier");
                    // SAFETY: the module was loaded above and is unloaded only in Drop.
                    let f = unsafe { result::module::get_function(inner.modules[*module as usize], c) }.map_err(|e| load_err(&format!("kernel {name}"), e))?;
                    Prepared::Kernel { f, grid: *grid, block: *block, shared: *shared, args: args.iter().map(|p| p.resolve(a, w)).collect() }
                }
                Launch::Copy { dst, src, bytes } => Prepared::Copy { dst: dst.resolve(a, w), src: src.resolve(a, w), bytes: *bytes as usize },
                Launch::Fill { dst, value, bytes } => Prepared::Fill { dst: dst.resolve(a, w), value: *value, bytes: *bytes as usize },
            });
        }
        let info = DeviceInfo { ordinal, name, sm, memory_bytes };
        Ok(CudaEngine { inner: Mutex::new(inner), info, inputs: program.inputs.clone(), outputs: program.outputs.clone() })
    }

    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// Device address of input `i`'s slot (write it, e.g. with your own CUDA code in the
    /// device's primary context, then [`CudaEngine::run_on_device`]).
    pub fn input_ptr(&self, i: usize) -> Option<u64> {
        let base = self.lock().arena;
        self.inputs.get(i).map(|o| base + o)
    }

    /// Device address of output `j`'s slot, valid after a run until the next one.
    pub fn output_ptr(&self, j: usize) -> Option<u64> {
        let base = self.lock().arena;
        self.outputs.get(j).map(|o| base + o)
    }

    /// Capture the launch sequence in a CUDA graph on the next run and replay it (the
    /// default), or launch every kernel one by one.
    pub fn set_graphs(&self, on: bool) {
        let mut g = self.lock();
        g.use_graph = on;
        if !on {
            g.drop_graph();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Copies input `i` (checked by the caller against the signature) into its slot.
    pub fn upload(&self, i: usize, t: &TensorRef<'_>) -> Result<(), RunError> {
        let g = self.lock();
        g.bind()?;
        let dst = g.arena + self.inputs[i];
        // SAFETY: the slot holds exactly the input's bytes (validated at load).
        unsafe { result::memcpy_htod_sync(dst, t.bytes()) }.map_err(|e| run_err("copying an input to the GPU", e))
    }

    /// Copies output `j` from its slot into `t` (checked by the caller).
    pub fn download(&self, j: usize, t: &mut TensorMut<'_>) -> Result<(), RunError> {
        let g = self.lock();
        g.bind()?;
        let src = g.arena + self.outputs[j];
        // SAFETY: the slot holds exactly the output's bytes (validated at load).
        unsafe { result::memcpy_dtoh_sync(t.bytes_mut(), src) }.map_err(|e| run_err("copying an output from the GPU", e))
    }

    /// Runs the launch sequence on inputs already in their slots and waits for it; returns
    /// the status word as an error when a kernel set it.
    pub fn run_on_device(&self) -> Result<(), RunError> {
        let mut g = self.lock();
        g.bind()?;
        g.launch_all()?;
        g.finish()
    }

    /// One whole run: inputs in, the launches, outputs out.
    pub fn run(&self, inputs: &[TensorRef<'_>], outputs: &mut [TensorMut<'_>]) -> Result<(), RunError> {
        let mut g = self.lock();
        g.bind()?;
        for (t, &o) in inputs.iter().zip(&self.inputs) {
            // SAFETY: the slot holds exactly the input's bytes; a pageable source is staged
            // by the driver before the call returns.
            unsafe { result::memcpy_htod_async(g.arena + o, t.bytes(), g.stream) }.map_err(|e| run_err("copying an input to the GPU", e))?;
        }
        g.launch_all()?;
        for (t, &o) in outputs.iter_mut().zip(&self.outputs) {
            // SAFETY: as above; the copy completes before `finish` returns.
            unsafe { result::memcpy_dtoh_async(t.bytes_mut(), g.arena + o, g.stream) }.map_err(|e| run_err("copying an output from the GPU", e))?;
        }
        g.finish()
    }
}

impl Inner {
    fn bind(&self) -> Result<(), RunError> {
        // SAFETY: the context is retained for the engine's lifetime.
        unsafe { result::ctx::set_current(self.ctx) }.map_err(|e| run_err("cuCtxSetCurrent", e))
    }

    fn launch_all(&mut self) -> Result<(), RunError> {
        if self.use_graph {
            if self.graph.is_none() {
                self.capture()?;
            }
            if let Some(exec) = self.graph {
                // SAFETY: `exec` was instantiated from this engine's own launches.
                return unsafe { result::graph::launch(exec, self.stream) }.map_err(|e| run_err("launching the CUDA graph", e));
            }
        }
        self.enqueue()
    }

    /// Records the launch sequence into a graph; on any failure graphs are switched off and
    /// the launches run one by one.
    fn capture(&mut self) -> Result<(), RunError> {
        // SAFETY: the stream is this engine's; capture ends before anything else uses it.
        let began = unsafe { result::stream::begin_capture(self.stream, sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL) };
        if began.is_err() {
            self.use_graph = false;
            return Ok(());
        }
        let queued = self.enqueue();
        // SAFETY: as above.
        let graph = unsafe { result::stream::end_capture(self.stream) };
        queued?;
        let Ok(graph) = graph else {
            self.use_graph = false;
            return Ok(());
        };
        // SAFETY: `graph` was just captured; it is destroyed once instantiated.
        let exec = unsafe { result::graph::instantiate(graph, sys::CUgraphInstantiate_flags(0)) };
        unsafe {
            let _ = result::graph::destroy(graph);
        }
        match exec {
            Ok(e) => self.graph = Some(e),
            Err(_) => self.use_graph = false,
        }
        Ok(())
    }

    fn enqueue(&mut self) -> Result<(), RunError> {
        for l in &mut self.launches {
            match l {
                Prepared::Kernel { f, grid, block, shared, args } => {
                    let mut params: Vec<*mut c_void> = args.iter_mut().map(|a| a as *mut u64 as *mut c_void).collect();
                    // SAFETY: `f` is a kernel of a loaded module whose parameters are all
                    // u64 device pointers, as many as `args` (the compiler emitted both);
                    // every pointer lies in the arena or the weights (validated at load);
                    // the parameter values are copied by the driver at launch.
                    unsafe { result::launch_kernel(*f, (grid[0], grid[1], grid[2]), (block[0], block[1], block[2]), *shared, self.stream, &mut params) }
                        .map_err(|e| run_err("launching a kernel", e))?;
                }
                // SAFETY (both): ranges inside the arena or the weights, validated at load.
                Prepared::Copy { dst, src, bytes } => unsafe { result::memcpy_dtod_async(*dst, *src, *bytes, self.stream) }.map_err(|e| run_err("a device copy", e))?,
                Prepared::Fill { dst, value, bytes } => unsafe { result::memset_d8_async(*dst, *value, *bytes, self.stream) }.map_err(|e| run_err("a device fill", e))?,
            }
        }
        Ok(())
    }

    /// Waits for the stream and reads the status word.
    fn finish(&mut self) -> Result<(), RunError> {
        let mut status = [0i32; 1];
        // SAFETY: the status word is 4 bytes inside the arena.
        unsafe {
            result::memcpy_dtoh_async(&mut status, self.status, self.stream).map_err(|e| run_err("reading the status word", e))?;
            result::stream::synchronize(self.stream).map_err(|e| run_err("waiting for the GPU", e))?;
        }
        if status[0] != 0 {
            return Err(RunError::Code(status[0]));
        }
        Ok(())
    }

    fn drop_graph(&mut self) {
        if let Some(e) = self.graph.take() {
            // SAFETY: instantiated by this engine and not running (runs synchronise).
            unsafe {
                let _ = result::graph::exec_destroy(e);
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // SAFETY: every handle was made by this engine and nothing uses it any more.
        unsafe {
            let _ = result::ctx::set_current(self.ctx);
            let _ = result::stream::synchronize(self.stream);
            self.drop_graph();
            for m in self.modules.drain(..) {
                let _ = result::module::unload(m);
            }
            if self.arena != 0 {
                let _ = result::free_sync(self.arena);
            }
            if self.weights != 0 {
                let _ = result::free_sync(self.weights);
            }
            let _ = result::stream::destroy(self.stream);
            let _ = result::primary_ctx::release(self.dev);
        }
    }
}
