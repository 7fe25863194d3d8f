//! The kernel IR verifier: checks a lowering against what the code generator assumes and
//! collects every error (with its step and node) instead of stopping at the first. The CPU
//! backend runs it after every lowering; a failure is an internal compiler error.
//!
//! What it checks, step by step:
//! - **Buffers**: every [`Mem`] exists; nothing writes an input or a weights blob; every
//!   temporary and output is written by an earlier step (or the same one) before a step
//!   reads it (an output buffer holds the caller's bytes until then).
//! - **Accesses**: one stride per loop dim the access is evaluated in (a [`Reduce`]'s `out`
//!   has one per outer dim, its `value` and `finish` loads one per dim); every element an
//!   access reaches over the whole iteration space lies inside its buffer (inputs and
//!   outputs by their types, temporaries by `temps`, weights by their blob); a `LoadAt`'s
//!   `len` fits its buffer. Packed 4- and 2-bit types count in elements, as codegen
//!   addresses them.
//! - **Expressions**: loop indices in range (a `finish` sees the outer dims only), the
//!   accumulator only in a `finish`, and types as the code generator needs them: the
//!   operands of a binary op, a select's arms and a stored value compute in the same machine
//!   type (f16 and bf16 compute in f32, u8 in i8 and so on), float math on floats, bitwise
//!   ops and remainders on integers, conditions bool, `LoadAt` indices 64-bit.
//! - **Calls**: the arguments match the kernel table's declaration (count; a buffer or null
//!   for pointers, an integer in range or a float of the right width for scalars; parameter
//!   blocks in the weights, at least their struct's size), batch strides no more than batch
//!   dims, no kernel that takes a task, and the bytes a call reaches inside each buffer:
//!   for `memcpy`, `memset`, `sgemm`, the GEMM epilogue kernels, `conv` and `pool` the whole
//!   extent their sizes and strides (scalars or parameter block) give (packed conv weights
//!   excepted), for the others the argument's address at every batch point.

use std::fmt;

use std::mem::{offset_of, size_of};

use neoc_runtime::abi::{ArgKind, ConvParams, GemmParams, Kernel, MAX_SPATIAL, PoolParams};

use super::print::{access_text, mem_name};
use super::{Access, BinOp, Call, CallArg, Expr, Lit, Mem, Step, UnOp};
use crate::lower::Lowered;
use crate::tensor::DType;

/// One problem, at one step (`None`: the lowering as a whole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyError {
    pub step: Option<usize>,
    pub node: String,
    pub message: String,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.step {
            Some(i) => write!(f, "step {i} (node '{}'): {}", self.node, self.message),
            None => write!(f, "{}", self.message),
        }
    }
}

/// Every problem of one lowering.
#[derive(Debug, Clone)]
pub struct VerifyErrors(pub Vec<VerifyError>);

impl fmt::Display for VerifyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "the kernel IR is invalid ({} errors):", self.0.len())?;
        for e in &self.0 {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for VerifyErrors {}

/// Checks `l` (see the module documentation) and returns every problem found.
pub fn verify(l: &Lowered) -> Result<(), VerifyErrors> {
    let mut errs = vec![];
    if l.step_nodes.len() != l.steps.len() {
        errs.push(VerifyError { step: None, node: String::new(), message: format!("{} steps but {} step nodes", l.steps.len(), l.step_nodes.len()) });
    }
    // Temporaries and outputs written so far (their contents before are undefined).
    let mut written = std::collections::BTreeSet::new();
    for (i, step) in l.steps.iter().enumerate() {
        let mut cx = Cx { l, step: i, node: l.step_nodes.get(i).cloned().unwrap_or_default(), errs: &mut errs };
        match step {
            Step::Loop(lp) => cx.loop_step(&lp.dims, &lp.out, &lp.value),
            Step::Reduce(r) => cx.reduce(r),
            Step::Call(c) => cx.call(c),
        }
        // Written before they are read (or by the same step).
        let (reads, writes) = step.mems();
        for m in writes {
            match m {
                Mem::Input(_) | Mem::Weight(_) => cx.err(format!("writes {}, which is read-only", mem_name(m))),
                m => {
                    written.insert(m);
                }
            }
        }
        let mut seen = vec![];
        for m in reads {
            // (A buffer that does not exist is reported as such.)
            let exists = match m {
                Mem::Temp(t) => (t as usize) < l.temps.len(),
                Mem::Output(o) => (o as usize) < l.outputs.len(),
                _ => false,
            };
            if exists && !written.contains(&m) && !seen.contains(&m) {
                seen.push(m);
                cx.err(format!("reads {} before any step writes it", mem_name(m)));
            }
        }
    }
    if errs.is_empty() { Ok(()) } else { Err(VerifyErrors(errs)) }
}

/// The machine type a dtype computes in (codegen's `clif_type`): `None` for the types the
/// code generator cannot compute on (strings, complex numbers).
fn machine(d: DType) -> Option<&'static str> {
    use DType::*;
    Some(match d {
        F32 | F16 | BF16 | F8E4M3FN | F8E4M3FNUZ | F8E5M2 | F8E5M2FNUZ | F8E8M0 | F4E2M1 => "f32",
        F64 => "f64",
        I8 | U8 | Bool | I4 | U4 | I2 | U2 => "i8",
        I16 | U16 => "i16",
        I32 | U32 => "i32",
        I64 | U64 => "i64",
        String | Complex64 | Complex128 => return None,
    })
}

