//! Kernel language → Cranelift IR: one function per [`Step`], and the entry function that
//! calls them in order.
//!
//! Every function takes the `*const RunContext` and returns an i32 status. Base pointers
//! are loaded once in the entry block; loop nests hoist each access's partial address out
//! of inner loops, loads that do not move in the innermost loop are done once before it,
//! and an innermost loop over contiguous f32 data runs on f32x4 vectors (Cranelift's
//! widest, see FACTS.md) unrolled twice, with a scalar tail. The low-precision types
//! (8-bit floats, packed 4- and 2-bit types) load and store through [`lowbit`]; loops that
//! touch them stay scalar.

use std::collections::HashMap;

use anyhow::{Result, bail};
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::types::{F32, F32X4, F64, I8, I16, I32, I64};
use cranelift_codegen::ir::{
    AbiParam, Block, ExtFuncData, ExternalName, Function, InstBuilder, MemFlagsData, Signature, Type, UserExternalName,
    UserFuncName, Value,
};
use cranelift_codegen::isa::{CallConv, TargetIsa};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};
use neoc_runtime::abi::{self, ArgKind, Kernel, Ret};

use crate::kernel_ir::{Access, BinOp, Call, CallArg, ERR_INDEX, Expr, Lit, Loop, Mem, Reduce, Step, UnOp};
use super::lowbit;
use super::{parallel, vmath};

mod calls;
mod nest;
mod scalar;

use nest::{collapse, map_loads};
use crate::tensor::DType;

/// Where a [`Mem`] lives after planning: a base pointer of the run context plus a byte
/// offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Base {
    Input(u32),
    Output(u32),
    Weights,
    Arena,
}

pub struct Codegen<'a> {
    pub isa: &'a dyn TargetIsa,
    pub resolve: &'a dyn Fn(Mem) -> (Base, u64),
    /// The runtime kernels the code may call (`lower::Caps::kernels`). A step that needs
    /// another (a math function the generator does not expand inline, a low-precision
    /// codec) records it in `refused`, and the backend refuses that step.
    pub callable: &'a [Kernel],
    pub refused: std::cell::RefCell<Vec<Kernel>>,
}

fn ptr_flags() -> MemFlagsData {
    MemFlagsData::trusted()
}

/// The most step calls one function of the entry makes (see [`Codegen::entry_functions`]).
pub const ENTRY_CHUNK: usize = 1024;

/// Data loads and stores: never trap (buffers are valid), but vectors may be unaligned.
fn data_flags() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

/// The type values of dtype `d` compute in (f16, bf16 and the low-precision floats compute
/// in f32, the 4- and 2-bit integers in i8).
pub fn clif_type(d: DType) -> Result<Type> {
    Ok(match d {
        DType::F32 | DType::F16 | DType::BF16 => F32,
        d if d.is_coded_float() => F32,
        DType::F64 => F64,
        DType::I8 | DType::U8 | DType::Bool | DType::I4 | DType::U4 | DType::I2 | DType::U2 => I8,
        DType::I16 | DType::U16 => I16,
        DType::I32 | DType::U32 => I32,
        DType::I64 | DType::U64 => I64,
        other => bail!("the cpu backend does not compute on {} yet", other.name()),
    })
}

/// The type of `d` in memory.
fn mem_type(d: DType) -> Result<Type> {
    match d {
        DType::F16 | DType::BF16 => Ok(I16),
        d => clif_type(d),
    }
}

/// Bytes per element; packed types count in elements (their accesses track element indices).
pub(super) fn esize(d: DType) -> i64 {
    d.size_of().unwrap_or(1) as i64
}

/// The dtype an expression computes in.
pub fn expr_dtype(e: &Expr, acc: DType) -> DType {
    match e {
        Expr::Load(a) => a.dtype,
        Expr::LoadAt { dtype, .. } => *dtype,
        Expr::Index(_) => DType::I64,
        Expr::Lit(l) => l.dtype(),
        Expr::Un(UnOp::IsNaN | UnOp::IsInf { .. }, _) => DType::Bool,
        Expr::Un(_, a) => expr_dtype(a, acc),
        Expr::Bin(op, a, _) => {
            if op.is_comparison() {
                DType::Bool
            } else {
                expr_dtype(a, acc)
            }
        }
        Expr::Select(_, a, _) => expr_dtype(a, acc),
        Expr::Cast(t, _) => *t,
        Expr::Convert(c, _) => c.to,
        Expr::Math(_, a, _) => expr_dtype(a, acc),
        Expr::Acc => acc,
    }
}

