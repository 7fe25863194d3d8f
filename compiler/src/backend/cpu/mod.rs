//! The CPU backend: optimised IR → kernel language → Cranelift machine code → `.neo`.
//!
//! 1. [`lower`] turns every op into [`kernel::Step`]s over symbolic buffers, and the
//!    kernel IR verifier ([`crate::kernel_ir::verify`]) checks them (a failure is an
//!    internal compiler error, listing every problem);
//! 2. [`plan`] gives temporaries arena offsets (static memory planning);
//! 3. [`codegen`] emits one Cranelift function per step plus the entry function;
//! 4. [`link`] compiles and lays them out into position-independent code;
//! 5. the runtime's [`neoc_runtime::ArtifactWriter`] writes the artifact (the runtime
//!    owns the format; the compiler only fills it in).

pub mod codegen;
pub mod isa;
pub mod link;
pub mod lowbit;
mod lowbit_inline;
mod parallel;
pub mod vmath;

use std::time::Instant;

use anyhow::{Context, Result, anyhow};
use neoc_runtime::{ArtifactWriter, CallConv, Metadata, StepInfo, StepTable, TensorSig, abi};

use crate::ir::{Graph, OpImpl, ValueType};
use crate::target::Target;
use codegen::{Base, Codegen};
use crate::kernel_ir::{Mem, Step, plan};
use crate::lower;
pub use crate::lower::LowerProblem;

