//! The CUDA backend: optimised IR → the shared lowering (with [`CAPS`]) → kernel IR →
//! PTX → a CUDA artifact (`neoc_runtime::cuda`: PTX modules and a launch sequence, run by
//! the driver API alone).
//!
//! - `Loop` and `Reduce` steps become generated kernels ([`nest`]: a thread per point, a
//!   thread group per reduced row with warp shuffles), their expressions with the CPU code
//!   generator's semantics ([`expr`], [`math`]);
//! - `Call` steps of `sgemm` and `sgemm_epilogue` become a shared-memory tiled SIMT GEMM
//!   ([`gemm`]), `conv` an implicit GEMM on the same tiles or a direct kernel for thin
//!   groups (depthwise), `pool` a thread per output ([`window`]), each specialised from the
//!   call's parameter block (read from the lowering's weights blobs at compile time);
//!   `memcpy` and `memset` are driver copies and fills in the launch sequence.
//! - Kernels are grouped in one PTX module per family (`loop`, `reduce`, `gemm`, `conv`,
//!   `pool`), each kernel named by a hash of its text, so equal kernels appear once.
//!
//! Memory: the CPU backend's static memory plan gives the temporaries their arena offsets;
//! the device arena appends a slot per graph input and output and the status word. Weights
//! are the artifact's weights section, uploaded once.
//!
//! Every module is FP32 SIMT code for `.target sm_50` at PTX ISA 6.0 ([`ptx::Level::SIMT`]),
//! the oldest that `shfl.sync` needs, so one artifact runs on every GPU from Maxwell on
//! through the driver's JIT, and drivers from CUDA 9.0 on accept it.

pub mod expr;
pub mod gemm;
pub mod math;
pub mod nest;
pub mod ptx;
pub mod ptxas;
pub mod window;

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use anyhow::{Result, anyhow, bail};
use neoc_runtime::abi::{ConvParams, GemmParams, Kernel as RtKernel, PoolParams};
use neoc_runtime::cuda::{Launch, Program, Ptr};
use neoc_runtime::{ArtifactWriter, CallConv, Isa, Metadata, TensorSig};

use crate::backend::cpu::{BackendReport, CompileError, CompiledArtifact};
use crate::ir::{Graph, NodeKind, OpImpl, ValueType};
use crate::kernel_ir::{CallArg, Mem, Step, plan};
use crate::lower::{self, Caps, LowerProblem};
use crate::target::Target;
use nest::Built;

/// What the CUDA backend's lowering may use: the runtime kernels it has PTX templates for,
/// weights in ONNX layouts (no packing for the CPU kernels), no strings kernel (string ops
/// are refused, naming the op).
pub const CAPS: Caps = Caps {
    backend: "cuda",
    kernels: &[RtKernel::Sgemm, RtKernel::SgemmEpilogue, RtKernel::Conv, RtKernel::Pool, RtKernel::Memcpy, RtKernel::Memset],
    pack_weights: false,
};

/// Arithmetic precision of a CUDA compilation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    #[default]
    Fp32,
    Fp16,
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Fp16 => "fp16",
        }
    }
}

/// One PTX module of a compilation: its family name and text.
#[derive(Clone, Debug)]
pub struct Module {
    pub family: &'static str,
    pub text: String,
}

/// A compiled CUDA artifact, with its PTX modules (for `--emit ptx` and the ptxas tests).
pub struct CudaCompiled {
    pub artifact: CompiledArtifact,
    pub modules: Vec<Module>,
    pub program: Program,
}

/// Alignment of the input and output slots in the device arena.
pub const SLOT_ALIGN: u64 = 256;

/// The device arena: the memory plan's temporaries, then the slots, then the status word.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceLayout {
    pub temps: Vec<u64>,
    pub inputs: Vec<u64>,
    pub outputs: Vec<u64>,
    pub status: u64,
    pub bytes: u64,
}