/// The Cranelift signature of a runtime kernel, from its declaration in the kernel table:
/// pointers, sizes and tasks are 64-bit integers, `i32`/`u32` 32-bit ones.
pub fn kernel_signature(call_conv: CallConv, kernel: Kernel) -> Signature {
    let ty = |k: ArgKind| match k {
        ArgKind::I32 | ArgKind::U32 => I32,
        ArgKind::F32 => F32,
        ArgKind::F64 => F64,
        ArgKind::Context | ArgKind::Read | ArgKind::Write | ArgKind::ReadWrite | ArgKind::Params { .. } => I64,
        ArgKind::Usize | ArgKind::Isize | ArgKind::Task | ArgKind::TaskData => I64,
    };
    let mut sig = Signature::new(call_conv);
    sig.params.extend(kernel.args().iter().map(|a| AbiParam::new(ty(a.kind))));
    sig.returns.extend(match kernel.ret() {
        Ret::Nothing => None,
        Ret::Status | Ret::U32 => Some(AbiParam::new(I32)),
        Ret::F32 => Some(AbiParam::new(F32)),
        Ret::F64 => Some(AbiParam::new(F64)),
    });
    sig
}

impl Codegen<'_> {
    fn signature(&self, params: &[Type], ret: Option<Type>) -> Signature {
        let mut sig = Signature::new(self.isa.default_call_conv());
        sig.params.extend(params.iter().map(|t| AbiParam::new(*t)));
        sig.returns.extend(ret.map(AbiParam::new));
        sig
    }

    pub fn call_conv(&self) -> CallConv {
        self.isa.default_call_conv()
    }

    /// The entry: calls step functions `0..n_steps` (user function indices) in order and
    /// returns the first non-zero status.
    /// The entry function (user function index `n_steps`): calls the steps in order and
    /// stops at the first non-zero status. A model of more than [`ENTRY_CHUNK`] steps gets
    /// the calls in chunk functions of at most that many (user function indices
    /// `first_chunk..`, returned after the entry): one function holding every call made
    /// the register allocator's time grow faster than linearly with the step count (the
    /// context pointer lives across every call).
    pub fn entry_functions(&self, n_steps: usize, first_chunk: usize) -> Vec<Function> {
        if n_steps <= ENTRY_CHUNK {
            return vec![self.calls_function(n_steps as u32, (0..n_steps).map(|k| k as u32))];
        }
        let chunks: Vec<Function> = (0..n_steps)
            .step_by(ENTRY_CHUNK)
            .enumerate()
            .map(|(c, start)| self.calls_function((first_chunk + c) as u32, (start..(start + ENTRY_CHUNK).min(n_steps)).map(|k| k as u32)))
            .collect();
        let entry = self.calls_function(n_steps as u32, (0..chunks.len()).map(|c| (first_chunk + c) as u32));
        std::iter::once(entry).chain(chunks).collect()
    }

    /// A function `(ctx) -> status` named user function `index` that calls user functions
    /// `callees` in order with `ctx`, returning the first non-zero status (else 0).
    fn calls_function(&self, index: u32, callees: impl Iterator<Item = u32>) -> Function {
        let sig = self.signature(&[I64], Some(I32));
        let mut func = Function::with_name_signature(UserFuncName::user(0, index), sig.clone());
        let mut fctx = FunctionBuilderContext::new();
        let mut b = FunctionBuilder::new(&mut func, &mut fctx);
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        let ctx = b.block_params(entry)[0];
        let sigref = b.import_signature(sig);
        let fail = b.create_block();
        b.append_block_param(fail, I32);
        for k in callees {
            let name = b.func.declare_imported_user_function(UserExternalName::new(0, k));
            let fref = b.import_function(ExtFuncData {
                name: ExternalName::user(name),
                signature: sigref,
                colocated: true,
                patchable: false,
            });
            let call = b.ins().call(fref, &[ctx]);
            let status = b.inst_results(call)[0];
            let next = b.create_block();
            b.ins().brif(status, fail, &[status.into()], next, &[]);
            b.switch_to_block(next);
        }
        let zero = b.ins().iconst(I32, 0);
        b.ins().return_(&[zero]);
        b.switch_to_block(fail);
        let status = b.block_params(fail)[0];
        b.ins().return_(&[status]);
        b.seal_all_blocks();
        b.finalize(self.isa.frontend_config());
        func
    }

    /// One step as a function `(ctx) -> status`, user function index `index`; and, when
    /// the step's loop nest is split over the threads ([`parallel`]), its task function
    /// `(ctx, begin, end) -> status`, which must get user function index `task_index`.
    pub fn step_functions(&self, index: usize, step: &Step, task_index: usize) -> Result<(Function, Option<Function>)> {
        let (step, split) = self.plan(step);
        let Some(d) = split else {
            let f = self.build(index, &[I64], |g| g.emit(&step))?;
            return Ok((f, None));
        };
        let n = match &step {
            Step::Loop(l) => l.dims[d],
            Step::Reduce(r) => r.dims[d],
            Step::Call(_) => unreachable!("calls are never split"),
        };
        let task_sig = self.signature(&[I64, I64, I64], Some(I32));
        let main = self.build(index, &[I64], |g| {
            g.load_bases(&[]);
            let sigref = g.b.import_signature(task_sig.clone());
            let name = g.b.func.declare_imported_user_function(UserExternalName::new(0, task_index as u32));
            let fref = g.b.import_function(ExtFuncData { name: ExternalName::user(name), signature: sigref, colocated: true, patchable: false });
            let task = g.b.ins().func_addr(I64, fref);
            let f = g.kernel_fn(Kernel::ParallelFor);
            let sig = g.b.import_signature(kernel_signature(g.cg.call_conv(), Kernel::ParallelFor));
            let count = g.b.ins().iconst(I64, n as i64);
            let call = g.b.ins().call_indirect(sig, f, &[g.ctx, count, task, g.ctx]);
            let status = g.b.inst_results(call)[0];
            g.b.ins().return_(&[status]);
            Ok(())
        })?;
        let task = self.build(task_index, &[I64, I64, I64], |g| {
            let entry = g.b.current_block().expect("in the entry block");
            let (begin, end) = (g.b.block_params(entry)[1], g.b.block_params(entry)[2]);
            g.range = Some((d, begin, end));
            g.emit(&step)
        })?;
        Ok((main, Some(task)))
    }

    /// A function of user index `index` with I64 `params` returning a status, its body
    /// from `body`.
    fn build(&self, index: usize, params: &[Type], body: impl FnOnce(&mut StepGen) -> Result<()>) -> Result<Function> {
        let sig = self.signature(params, Some(I32));
        let mut func = Function::with_name_signature(UserFuncName::user(0, index as u32), sig);
        let mut fctx = FunctionBuilderContext::new();
        {
            let b = FunctionBuilder::new(&mut func, &mut fctx);
            let mut g = StepGen::new(self, b);
            body(&mut g)?;
            g.b.seal_all_blocks();
            g.b.finalize(self.isa.frontend_config());
        }
        Ok(func)
    }

    /// The step as code generation emits it (a loop collapsed, and cut into rows when
    /// that lets it split), and the dim split over the threads, if any.
    fn plan(&self, step: &Step) -> (Step, Option<usize>) {
        match step {
            Step::Loop(l) => {
                let (dims, out, value) = collapse(l);
                let mut uses_index = false;
                value.visit(&mut |e| uses_index |= matches!(e, Expr::Index(_)));
                let split = |dims: &[usize], out: &Access, value: &Expr| {
                    let mut accesses = vec![out.clone()];
                    collect_loads(value, &mut accesses);
                    let mut extra = Vec::new();
                    parallel::gathers(value, &mut extra);
                    parallel::split_dim(dims, dims.len().saturating_sub(1), &accesses, &extra, self.resolve)
                };
                if let (false, [n], Some(row)) = (uses_index, dims.as_slice(), dims.first().and_then(|&n| parallel::row_length(n))) {
                    let cut_dims = vec![n / row, row];
                    let (cut_out, cut_value) = (parallel::cut(&out, row), map_loads(&value, &|a| parallel::cut(a, row)));
                    if let Some(d) = split(&cut_dims, &cut_out, &cut_value) {
                        return (Step::Loop(Loop { dims: cut_dims, out: cut_out, value: cut_value }), Some(d));
                    }
                }
                let d = split(&dims, &out, &value);
                (Step::Loop(Loop { dims, out, value }), d)
            }
            Step::Reduce(r) => {
                let mut accesses = vec![r.out.clone()];
                accesses[0].strides.resize(r.dims.len(), 0);
                collect_loads(&r.value, &mut accesses);
                collect_loads(&r.finish, &mut accesses);
                let mut extra = Vec::new();
                parallel::gathers(&r.value, &mut extra);
                parallel::gathers(&r.finish, &mut extra);
                let d = parallel::split_dim(&r.dims, r.n_outer, &accesses, &extra, self.resolve);
                (step.clone(), d)
            }
            Step::Call(_) => (step.clone(), None),
        }
    }
}