/// Why compilation failed.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// Ops the backend (`cpu`, `cuda`) cannot compile yet, all of them.
    #[error("{} op(s) cannot be compiled for the {backend} backend:\n{}", problems.len(), problems.iter().map(|p| format!("  node '{}' ({}): {}", p.node, p.op, p.message)).collect::<Vec<_>>().join("\n"))]
    Unsupported { backend: &'static str, problems: Vec<LowerProblem> },
    /// The memory plan needs more than the limit (`--max-memory`, by default this
    /// machine's memory).
    #[error("the compiled model would need {} of memory (arena {}, weights {}, inputs and outputs {}), more than the limit of {} (--max-memory)", gib(*needs), gib(*arena), gib(*weights), gib(*io), gib(*limit))]
    TooMuchMemory { needs: u64, arena: u64, weights: u64, io: u64, limit: u64 },
    /// The lowering produced kernel IR that fails the verifier: a bug in the compiler.
    #[error("internal compiler error: {0}")]
    InvalidKernelIr(crate::kernel_ir::verify::VerifyErrors),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// `n` bytes, with a readable unit next to the exact count.
fn gib(n: u64) -> String {
    if n >= 1 << 30 { format!("{n} bytes ({:.2} GiB)", n as f64 / (1u64 << 30) as f64) } else { format!("{n} bytes ({:.1} MiB)", n as f64 / (1u64 << 20) as f64) }
}

/// What one compilation did, for the CLI's summary.
#[derive(Clone, Debug, Default)]
pub struct BackendReport {
    pub steps: usize,
    /// Steps whose loop nest is split over the intra-op threads.
    pub parallel_steps: usize,
    pub arena_bytes: u64,
    pub arena_unshared_bytes: u64,
    pub weight_bytes: u64,
    pub code_bytes: u64,
    pub features: Vec<String>,
    /// For a portable target: each code variant's name, code bytes and required features.
    pub code_variants: Vec<(String, u64, Vec<String>)>,
    pub lower_ms: f64,
    /// Of `lower_ms`, the kernel IR verifier's share.
    pub verify_ms: f64,
    pub codegen_ms: f64,
}

/// A compiled artifact.
pub struct CompiledArtifact {
    pub bytes: Vec<u8>,
    pub report: BackendReport,
    /// Cranelift's listing of the generated machine code (only from [`compile_with_listing`]).
    pub listing: Option<String>,
}

fn runtime_sig(name: &str, ty: &ValueType) -> TensorSig {
    TensorSig::new(name, ty.dtype, ty.shape.clone())
}

/// Compiles an optimised graph for a CPU target: x86-64 code calls the runtime's kernels
/// ([`lower::Caps::CPU`]), aarch64 code is self-contained and calls only the runtime
/// services ([`lower::Caps::SELF_CONTAINED`]).
pub fn compile(g: &Graph, target: &Target) -> Result<CompiledArtifact, CompileError> {
    build(g, target, None, false, None, &mut |_| {})
}

/// As [`compile`], refusing (before code generation) a model whose memory plan — arena,
/// weights, inputs and outputs — needs more than `max_memory` bytes, and handing the
/// lowering to `inspect` as soon as it exists, before the verifier runs (so `--dump-ir
/// after=lower` prints an invalid one too).
pub fn compile_with(g: &Graph, target: &Target, max_memory: Option<u64>, inspect: &mut dyn FnMut(&lower::Lowered)) -> Result<CompiledArtifact, CompileError> {
    build(g, target, None, false, max_memory, inspect)
}

/// As [`compile`], lowering with other backend choices than the CPU's own (tests use it
/// to check the lowering's loop-nest forms, e.g. a GEMM without the `sgemm` kernel).
pub fn compile_with_caps(g: &Graph, target: &Target, caps: &lower::Caps) -> Result<CompiledArtifact, CompileError> {
    build(g, target, Some(caps), false, None, &mut |_| {})
}

/// As [`compile`], also returning the disassembly of every function (as Cranelift
/// printed the instructions it emitted), e.g. to inspect cross-compiled aarch64 code.
pub fn compile_with_listing(g: &Graph, target: &Target) -> Result<CompiledArtifact, CompileError> {
    build(g, target, None, true, None, &mut |_| {})
}

/// `caps`: the lowering's choices, by default the target ISA's ([`lower::Caps::cpu`]).
fn build(g: &Graph, target: &Target, caps: Option<&lower::Caps>, listing: bool, max_memory: Option<u64>, inspect: &mut dyn FnMut(&lower::Lowered)) -> Result<CompiledArtifact, CompileError> {
    // A portable target compiles the same lowered program once per ISA level.
    let levels: Vec<Target> = if target.variants.is_empty() { vec![target.clone()] } else { target.variant_targets().map_err(anyhow::Error::from)? };
    let cpus = levels.iter().map(isa::for_target).collect::<Result<Vec<_>>>()?;
    let default_caps = lower::Caps::cpu(cpus[0].arch);
    let caps = caps.unwrap_or(&default_caps);
    let t0 = Instant::now();
    let lowered = lower::lower(g, caps).map_err(|problems| CompileError::Unsupported { backend: caps.backend, problems })?;
    inspect(&lowered);
    // Always on: about 0.1 ms of the 0.55-0.9 s that compiling ResNet-50 takes (0.3 ms of
    // BERT-base's 2 s).
    let tv = Instant::now();
    crate::kernel_ir::verify::verify(&lowered).map_err(CompileError::InvalidKernelIr)?;
    let verify_ms = tv.elapsed().as_secs_f64() * 1e3;
    let memory = plan::plan(&lowered.steps, &lowered.temps)?;
    let lower_ms = t0.elapsed().as_secs_f64() * 1e3;
    if let Some(limit) = max_memory {
        let (arena, weights) = (memory.arena_size, lowered.blobs.iter().fold(0u64, |a, b| a.saturating_add(b.len() as u64)));
        let io = lowered.inputs.iter().chain(&lowered.outputs).fold(0u64, |a, (_, t)| a.saturating_add(t.bytes() as u64));
        let needs = arena.saturating_add(weights).saturating_add(io);
        if needs > limit {
            return Err(CompileError::TooMuchMemory { needs, arena, weights, io, limit });
        }
    }

    // Weights: each blob 64-byte aligned.
    let mut weights = Vec::<u8>::new();
    let mut blob_offsets = Vec::with_capacity(lowered.blobs.len());
    for b in &lowered.blobs {
        while !weights.len().is_multiple_of(abi::WEIGHTS_ALIGN) {
            weights.push(0);
        }
        blob_offsets.push(weights.len() as u64);
        weights.extend_from_slice(b);
    }
    let resolve = |m: Mem| -> (Base, u64) {
        match m {
            Mem::Input(i) => (Base::Input(i), 0),
            Mem::Output(i) => (Base::Output(i), 0),
            Mem::Weight(i) => (Base::Weights, blob_offsets[i as usize]),
            Mem::Temp(i) => (Base::Arena, memory.offsets[i as usize]),
        }
    };
    let t1 = Instant::now();
    let mut generated = Vec::with_capacity(cpus.len());
    for cpu in &cpus {
        generated.push(generate(cpu, &lowered, &resolve, caps, listing)?);
    }
    let codegen_ms = t1.elapsed().as_secs_f64() * 1e3;

    let (cpu, first) = (&cpus[0], &generated[0]);
    let sigs = |list: &[(String, ValueType)]| list.iter().map(|(n, t)| runtime_sig(n, t)).collect::<Vec<_>>();
    let meta = Metadata {
        target: target.name.clone(),
        isa: cpu.arch,
        call_conv: first.call_conv,
        cpu_features: cpu.features.clone(),
        inputs: sigs(&lowered.inputs),
        outputs: sigs(&lowered.outputs),
        arena_size: memory.arena_size,
        entry_offset: first.entry_offset,
        // The table this compiler was built against: entries and parameter meanings
        // (conv weight layouts, …) only ever grow, so an older runtime refuses the
        // artifact at load rather than calling something it lacks.
        kernel_abi_version: neoc_runtime::abi::KERNEL_ABI_VERSION,
        runtime_features: lowered.runtime_features.clone(),
    };
    let parallel_steps = first.parallel_steps;
    let step_offsets = generated.iter().map(|g| g.step_offsets.clone()).collect();
    let code_bytes = generated.iter().map(|g| g.code.len() as u64).sum();
    let mut code_variants = Vec::new();
    let mut w = ArtifactWriter::new(meta);
    w.neoc_version(env!("CARGO_PKG_VERSION"));
    let listing = generated.iter().filter_map(|g| g.listing.clone()).reduce(|a, b| a + &b);
    if levels.len() == 1 {
        w.set_code(generated.into_iter().next().expect("one level").code);
    } else {
        let mut list = Vec::with_capacity(levels.len());
        for ((level, cpu), g) in levels.iter().zip(&cpus).zip(generated) {
            code_variants.push((level.name.clone(), g.code.len() as u64, cpu.features.clone()));
            let v = neoc_runtime::CodeVariant { name: level.name.clone(), cpu_features: cpu.features.clone(), entry_offset: g.entry_offset };
            list.push((v, g.code));
        }
        w.set_code_variants(list);
    }
    w.push_weights(&weights);
    w.set_steps(StepTable { steps: step_infos(g, &lowered), offsets: step_offsets });
    let bytes = w.finish().map_err(|e| anyhow!("writing the artifact: {e}"))?;
    Ok(CompiledArtifact {
        bytes,
        report: BackendReport {
            steps: lowered.steps.len(),
            parallel_steps,
            arena_bytes: memory.arena_size,
            arena_unshared_bytes: memory.unshared_size,
            weight_bytes: weights.len() as u64,
            code_bytes,
            features: cpus[0].features.clone(),
            code_variants,
            lower_ms,
            verify_ms,
            codegen_ms,
        },
        listing,
    })
}

/// Machine code for one ISA level.
struct Generated {
    code: Vec<u8>,
    entry_offset: u64,
    call_conv: CallConv,
    parallel_steps: usize,
    /// Where each step's function starts in the code (for the step table).
    step_offsets: Vec<u64>,
    listing: Option<String>,
}

/// What each step is, for the artifact's step table (`neoc profile`): its node, the node's
/// op, the step's kind, and estimated FLOPs. A node's FLOPs ([`crate::ir::cost`]) go to its
/// kernel-call steps, shared evenly (the loops beside a call are its epilogues and copies),
/// or evenly to all its steps when it has no call.
fn step_infos(g: &Graph, lowered: &lower::Lowered) -> Vec<StepInfo> {
    let nodes: std::collections::HashMap<&str, crate::ir::NodeId> = g.node_ids().map(|n| (g.node(n).name.as_str(), n)).collect();
    let kind = |s: &Step| match s {
        Step::Loop(_) => "loop".to_string(),
        Step::Reduce(_) => "reduce".to_string(),
        Step::Call(c) => format!("call {}", c.kernel.name()),
    };
    let mut infos: Vec<StepInfo> = Vec::with_capacity(lowered.steps.len());
    let mut i = 0;
    while i < lowered.steps.len() {
        // Steps of one node are consecutive.
        let name = &lowered.step_nodes[i];
        let end = (i..lowered.steps.len()).find(|&j| lowered.step_nodes[j] != *name).unwrap_or(lowered.steps.len());
        let node = nodes.get(name.as_str()).copied();
        let op = node.and_then(|n| match &g.node(n).kind {
            crate::ir::NodeKind::Op(op) => Some(op.name()),
            _ => None,
        });
        let flops = node.map_or(0, |n| crate::ir::cost::node_flops(g, n));
        let calls = lowered.steps[i..end].iter().filter(|s| matches!(s, Step::Call(_))).count();
        for s in &lowered.steps[i..end] {
            let share = match (calls, s) {
                (0, _) => flops / (end - i) as u64,
                (n, Step::Call(_)) => flops / n as u64,
                _ => 0,
            };
            infos.push(StepInfo { node: name.clone(), op: op.unwrap_or("").to_string(), kind: kind(s), flops: share });
        }
        i = end;
    }
    infos
}

/// Generates and links the code of every step, the entry and the tasks for one ISA.
/// A step that needs a runtime kernel `caps` does not have is refused, naming its node.
fn generate(cpu: &isa::CpuIsa, lowered: &lower::Lowered, resolve: &dyn Fn(Mem) -> (Base, u64), caps: &lower::Caps, listing: bool) -> Result<Generated, CompileError> {
    let cg = Codegen { isa: cpu.get(), resolve, callable: caps.kernels, refused: Default::default() };
    // Steps are functions 0..n, the entry n, the tasks of split steps from n + 1 on.
    let n_steps = lowered.steps.len();
    let mut funcs = Vec::with_capacity(n_steps + 1);
    let mut tasks = Vec::new();
    let mut refused = Vec::new();
    for (i, step) in lowered.steps.iter().enumerate() {
        let (f, task) = cg.step_functions(i, step, n_steps + 1 + tasks.len()).with_context(|| format!("node '{}'", lowered.step_nodes[i]))?;
        for k in std::mem::take(&mut *cg.refused.borrow_mut()) {
            let node = lowered.step_nodes[i].clone();
            let message = format!("its code needs the runtime kernel `{}`, which the {} backend does not call", k.name(), caps.backend);
            let p = LowerProblem { node, op: "code generation".into(), message };
            if !refused.contains(&p) {
                refused.push(p);
            }
        }
        funcs.push(f);
        tasks.extend(task);
    }
    if !refused.is_empty() {
        return Err(CompileError::Unsupported { backend: "cpu", problems: refused });
    }
    let parallel_steps = tasks.len();
    // The entry, then the tasks, then the entry's chunk functions (large models only).
    let mut entry_funcs = cg.entry_functions(n_steps, n_steps + 1 + tasks.len()).into_iter();
    funcs.extend(entry_funcs.next());
    let entry = funcs.len() - 1;
    funcs.extend(tasks);
    funcs.extend(entry_funcs);
    let linked = link::compile_and_link(cpu.get(), funcs, listing)?;
    let call_conv = CallConv::parse(&cg.call_conv().to_string())
        .ok_or_else(|| anyhow!("calling convention {} is not one the runtime knows", cg.call_conv()))?;
    let step_offsets = linked.offsets[..n_steps].iter().map(|&o| o as u64).collect();
    Ok(Generated { entry_offset: linked.offsets[entry] as u64, code: linked.code, call_conv, parallel_steps, step_offsets, listing: linked.listing })
}