impl DeviceLayout {
    pub fn new(plan: &plan::MemoryPlan, inputs: &[(String, ValueType)], outputs: &[(String, ValueType)]) -> DeviceLayout {
        let mut at = plan.arena_size.next_multiple_of(SLOT_ALIGN);
        let mut slots = |list: &[(String, ValueType)]| -> Vec<u64> {
            list.iter()
                .map(|(_, t)| {
                    let o = at;
                    at = (at + lower::buf_bytes(t)).next_multiple_of(SLOT_ALIGN);
                    o
                })
                .collect()
        };
        let inputs = slots(inputs);
        let outputs = slots(outputs);
        DeviceLayout { temps: plan.offsets.clone(), inputs, outputs, status: at, bytes: at + SLOT_ALIGN }
    }

    /// Where a buffer of the lowering lives on the device.
    pub fn ptr(&self, m: Mem, blob_offsets: &[u64]) -> Ptr {
        match m {
            Mem::Input(i) => Ptr::arena(self.inputs[i as usize]),
            Mem::Output(i) => Ptr::arena(self.outputs[i as usize]),
            Mem::Temp(i) => Ptr::arena(self.temps[i as usize]),
            Mem::Weight(i) => Ptr::weights(blob_offsets[i as usize]),
        }
    }
}