/// Builds one step function.
struct StepGen<'a, 'b> {
    cg: &'a Codegen<'a>,
    b: FunctionBuilder<'b>,
    ctx: Value,
    bases: HashMap<Mem, Value>,
    kernels: Option<Value>,
    err: Option<Block>,
    acc_var: Option<(Variable, DType)>,
    /// In a task function: the split dim and the task's `begin..end` along it.
    range: Option<(usize, Value, Value)>,
}

/// What an expression sees at one point of the nest.
struct Env<'e> {
    /// Loop index values (i64), one per dim (only set for the dims already entered).
    idx: &'e [Value],
    /// Where each access is at this point (parallel to the access list): a byte address, or
    /// for packed types the element index.
    addrs: &'e [Value],
    accesses: &'e [Access],
    /// Loads that do not move in the innermost loop, already done (by access index).
    hoisted: &'e HashMap<usize, Value>,
    /// f32x4 lanes instead of scalars.
    vector: bool,
}

impl<'a, 'b> StepGen<'a, 'b> {
    fn new(cg: &'a Codegen<'a>, mut b: FunctionBuilder<'b>) -> Self {
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        let ctx = b.block_params(entry)[0];
        StepGen { cg, b, ctx, bases: HashMap::new(), kernels: None, err: None, acc_var: None, range: None }
    }