fn is_float_machine(d: DType) -> bool {
    matches!(machine(d), Some("f32" | "f64"))
}

/// Where the loads of an expression are evaluated: strides cover `dims`, of which the first
/// `live` move (the others stay at index 0), and nothing runs when `runs` is false.
#[derive(Clone, Copy)]
struct Space<'a> {
    dims: &'a [usize],
    live: usize,
    runs: bool,
    /// The accumulator's type, in a reduction's `finish`.
    acc: Option<DType>,
}

struct Cx<'a> {
    l: &'a Lowered,
    step: usize,
    node: String,
    errs: &'a mut Vec<VerifyError>,
}

impl Cx<'_> {
    fn err(&mut self, message: String) {
        self.errs.push(VerifyError { step: Some(self.step), node: self.node.clone(), message });
    }

    /// Bytes of `m`, or an error when it does not exist.
    fn size(&mut self, m: Mem) -> Option<u64> {
        let l = self.l;
        let (len, what, n) = match m {
            Mem::Input(i) => (l.inputs.get(i as usize).map(|(_, t)| crate::lower::buf_bytes(t)), "inputs", l.inputs.len()),
            Mem::Output(i) => (l.outputs.get(i as usize).map(|(_, t)| crate::lower::buf_bytes(t)), "outputs", l.outputs.len()),
            Mem::Temp(i) => (l.temps.get(i as usize).copied(), "temporaries", l.temps.len()),
            Mem::Weight(i) => (l.blobs.get(i as usize).map(|b| b.len() as u64), "weights blobs", l.blobs.len()),
        };
        if len.is_none() {
            self.err(format!("{} does not exist ({n} {what})", mem_name(m)));
        }
        len
    }

    fn loop_step(&mut self, dims: &[usize], out: &Access, value: &Expr) {
        let space = Space { dims, live: dims.len(), runs: !dims.contains(&0), acc: None };
        self.access(out, space, "the store");
        let t = self.expr(value, space, dims.len());
        self.stored(t, out);
    }

    fn stored(&mut self, t: Option<DType>, out: &Access) {
        if let (Some(t), Some(o)) = (t, machine(out.dtype))
            && machine(t) != Some(o)
        {
            self.err(format!("stores a {t} value into {} (computes in {o})", access_text(out)));
        }
    }

    fn reduce(&mut self, r: &super::Reduce) {
        if r.n_outer > r.dims.len() {
            self.err(format!("{} outer dims of {} dims", r.n_outer, r.dims.len()));
            return;
        }
        let outer = &r.dims[..r.n_outer];
        let runs = !outer.contains(&0);
        let all = Space { dims: &r.dims, live: r.dims.len(), runs: runs && !r.dims.contains(&0), acc: None };
        if r.out.strides.len() != r.n_outer {
            self.err(format!("the output {} has {} strides for {} outer dims", access_text(&r.out), r.out.strides.len(), r.n_outer));
        } else {
            self.access(&r.out, Space { dims: outer, live: r.n_outer, runs, acc: None }, "the store");
        }
        let Some(acc) = machine(r.acc) else {
            self.err(format!("an accumulator of type {}", r.acc));
            return;
        };
        if machine(r.init.dtype()) != Some(acc) {
            self.err(format!("initial value {} for an accumulator of type {}", super::print::lit_text(r.init), r.acc));
        }
        if let Some(v) = self.expr(&r.value, all, r.dims.len()) {
            if machine(v) != Some(acc) {
                self.err(format!("a {v} value combined into an accumulator of type {}", r.acc));
            }
            if let Some(res) = self.bin_type(r.combine, r.acc)
                && machine(res) != Some(acc)
            {
                self.err(format!("combine {:?} gives {res}, not the accumulator's type {}", r.combine, r.acc));
            }
        }
        let finish = Space { dims: &r.dims, live: r.n_outer, runs, acc: Some(r.acc) };
        let t = self.expr(&r.finish, finish, r.n_outer);
        self.stored(t, &r.out);
    }

    /// Strides and bounds of one access evaluated in `space`.
    fn access(&mut self, a: &Access, space: Space, what: &str) {
        let Some(size) = self.size(a.mem) else { return };
        if a.strides.len() != space.dims.len() {
            self.err(format!("{what} {} has {} strides in a nest of {} dims", access_text(a), a.strides.len(), space.dims.len()));
            return;
        }
        if machine(a.dtype).is_none() {
            self.err(format!("{what} {} is of type {}, which compiled code does not compute on", access_text(a), a.dtype));
        }
        if !space.runs {
            return;
        }
        let (mut lo, mut hi) = (a.offset as i128, a.offset as i128);
        for (s, &n) in a.strides.iter().zip(space.dims).take(space.live) {
            let span = *s as i128 * (n as i128 - 1);
            if span < 0 { lo += span } else { hi += span }
        }
        let bits = a.dtype.bits() as i128;
        let need = ((hi + 1) * bits + 7) / 8;
        if lo < 0 || need > size as i128 {
            self.err(format!(
                "{what} {} reaches elements {lo}..={hi}, outside {} ({size} bytes: {} {} elements)",
                access_text(a),
                mem_name(a.mem),
                size as i128 * 8 / bits,
                a.dtype
            ));
        }
    }

    /// The type `e` computes in (`None` after an error in it); `n_index` loop indices are
    /// visible.
    fn expr(&mut self, e: &Expr, space: Space, n_index: usize) -> Option<DType> {
        let sub = |cx: &mut Self, x: &Expr| cx.expr(x, space, n_index);
        match e {
            Expr::Load(a) => {
                self.access(a, space, "load");
                machine(a.dtype).map(|_| a.dtype)
            }
            Expr::LoadAt { mem, dtype, len, index } => {
                if let Some(size) = self.size(*mem) {
                    let need = dtype.byte_len((*len).max(0) as usize).unwrap_or(usize::MAX) as u64;
                    if *len < 0 || need > size {
                        self.err(format!("load_at of {len} {dtype} elements from {} ({size} bytes)", mem_name(*mem)));
                    }
                }
                if let Some(t) = sub(self, index)
                    && machine(t) != Some("i64")
                {
                    self.err(format!("load_at index of type {t} (must be i64 or u64)"));
                }
                if machine(*dtype).is_none() {
                    self.err(format!("load_at of type {dtype}, which compiled code does not compute on"));
                    return None;
                }
                Some(*dtype)
            }
            Expr::Index(d) => {
                if *d >= n_index {
                    self.err(format!("loop index i{d} where only {n_index} are defined"));
                }
                Some(DType::I64)
            }
            Expr::Lit(l) => {
                let d = l.dtype();
                if machine(d).is_none() || matches!(l, Lit::Int(_, DType::F64)) {
                    self.err(format!("a literal of type {d}"));
                    return None;
                }
                Some(d)
            }
            Expr::Acc => {
                if space.acc.is_none() {
                    self.err("acc outside a reduction's finish".into());
                }
                space.acc
            }
            Expr::Un(op, a) => {
                let t = sub(self, a)?;
                let float = is_float_machine(t);
                match op {
                    UnOp::Sqrt if !float => self.err(format!("sqrt of {t}")),
                    UnOp::Not if float => self.err(format!("not of {t}")),
                    UnOp::IsNaN | UnOp::IsInf { .. } if !float => self.err(format!("{} of {t}", super::print::un_name(*op))),
                    UnOp::IsNaN | UnOp::IsInf { .. } => return Some(DType::Bool),
                    _ => {}
                }
                Some(t)
            }
            Expr::Bin(op, a, b) => {
                let (ta, tb) = (sub(self, a), sub(self, b));
                let (ta, tb) = (ta?, tb?);
                if machine(ta) != machine(tb) {
                    self.err(format!("{} of {ta} and {tb}", super::print::bin_name(*op)));
                    return None;
                }
                self.bin_type(*op, ta)
            }
            Expr::Select(c, a, b) => {
                let (tc, ta, tb) = (sub(self, c), sub(self, a), sub(self, b));
                if let Some(tc) = tc
                    && tc != DType::Bool
                {
                    self.err(format!("select on a {tc} condition (must be bool)"));
                }
                let (ta, tb) = (ta?, tb?);
                if machine(ta) != machine(tb) {
                    self.err(format!("select between {ta} and {tb}"));
                    return None;
                }
                Some(ta)
            }
            Expr::Cast(to, a) | Expr::Convert(super::Conversion { to, .. }, a) => {
                sub(self, a)?;
                if machine(*to).is_none() {
                    self.err(format!("a conversion to {to}"));
                    return None;
                }
                Some(*to)
            }
            Expr::Math(op, a, b) => {
                let ta = sub(self, a);
                let tb = b.as_ref().and_then(|b| sub(self, b));
                let ta = ta?;
                if !matches!(ta, DType::F32 | DType::F16 | DType::BF16 | DType::F64) {
                    self.err(format!("{} of {ta} (math runs on f32, f16, bf16 and f64)", super::print::math_name(*op)));
                    return None;
                }
                if let Some(tb) = tb
                    && machine(tb) != machine(ta)
                {
                    self.err(format!("{} of {ta} and {tb}", super::print::math_name(*op)));
                }
                Some(ta)
            }
        }
    }

    /// The result type of `op` on operands computing like `t` (codegen takes the left one's).
    fn bin_type(&mut self, op: BinOp, t: DType) -> Option<DType> {
        let float = is_float_machine(t);
        if float && matches!(op, BinOp::And | BinOp::Or | BinOp::Xor | BinOp::Shl | BinOp::Shr | BinOp::FloorMod | BinOp::TruncMod) {
            self.err(format!("{} of {t} (an integer op)", super::print::bin_name(op)));
            return None;
        }
        Some(if op.is_comparison() { DType::Bool } else { t })
    }

    fn call(&mut self, c: &Call) {
        let name = c.kernel.name();
        if c.kernel.args().iter().any(|a| matches!(a.kind, ArgKind::Task | ArgKind::TaskData)) {
            self.err(format!("calls {name}, which takes a task (only parallel steps call it, never a step)"));
            return;
        }
        let declared: Vec<_> = c.kernel.args().iter().filter(|a| a.kind != ArgKind::Context).collect();
        if declared.len() != c.args.len() {
            self.err(format!("calls {name} with {} arguments ({} declared)", c.args.len(), declared.len()));
            return;
        }
        let runs = !c.batch.contains(&0);
        for (i, (decl, arg)) in declared.iter().zip(&c.args).enumerate() {
            let what = format!("argument {i} ({}) of {name}", decl.name);
            match (decl.kind, arg) {
                (k, CallArg::Buf { mem, offset, batch_strides }) if k.is_buffer() => {
                    if batch_strides.len() > c.batch.len() {
                        self.err(format!("{what} has {} batch strides for {} batch dims", batch_strides.len(), c.batch.len()));
                        continue;
                    }
                    let Some(size) = self.size(*mem) else { continue };
                    if let ArgKind::Params { bytes } = k {
                        if !matches!(mem, Mem::Weight(_)) {
                            self.err(format!("{what} is a parameter block in {}, not in the weights", mem_name(*mem)));
                        } else if bytes > 0 && (*offset < 0 || *offset as u64 + bytes as u64 > size) {
                            self.err(format!("{what}: a {bytes}-byte parameter block at byte {offset} of {} ({size} bytes)", mem_name(*mem)));
                        }
                        continue;
                    }
                    if !runs {
                        continue;
                    }
                    // The argument's address range over the batch, then what the kernel reaches from it.
                    let (mut lo, mut hi) = (*offset as i128, *offset as i128);
                    for (s, &n) in batch_strides.iter().zip(&c.batch) {
                        let span = *s as i128 * (n as i128 - 1);
                        if span < 0 { lo += span } else { hi += span }
                    }
                    let (reach_lo, reach_hi) = self.extent(c, i).unwrap_or((0, 0));
                    if reach_hi > reach_lo {
                        (lo, hi) = (lo + reach_lo, hi + reach_hi);
                    }
                    if lo < 0 || hi > size as i128 {
                        self.err(format!("{what} reaches bytes {lo}..{hi} of {} ({size} bytes)", mem_name(*mem)));
                    }
                }
                (k, CallArg::Null) if k.is_buffer() => {}
                (ArgKind::Usize, CallArg::Int(v)) if *v < 0 => self.err(format!("{what} is {v}, a usize")),
                (ArgKind::I32, CallArg::Int(v)) if i32::try_from(*v).is_err() => self.err(format!("{what} is {v}, an i32")),
                (ArgKind::U32, CallArg::Int(v)) if u32::try_from(*v).is_err() => self.err(format!("{what} is {v}, a u32")),
                (ArgKind::Usize | ArgKind::Isize | ArgKind::I32 | ArgKind::U32, CallArg::Int(_)) => {}
                (ArgKind::F32, CallArg::F32(_)) | (ArgKind::F64, CallArg::F64(_)) => {}
                (k, a) => self.err(format!("{what} is declared {k:?} but given {}", super::print::call_arg_text(a))),
            }
        }
    }

    /// The bytes the kernel reaches from buffer argument `i`'s address, `lo..hi` (empty when
    /// it reaches nothing), where the call's scalars or parameter block say; `None` where the
    /// verifier does not know the kernel's extents.
    fn extent(&mut self, c: &Call, i: usize) -> Option<(i128, i128)> {
        let int = |j: usize| match c.args.get(j) {
            Some(CallArg::Int(v)) => Some(*v as i128),
            _ => None,
        };
        // A rows×cols matrix of `elem`-byte elements with these strides (in elements).
        let matrix = |rows: i128, cols: i128, rs: i128, cs: i128, elem: i128| -> (i128, i128) {
            if rows <= 0 || cols <= 0 {
                return (0, 0);
            }
            let (mut lo, mut hi) = (0i128, 0i128);
            for span in [rs * (rows - 1), cs * (cols - 1)] {
                if span < 0 { lo += span } else { hi += span }
            }
            (lo * elem, (hi + 1) * elem)
        };
        match c.kernel {
            Kernel::Memcpy | Kernel::Memset => Some((0, int(2)?.max(0))),
            Kernel::Sgemm => {
                let (m, n, k) = (int(0)?, int(1)?, int(2)?);
                if m <= 0 || n <= 0 {
                    return Some((0, 0));
                }
                match i {
                    4 => Some(matrix(m, k, int(5)?, int(6)?, 4)),
                    7 => Some(matrix(k, n, int(8)?, int(9)?, 4)),
                    11 => Some(matrix(m, n, int(12)?, int(13)?, 4)),
                    _ => None,
                }
            }
            Kernel::SgemmEpilogue | Kernel::SgemmPackedB => {
                let p = self.params_block(c, size_of::<GemmParams>())?;
                let f = |off: usize| i64_at(p, off) as i128;
                let (m, n, k) = (f(offset_of!(GemmParams, m)), f(offset_of!(GemmParams, n)), f(offset_of!(GemmParams, k)));
                if m <= 0 || n <= 0 {
                    return Some((0, 0));
                }
                let pair = |rs: usize, cs: usize| (f(rs), f(cs));
                let ((rsa, csa), (rsb, csb)) = (pair(offset_of!(GemmParams, rsa), offset_of!(GemmParams, csa)), pair(offset_of!(GemmParams, rsb), offset_of!(GemmParams, csb)));
                let (rsc, csc) = pair(offset_of!(GemmParams, rsc), offset_of!(GemmParams, csc));
                let (rs_bias, cs_bias) = pair(offset_of!(GemmParams, rs_bias), offset_of!(GemmParams, cs_bias));
                let (rs_res, cs_res) = pair(offset_of!(GemmParams, rs_residual), offset_of!(GemmParams, cs_residual));
                match i {
                    1 => Some(matrix(m, k, rsa, csa, 4)),
                    2 if c.kernel == Kernel::SgemmPackedB => {
                        let len = neoc_runtime::kernels::packed_gemm_b_len(k.max(0) as usize, n as usize);
                        Some((0, 4 * len as i128))
                    }
                    2 => Some(matrix(k, n, rsb, csb, 4)),
                    3 => Some(matrix(m, n, rs_bias, cs_bias, 4)),
                    4 => Some(matrix(m, n, rs_res, cs_res, 4)),
                    5 => Some(matrix(m, n, rsc, csc, 4)),
                    _ => None,
                }
            }
            Kernel::Conv => {
                let p = self.params_block(c, size_of::<ConvParams>())?;
                let spatial = u32_at(p, offset_of!(ConvParams, spatial)) as usize;
                let f = |off: usize| i64_at(p, off) as i128;
                let prod = |off: usize| (0..spatial.min(MAX_SPATIAL)).map(|d| f(off + 8 * d)).product::<i128>();
                let (batch, c_in, c_out) = (f(offset_of!(ConvParams, batch)), f(offset_of!(ConvParams, c_in)), f(offset_of!(ConvParams, c_out)));
                let group = (u32_at(p, offset_of!(ConvParams, group)) as i128).max(1);
                let (x, y) = (batch * c_in * prod(offset_of!(ConvParams, in_size)), batch * c_out * prod(offset_of!(ConvParams, out_size)));
                match i {
                    1 => Some((0, 4 * x)),
                    // Packed layouts (1, 2) have lengths of their own.
                    2 if u32_at(p, offset_of!(ConvParams, weight_layout)) == 0 => Some((0, 4 * c_out * (c_in / group) * prod(offset_of!(ConvParams, kernel)))),
                    3 => Some((0, 4 * c_out)),
                    4 | 5 => Some((0, 4 * y)),
                    6 => Some((0, f(offset_of!(ConvParams, scratch_bytes)))),
                    _ => None,
                }
            }
            Kernel::Pool => {
                let p = self.params_block(c, size_of::<PoolParams>())?;
                let spatial = u32_at(p, offset_of!(PoolParams, spatial)) as usize;
                let f = |off: usize| i64_at(p, off) as i128;
                let prod = |off: usize| (0..spatial.min(MAX_SPATIAL)).map(|d| f(off + 8 * d)).product::<i128>();
                let channels = f(offset_of!(PoolParams, channels));
                let (x, y) = (channels * prod(offset_of!(PoolParams, in_size)), channels * prod(offset_of!(PoolParams, out_size)));
                match i {
                    1 => Some((0, 4 * x)),
                    2 => Some((0, 4 * y)),
                    3 => Some((0, 8 * y)),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// The parameter block a call's first argument points at (`len` bytes of a weights
    /// blob), when it is there whole.
    fn params_block(&self, c: &Call, len: usize) -> Option<&[u8]> {
        let CallArg::Buf { mem: Mem::Weight(w), offset, .. } = c.args.first()? else { return None };
        let at = usize::try_from(*offset).ok()?;
        self.l.blobs.get(*w as usize)?.get(at..at.checked_add(len)?)
    }
}

/// The little-endian i64 (or u64, as two's complement) at byte `off` of `b`.
fn i64_at(b: &[u8], off: usize) -> i64 {
    i64::from_le_bytes(b[off..off + 8].try_into().expect("8 bytes"))
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