/// A launch before modules are assembled: a family's kernel, or a driver operation.
enum Pending {
    Kernel { family: &'static str, built: Built },
    Op(Launch),
}

/// Compiles an optimised graph for a GPU target.
pub fn compile(g: &Graph, target: &Target, precision: Precision) -> Result<CudaCompiled, CompileError> {
    let gpu = target.gpu.as_ref().ok_or_else(|| anyhow!("target '{}' has no NVIDIA GPU", target.name))?;
    if precision == Precision::Fp16 {
        return Err(anyhow!("--precision fp16 is not built yet for the cuda backend (its tensor-core GEMM is planned); compile with --precision fp32").into());
    }
    let t0 = Instant::now();
    let lowered = lower::lower(g, &CAPS).map_err(|problems| CompileError::Unsupported { backend: "cuda", problems })?;
    let tv = Instant::now();
    crate::kernel_ir::verify::verify(&lowered).map_err(CompileError::InvalidKernelIr)?;
    let verify_ms = tv.elapsed().as_secs_f64() * 1e3;
    let memory = plan::plan(&lowered.steps, &lowered.temps)?;
    let layout = DeviceLayout::new(&memory, &lowered.inputs, &lowered.outputs);
    let lower_ms = t0.elapsed().as_secs_f64() * 1e3;

    let mut weights = Vec::<u8>::new();
    let mut blob_offsets = Vec::with_capacity(lowered.blobs.len());
    for b in &lowered.blobs {
        weights.resize(weights.len().next_multiple_of(neoc_runtime::abi::WEIGHTS_ALIGN), 0);
        blob_offsets.push(weights.len() as u64);
        weights.extend_from_slice(b);
    }
    let t1 = Instant::now();
    let mut pending = vec![Pending::Op(Launch::Fill { dst: Ptr::arena(layout.status), value: 0, bytes: 4 })];
    // A step that has no CUDA form is reported by its node and ONNX op (once per node).
    let op_of: HashMap<&str, &str> = g
        .topo_order()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|id| match &g.node(id).kind {
            NodeKind::Op(op) => Some((g.node(id).name.as_str(), op.name())),
            _ => None,
        })
        .collect();
    let mut problems: Vec<LowerProblem> = vec![];
    for (step, node) in lowered.steps.iter().zip(&lowered.step_nodes) {
        let resolve = |m: Mem| layout.ptr(m, &blob_offsets);
        match step_launches(step, &lowered.blobs, &resolve) {
            Ok(list) => pending.extend(list),
            Err(_) if problems.last().is_some_and(|p| &p.node == node) => {}
            Err(e) => {
                let op = op_of.get(node.as_str()).copied().unwrap_or("?").to_string();
                problems.push(LowerProblem { node: node.clone(), op, message: format!("its {} step: {e:#}", step_kind(step)) });
            }
        }
    }
    if !problems.is_empty() {
        return Err(CompileError::Unsupported { backend: "cuda", problems });
    }
    // Modules by family, each kernel once, named by its text's hash.
    let mut families: BTreeMap<&'static str, BTreeMap<String, String>> = BTreeMap::new();
    let mut launches = Vec::with_capacity(pending.len());
    let mut named = Vec::with_capacity(pending.len());
    for p in pending {
        match p {
            Pending::Op(l) => named.push((None, l)),
            Pending::Kernel { family, built } => {
                let name = format!("{family}_{:016x}", neoc_runtime::xxh64(built.text.as_bytes(), 0));
                let text = built.text.replace(nest::NAME, &name);
                families.entry(family).or_default().insert(name.clone(), text);
                let mut args: Vec<Ptr> = built.mems.iter().map(|m| layout.ptr(*m, &blob_offsets)).collect();
                args.push(Ptr::arena(layout.status));
                let l = Launch::Kernel { module: 0, name, grid: built.grid, block: built.block, shared: 0, args };
                named.push((Some(family), l));
            }
        }
    }
    let level = ptx::Level::SIMT;
    let mut modules = Vec::new();
    let mut index: HashMap<&'static str, u32> = HashMap::new();
    for (family, kernels) in &families {
        index.insert(family, modules.len() as u32);
        let mut text = level.header();
        for k in kernels.values() {
            text.push('\n');
            text.push_str(k);
        }
        modules.push(Module { family, text });
    }
    for (family, mut l) in named {
        if let (Some(f), Launch::Kernel { module, .. }) = (family, &mut l) {
            *module = index[f];
        }
        launches.push(l);
    }
    let program = Program {
        sm: gpu.sm,
        min_sm: level.sm,
        ptx_isa: level.isa_text(),
        precision: precision.name().into(),
        arena_bytes: layout.bytes,
        status_offset: layout.status,
        inputs: layout.inputs.clone(),
        outputs: layout.outputs.clone(),
        modules: modules.iter().map(|m| m.text.clone()).collect(),
        launches,
    };
    let codegen_ms = t1.elapsed().as_secs_f64() * 1e3;
    let isa = Isa::parse(&target.isa).ok_or_else(|| anyhow!("target '{}' has host ISA '{}'", target.name, target.isa))?;
    let sigs = |list: &[(String, ValueType)]| list.iter().map(|(n, t)| TensorSig::new(n.clone(), t.dtype, t.shape.clone())).collect::<Vec<_>>();
    let meta = Metadata {
        target: target.name.clone(),
        isa,
        call_conv: CallConv::SystemV,
        cpu_features: vec![],
        inputs: sigs(&lowered.inputs),
        outputs: sigs(&lowered.outputs),
        arena_size: 0,
        entry_offset: 0,
        kernel_abi_version: neoc_runtime::abi::KERNEL_ABI_VERSION,
        runtime_features: vec![neoc_runtime::cuda::RUNTIME_FEATURE.into()],
    };
    let mut w = ArtifactWriter::new(meta);
    w.neoc_version(env!("CARGO_PKG_VERSION"));
    w.set_cuda_program(program.clone());
    w.push_weights(&weights);
    let bytes = w.finish().map_err(|e| anyhow!("writing the artifact: {e}"))?;
    let report = BackendReport {
        steps: lowered.steps.len(),
        parallel_steps: 0,
        arena_bytes: layout.bytes,
        arena_unshared_bytes: memory.unshared_size,
        weight_bytes: weights.len() as u64,
        code_bytes: modules.iter().map(|m| m.text.len() as u64).sum(),
        features: vec![format!("sm_{}", level.sm), format!("ptx {}", level.isa_text())],
        code_variants: vec![],
        lower_ms,
        verify_ms,
        codegen_ms,
    };
    Ok(CudaCompiled { artifact: CompiledArtifact { bytes, report, listing: None }, modules, program })
}

fn step_kind(s: &Step) -> String {
    match s {
        Step::Loop(_) => "loop".into(),
        Step::Reduce(_) => "reduce".into(),
        Step::Call(c) => format!("call {}", c.kernel.name()),
    }
}