    /// Loads the base pointers of `mems` (call in the entry block, before any loop).
    fn load_bases(&mut self, mems: &[Mem]) {
        for &m in mems {
            if self.bases.contains_key(&m) {
                continue;
            }
            let (base, off) = (self.cg.resolve)(m);
            let p = match base {
                Base::Input(i) | Base::Output(i) => {
                    let field = if matches!(base, Base::Input(_)) {
                        abi::RUN_CONTEXT_INPUTS_OFFSET
                    } else {
                        abi::RUN_CONTEXT_OUTPUTS_OFFSET
                    };
                    let arr = self.b.ins().load(I64, ptr_flags(), self.ctx, field as i32);
                    self.b.ins().load(I64, ptr_flags(), arr, (8 * i) as i32)
                }
                Base::Weights => self.b.ins().load(I64, ptr_flags(), self.ctx, abi::RUN_CONTEXT_WEIGHTS_OFFSET as i32),
                Base::Arena => self.b.ins().load(I64, ptr_flags(), self.ctx, abi::RUN_CONTEXT_ARENA_OFFSET as i32),
            };
            let p = if off != 0 { self.b.ins().iadd_imm_s(p, off as i64) } else { p };
            self.bases.insert(m, p);
        }
        if self.kernels.is_none() {
            self.kernels = Some(self.b.ins().load(I64, ptr_flags(), self.ctx, abi::RUN_CONTEXT_KERNELS_OFFSET as i32));
        }
    }

    /// The address of kernel `k` (recording it as refused when the code may not call it).
    fn kernel_fn(&mut self, k: Kernel) -> Value {
        self.check_callable(k);
        let table = self.kernels.expect("bases loaded first");
        self.b.ins().load(I64, ptr_flags(), table, k.offset() as i32)
    }

    fn check_callable(&self, k: Kernel) {
        if !self.cg.callable.contains(&k) {
            self.cg.refused.borrow_mut().push(k);
        }
    }

    fn emit(&mut self, step: &Step) -> Result<()> {
        let (mut r, w) = step.mems();
        r.extend(w);
        self.load_bases(&r);
        match step {
            Step::Loop(l) => self.emit_loop(l)?,
            Step::Reduce(red) => self.emit_reduce(red)?,
            Step::Call(c) => self.emit_call(c)?,
        }
        let zero = self.b.ins().iconst(I32, 0);
        self.b.ins().return_(&[zero]);
        if let Some(err) = self.err {
            self.b.switch_to_block(err);
            let code = self.b.ins().iconst(I32, ERR_INDEX as i64);
            self.b.ins().return_(&[code]);
        }
        Ok(())
    }

    /// `for i in (start..end).step_by(step) { body(i) }`, leaving the builder after the loop.
    fn for_range(&mut self, start: i64, end: i64, step: i64, body: &mut dyn FnMut(&mut Self, Value) -> Result<()>) -> Result<()> {
        let (start, end) = (self.b.ins().iconst(I64, start), self.b.ins().iconst(I64, end));
        self.for_values(start, end, step, body)
    }

    /// Dim `d`'s loop: `0..n`, or the task's range when `d` is the split dim.
    fn for_dim(&mut self, d: usize, n: usize, body: &mut dyn FnMut(&mut Self, Value) -> Result<()>) -> Result<()> {
        match self.range {
            Some((split, begin, end)) if split == d => self.for_values(begin, end, 1, body),
            _ => self.for_range(0, n as i64, 1, body),
        }
    }

    /// [`Self::for_range`] with bounds computed at run time.
    fn for_values(&mut self, start: Value, end: Value, step: i64, body: &mut dyn FnMut(&mut Self, Value) -> Result<()>) -> Result<()> {
        let header = self.b.create_block();
        let body_blk = self.b.create_block();
        let exit = self.b.create_block();
        self.b.append_block_param(header, I64);
        self.b.ins().jump(header, &[start.into()]);
        self.b.switch_to_block(header);
        let i = self.b.block_params(header)[0];
        let more = self.b.ins().icmp(IntCC::SignedLessThan, i, end);
        self.b.ins().brif(more, body_blk, &[], exit, &[]);
        self.b.switch_to_block(body_blk);
        body(self, i)?;
        let next = self.b.ins().iadd_imm_s(i, step);
        self.b.ins().jump(header, &[next.into()]);
        self.b.switch_to_block(exit);
        Ok(())
    }

    /// `addr + i * stride_bytes`.
    fn advance(&mut self, addr: Value, i: Value, stride_bytes: i64) -> Value {
        match stride_bytes {
            0 => addr,
            s if s > 0 && (s as u64).is_power_of_two() => {
                let sh = self.b.ins().ishl_imm_s(i, s.trailing_zeros() as i64);
                self.b.ins().iadd(addr, sh)
            }
            s => {
                let m = self.b.ins().imul_imm_s(i, s);
                self.b.ins().iadd(addr, m)
            }
        }
    }

    fn start_addrs(&mut self, accesses: &[Access]) -> Vec<Value> {
        accesses
            .iter()
            .map(|a| {
                if a.dtype.packed_bits().is_some() {
                    return self.b.ins().iconst(I64, a.offset);
                }
                let base = self.bases[&a.mem];
                if a.offset != 0 { self.b.ins().iadd_imm_s(base, a.offset * esize(a.dtype)) } else { base }
            })
            .collect()
    }

    fn lit(&mut self, l: Lit) -> Result<Value> {
        Ok(match l {
            Lit::F32(v) => self.b.ins().f32const(v),
            Lit::F64(v) => self.b.ins().f64const(v),
            Lit::Int(v, d) if clif_type(d)? == F32 => self.b.ins().f32const(v as f32),
            Lit::Int(v, d) => self.b.ins().iconst(clif_type(d)?, v),
        })
    }

    /// The runtime's codecs for elements of `d` (which call them only for coded floats), or
    /// their inline forms where the code may not call them.
    fn runtime(&self, _d: DType) -> lowbit::Runtime {
        let inline = !self.cg.callable.contains(&Kernel::LowDecode) || !self.cg.callable.contains(&Kernel::LowEncode);
        lowbit::Runtime { table: self.kernels.expect("bases loaded first"), call_conv: self.cg.call_conv(), inline }
    }