/// The parameter block a call's first argument points at, decoded from its blob.
fn params<T: Copy>(arg: &CallArg, blobs: &[Vec<u8>]) -> Result<T> {
    let Some(Mem::Weight(i)) = arg.mem() else { bail!("the parameter block is not a weights blob") };
    let CallArg::Buf { offset, .. } = arg else { unreachable!("a buffer") };
    let b = &blobs[i as usize];
    let at = *offset as usize;
    if at + std::mem::size_of::<T>() > b.len() {
        bail!("the parameter block is shorter than {} bytes", std::mem::size_of::<T>());
    }
    // SAFETY: `T` is one of the ABI's `#[repr(C)]` parameter structs of integers and floats
    // (any bit pattern is a value); the bytes are in bounds and read unaligned.
    Ok(unsafe { std::ptr::read_unaligned(b[at..].as_ptr() as *const T) })
}

/// Launches for one step.
fn step_launches(step: &Step, blobs: &[Vec<u8>], resolve: &dyn Fn(Mem) -> Ptr) -> Result<Vec<Pending>> {
    Ok(match step {
        Step::Loop(l) if l.dims.contains(&0) => vec![],
        Step::Loop(l) => vec![Pending::Kernel { family: "loop", built: nest::loop_kernel(l)? }],
        Step::Reduce(r) if r.dims[..r.n_outer].contains(&0) => vec![],
        Step::Reduce(r) => vec![Pending::Kernel { family: "reduce", built: nest::reduce_kernel(r)? }],
        Step::Call(c) => match c.kernel {
            RtKernel::Memcpy | RtKernel::Memset => copies(c, resolve)?,
            RtKernel::Sgemm => vec![Pending::Kernel { family: "gemm", built: gemm::sgemm(c)? }],
            RtKernel::SgemmEpilogue => {
                let p: GemmParams = params(&c.args[0], blobs)?;
                vec![Pending::Kernel { family: "gemm", built: gemm::sgemm_epilogue(c, &p)? }]
            }
            RtKernel::Conv => {
                let p: ConvParams = params(&c.args[0], blobs)?;
                vec![window::conv(c, &p)?]
            }
            RtKernel::Pool => {
                let p: PoolParams = params(&c.args[0], blobs)?;
                vec![Pending::Kernel { family: "pool", built: window::pool(c, &p)? }]
            }
            other => bail!("the runtime kernel `{}` has no CUDA form", other.name()),
        },
    })
}

/// `memcpy`/`memset` calls as driver copies and fills, one per batch point.
fn copies(c: &crate::kernel_ir::Call, resolve: &dyn Fn(Mem) -> Ptr) -> Result<Vec<Pending>> {
    let points: usize = c.batch.iter().product();
    if points > 4096 {
        bail!("a batched {} of {points} points", c.kernel.name());
    }
    let mut out = vec![];
    let strides = crate::kernel_ir::dense_strides(&c.batch);
    for b in 0..points {
        let at = |arg: &CallArg| -> Result<Ptr> {
            let CallArg::Buf { mem, offset, batch_strides } = arg else { bail!("{} of a null pointer", c.kernel.name()) };
            let mut o = *offset;
            for (d, s) in batch_strides.iter().enumerate() {
                o += s * ((b as i64 / strides[d]) % c.batch[d] as i64);
            }
            let p = resolve(*mem);
            Ok(Ptr { base: p.base, offset: (p.offset as i64 + o) as u64 })
        };
        let n = match c.args.last() {
            Some(CallArg::Int(n)) => *n as u64,
            _ => bail!("{} without a byte count", c.kernel.name()),
        };
        if n == 0 {
            continue;
        }
        let dst = at(&c.args[0])?;
        out.push(Pending::Op(match c.kernel {
            RtKernel::Memcpy => Launch::Copy { dst, src: at(&c.args[1])?, bytes: n },
            _ => {
                let CallArg::Int(v) = c.args[1] else { bail!("memset without a value") };
                Launch::Fill { dst, value: v as u8, bytes: n }
            }
        }));
    }
    Ok(out)
}