    /// Loads element `loc` (byte address, or element index for packed types) of `mem`.
    fn load_elem(&mut self, mem: Mem, d: DType, loc: Value) -> Result<Value> {
        if d.is_coded_float() || d.packed_bits().is_some() {
            let base = self.bases[&mem];
            return Ok(self.runtime(d).load(&mut self.b, d, base, loc));
        }
        self.load_value(d, loc)
    }

    /// Stores `v` as the element of `out` at `loc`.
    fn store_elem(&mut self, out: &Access, v: Value, loc: Value) {
        if out.dtype.is_coded_float() || out.dtype.packed_bits().is_some() {
            let base = self.bases[&out.mem];
            self.runtime(out.dtype).store(&mut self.b, out.dtype, v, base, loc);
        } else {
            self.store_value(out.dtype, v, loc);
        }
    }

    /// Loads an element of dtype `d` as its compute type (f16/bf16 widen to f32, exactly).
    fn load_value(&mut self, d: DType, addr: Value) -> Result<Value> {
        let v = self.b.ins().load(mem_type(d)?, data_flags(), addr, 0);
        Ok(match d {
            DType::F16 => vmath::f16_to_f32(&mut self.b, v),
            DType::BF16 => vmath::bf16_to_f32(&mut self.b, v),
            _ => v,
        })
    }

    /// Stores compute-type value `v` as dtype `d` (f32 rounds to nearest even f16/bf16).
    fn store_value(&mut self, d: DType, v: Value, addr: Value) {
        let v = match d {
            DType::F16 => vmath::f32_to_f16(&mut self.b, v),
            DType::BF16 => vmath::f32_to_bf16(&mut self.b, v),
            _ => v,
        };
        self.b.ins().store(data_flags(), v, addr, 0);
    }

    fn error_block(&mut self) -> Block {
        if let Some(e) = self.err {
            return e;
        }
        let e = self.b.create_block();
        self.err = Some(e);
        e
    }

    fn expr(&mut self, e: &Expr, env: &Env) -> Result<Value> {
        let acc_ty = self.acc_var.map(|(_, t)| t).unwrap_or(DType::F32);
        Ok(match e {
            Expr::Load(a) => {
                let k = env.accesses.iter().position(|x| x == a).expect("collected");
                if let Some(v) = env.hoisted.get(&k) {
                    *v
                } else {
                    if env.vector {
                        self.b.ins().load(F32X4, data_flags(), env.addrs[k], 0)
                    } else {
                        self.load_elem(a.mem, a.dtype, env.addrs[k])?
                    }
                }
            }
            Expr::LoadAt { mem, dtype, len, index } => {
                let i = self.expr(index, env)?;
                let bad = self.b.ins().icmp_imm_s(IntCC::UnsignedGreaterThanOrEqual, i, *len);
                let err = self.error_block();
                let ok = self.b.create_block();
                self.b.ins().brif(bad, err, &[], ok, &[]);
                self.b.switch_to_block(ok);
                let loc = if dtype.packed_bits().is_some() {
                    i
                } else {
                    let base = self.bases[mem];
                    self.advance(base, i, esize(*dtype))
                };
                self.load_elem(*mem, *dtype, loc)?
            }
            Expr::Index(d) => env.idx[*d],
            Expr::Lit(Lit::F32(v)) if env.vector => vmath::f32_const(&mut self.b, *v, true),
            Expr::Lit(l) => {
                let v = self.lit(*l)?;
                if env.vector { self.b.ins().splat(F32X4, v) } else { v }
            }
            Expr::Acc => {
                let (var, _) = self.acc_var.expect("Acc only in a reduction");
                self.b.use_var(var)
            }
            Expr::Un(op, a) => {
                let t = expr_dtype(a, acc_ty);
                let x = self.expr(a, env)?;
                self.unary(*op, x, t)?
            }
            Expr::Bin(op @ (BinOp::Max | BinOp::Min), a, b) if expr_dtype(a, acc_ty) == DType::F32 && self.cg.isa.name() == "x64" => {
                // NaN-propagating max/min as a compare and a select (Cranelift's fmax/fmin
                // are slow on x86 vectors, FACTS.md; aarch64's fmax is one NaN-propagating
                // instruction and stays). With a non-NaN literal operand, one compare
                // suffices.
                let (a, b) = if is_non_nan_lit(a) { (b, a) } else { (a, b) };
                let x = self.expr(a, env)?;
                let y = self.expr(b, env)?;
                // Take y when it is strictly better than x, or when y is NaN.
                let better = if *op == BinOp::Max { vmath::less(&mut self.b, x, y) } else { vmath::less(&mut self.b, y, x) };
                let take_y = if is_non_nan_lit(b) {
                    better
                } else {
                    let y_nan = self.b.ins().fcmp(FloatCC::Unordered, y, y);
                    self.b.ins().bor(better, y_nan)
                };
                vmath::select(&mut self.b, take_y, y, x, env.vector)
            }
            Expr::Bin(op, a, b) => {
                let t = expr_dtype(a, acc_ty);
                let x = self.expr(a, env)?;
                let y = self.expr(b, env)?;
                self.binary(*op, x, y, t)?
            }
            Expr::Select(c, a, b) => {
                let c = self.expr(c, env)?;
                let x = self.expr(a, env)?;
                let y = self.expr(b, env)?;
                vmath::select(&mut self.b, c, x, y, env.vector)
            }
            Expr::Cast(to, a) => {
                let from = expr_dtype(a, acc_ty);
                let x = self.expr(a, env)?;
                self.cast(x, from, *to)?
            }
            Expr::Convert(c, a) => {
                let from = expr_dtype(a, acc_ty);
                let x = self.expr(a, env)?;
                self.convert(x, from, *c)?
            }
            Expr::Math(op, a, b) => {
                let t = expr_dtype(a, acc_ty);
                let x = self.expr(a, env)?;
                let y = match b {
                    Some(b) => Some(self.expr(b, env)?),
                    None => None,
                };
                if matches!(t, DType::F32 | DType::F16 | DType::BF16) && y.is_none() && vmath::inline(*op) {
                    let fma = self.cg.isa.has_native_fma();
                    vmath::emit(&mut self.b, *op, x, env.vector, fma)
                } else {
                    self.math(*op, x, y, t)?
                }
            }
        })
    }

    fn math(&mut self, op: abi::MathOp, x: Value, y: Option<Value>, t: DType) -> Result<Value> {
        let (ty, kernel) = match t {
            DType::F32 | DType::F16 | DType::BF16 => (F32, Kernel::MathF32),
            DType::F64 => (F64, Kernel::MathF64),
            other => bail!("math function {op:?} on {} is not supported by the cpu backend", other.name()),
        };
        let f = self.kernel_fn(kernel);
        let sig = kernel_signature(self.cg.call_conv(), kernel);
        let sigref = self.b.import_signature(sig);
        let code = self.b.ins().iconst(I32, op as i64);
        let y = match y {
            Some(y) => y,
            None => {
                if ty == F32 {
                    self.b.ins().f32const(0.0)
                } else {
                    self.b.ins().f64const(0.0)
                }
            }
        };
        let call = self.b.ins().call_indirect(sigref, f, &[code, x, y]);
        Ok(self.b.inst_results(call)[0])
    }
}

/// Every distinct load access of `e`, appended to `out` (which starts with the store).
fn collect_loads(e: &Expr, out: &mut Vec<Access>) {
    e.visit(&mut |x| {
        if let Expr::Load(a) = x
            && !out.iter().skip(1).any(|o| o == a)
        {
            out.push(a.clone());
        }
    });
}

#[cfg(test)]
thread_local! {
    /// Tests: compile every loop on this thread on the scalar path (to check the scalar
    /// forms of what is normally vectorised).
    pub static SCALAR_ONLY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

#[cfg(test)]
fn scalar_only() -> bool {
    SCALAR_ONLY.with(|s| s.get())
}

#[cfg(not(test))]
fn scalar_only() -> bool {
    false
}

fn is_non_nan_lit(e: &Expr) -> bool {
    matches!(e, Expr::Lit(Lit::F32(v)) if !v.is_nan())
}
