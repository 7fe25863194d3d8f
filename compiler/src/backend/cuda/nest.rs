//! Loop nests and reductions as kernels.
//!
//! - A [`Loop`] is one thread per point of its iteration space (blocks of
//!   [`LOOP_BLOCK`]): the flat thread index, decomposed row-major into the loop indices
//!   (32-bit arithmetic by constants when the space has fewer than 2^31 points), computes
//!   and stores its point. Each point is written by one thread that reads only what the
//!   CPU loop would read there, so in-place steps (the memory plan's) stay correct.
//! - A [`Reduce`] gives each outer point a group of `T` threads (a power of two from 32 to
//!   256, the inner point count rounded up, so short rows do not waste a 256-thread
//!   block): each thread combines the inner points `lane, lane + T, ...` from the
//!   combine's identity, the group combines its partials with `shfl.sync.bfly` (and
//!   through shared memory across warps when `T > 32`), and lane 0 combines the result
//!   into `init` and stores `finish`. Sums therefore add in a tree order, not the CPU's
//!   sequential one (within the usual f32 summation bound); max, min and the logical and
//!   integer combines are exact. Every thread takes part in the shuffles.
//!
//! Kernel parameters: one pointer per buffer the step touches (in [`Mem`] order), then
//! the status word. Shapes, strides and offsets are constants in the code, so kernels of
//! equal steps are equal text (and are deduplicated by name).

use std::collections::{BTreeSet, HashMap};

use anyhow::{Result, bail};

use super::expr::{Gen, cls};
use super::ptx::{Cls, Kernel};
use crate::kernel_ir::{BinOp, Expr, Lit, Loop, Mem, Reduce};
use crate::tensor::DType;

pub const LOOP_BLOCK: u32 = 256;
pub const REDUCE_BLOCK: u32 = 256;

/// A kernel and how to launch it: its text (named `__NAME__` until the module names it),
/// the buffers its pointer parameters are (the status word follows them), grid and block.
pub struct Built {
    pub text: String,
    pub mems: Vec<Mem>,
    pub grid: [u32; 3],
    pub block: [u32; 3],
}

/// The name placeholder of a kernel's text.
pub const NAME: &str = "__NAME__";

/// Buffers `exprs` read plus `out`, in order.
pub fn step_mems(exprs: &[&Expr], out: Mem) -> Vec<Mem> {
    let mut set = BTreeSet::new();
    set.insert(out);
    for e in exprs {
        let mut v = vec![];
        e.reads(&mut v);
        set.extend(v);
    }
    set.into_iter().collect()
}

/// Loads the pointer parameters: (base per buffer, status).
pub fn bases(k: &mut Kernel, mems: &[Mem]) -> (HashMap<Mem, String>, String) {
    let mut bases = HashMap::new();
    for (i, m) in mems.iter().enumerate() {
        let r = k.param_ptr(i);
        bases.insert(*m, r);
    }
    let status = k.param_ptr(mems.len());
    (bases, status)
}

/// Row-major decomposition of flat index register `flat` (of PTX type `ty`, u32 or u64)
/// over `dims`: one i64 register per dim.
pub fn decompose(k: &mut Kernel, flat: &str, ty: &str, dims: &[usize]) -> Vec<String> {
    let cls = if ty == "u32" { Cls::B32 } else { Cls::B64 };
    let mut rest = flat.to_string();
    let mut out = vec![String::new(); dims.len()];
    for d in (0..dims.len()).rev() {
        let i = k.reg(Cls::B64);
        if dims[d] == 1 {
            k.op(format!("mov.u64 {i}, 0"));
        } else if d == 0 {
            if ty == "u32" {
                k.op(format!("cvt.u64.u32 {i}, {rest}"));
            } else {
                k.op(format!("mov.u64 {i}, {rest}"));
            }
        } else {
            let (r, q) = (k.reg(cls), k.reg(cls));
            k.op(format!("rem.{ty} {r}, {rest}, {}", dims[d]));
            k.op(format!("div.{ty} {q}, {rest}, {}", dims[d]));
            if ty == "u32" {
                k.op(format!("cvt.u64.u32 {i}, {r}"));
            } else {
                k.op(format!("mov.u64 {i}, {r}"));
            }
            rest = q;
        }
        out[d] = i;
    }
    out
}

/// A loop nest: one thread per point.
pub fn loop_kernel(l: &Loop) -> Result<Built> {
    let total: u64 = l.dims.iter().map(|&d| d as u64).product();
    let mems = step_mems(&[&l.value], l.out.mem);
    let mut k = Kernel::new(mems.len() + 1);
    let (bases, status) = bases(&mut k, &mems);
    let small = total < (1 << 31);
    let (flat, ty) = if small { (k.global_thread_u32(), "u32") } else { (k.global_thread_u64(), "u64") };
    let done = k.label();
    let p = k.reg(Cls::Pred);
    k.op(format!("setp.ge.{ty} {p}, {flat}, {total}"));
    k.op(format!("@{p} bra {done}"));
    let idx = decompose(&mut k, &flat, ty, &l.dims);
    let mut g = Gen { k: &mut k, bases: &bases, status, idx, acc: None };
    let v = g.expr(&l.value)?;
    let addr = g.addr(&l.out)?;
    g.store(l.out.dtype, &v, &addr)?;
    k.place(&done);
    k.op("ret");
    let blocks = total.div_ceil(LOOP_BLOCK as u64);
    if blocks > i32::MAX as u64 {
        bail!("a loop of {total} points is more than one CUDA grid holds");
    }
    Ok(Built { text: k.finish(NAME), mems, grid: [blocks as u32, 1, 1], block: [LOOP_BLOCK, 1, 1] })
}

/// The identity of `combine` on dtype `t` (the per-thread partials start from it).
fn identity(combine: BinOp, t: DType) -> Result<Lit> {
    let float = t.is_float();
    let (min, max): (i64, i64) = match t {
        DType::I8 => (i8::MIN as i64, i8::MAX as i64),
        DType::U8 => (0, u8::MAX as i64),
        DType::I16 => (i16::MIN as i64, i16::MAX as i64),
        DType::U16 => (0, u16::MAX as i64),
        DType::I32 => (i32::MIN as i64, i32::MAX as i64),
        DType::U32 => (0, u32::MAX as i64),
        DType::I64 => (i64::MIN, i64::MAX),
        DType::U64 => (0, -1),
        DType::Bool => (0, 1),
        _ => (0, 0),
    };
    Ok(match (combine, float) {
        (BinOp::Add | BinOp::Or | BinOp::Xor, false) => Lit::Int(0, t),
        (BinOp::Add, true) => Lit::of(t, 0.0),
        (BinOp::Mul, true) => Lit::of(t, 1.0),
        (BinOp::Mul, false) => Lit::Int(1, t),
        (BinOp::Max, true) => Lit::of(t, f64::NEG_INFINITY),
        (BinOp::Min, true) => Lit::of(t, f64::INFINITY),
        (BinOp::Max, false) => Lit::Int(min, t),
        (BinOp::Min, false) => Lit::Int(max, t),
        (BinOp::And, false) if t == DType::Bool => Lit::Int(1, t),
        (BinOp::And, false) if t.is_signed_int() => Lit::Int(-1, t),
        (BinOp::And, false) => Lit::Int(max, t),
        (other, _) => bail!("a reduction combining with {other:?} on {} is not supported by the cuda backend", t.name()),
    })
}

fn mov_ty(c: Cls) -> &'static str {
    match c {
        Cls::F32 => "f32",
        Cls::F64 => "f64",
        Cls::B64 => "b64",
        _ => "b32",
    }
}

/// A reduction: a group of threads per outer point.
pub fn reduce_kernel(r: &Reduce) -> Result<Built> {
    let outer: u64 = r.dims[..r.n_outer].iter().map(|&d| d as u64).product();
    let inner: u64 = r.dims[r.n_outer..].iter().map(|&d| d as u64).product();
    let t = inner.next_power_of_two().clamp(32, REDUCE_BLOCK as u64) as u32;
    let per_block = REDUCE_BLOCK / t;
    let acc_cls = cls(r.acc)?;
    let id = identity(r.combine, r.acc)?;
    let mems = step_mems(&[&r.value, &r.finish], r.out.mem);
    let mut k = Kernel::new(mems.len() + 1);
    let (bases, status) = bases(&mut k, &mems);
    let wide = outer >= (1 << 31) || inner >= (1 << 31);
    let ty = if wide { "u64" } else { "u32" };
    let icls = if wide { Cls::B64 } else { Cls::B32 };
    // Thread, lane, group, outer point.
    let (tid, lane, group) = (k.reg(Cls::B32), k.reg(Cls::B32), k.reg(Cls::B32));
    k.op(format!("mov.u32 {tid}, %tid.x"));
    k.op(format!("and.b32 {lane}, {tid}, {}", t - 1));
    k.op(format!("shr.u32 {group}, {tid}, {}", t.trailing_zeros()));
    let (o, j) = (k.reg(icls), k.reg(icls));
    let cta = k.reg(Cls::B32);
    k.op(format!("mov.u32 {cta}, %ctaid.x"));
    if wide {
        let g64 = k.reg(Cls::B64);
        k.op(format!("mul.wide.u32 {o}, {cta}, {per_block}"));
        k.op(format!("cvt.u64.u32 {g64}, {group}"));
        k.op(format!("add.u64 {o}, {o}, {g64}"));
        k.op(format!("cvt.u64.u32 {j}, {lane}"));
    } else {
        k.op(format!("mad.lo.u32 {o}, {cta}, {per_block}, {group}"));
        k.op(format!("mov.u32 {j}, {lane}"));
    }
    let active = k.reg(Cls::Pred);
    k.op(format!("setp.lt.{ty} {active}, {o}, {outer}"));
    // Inactive groups skip the loop (j starts past the end) but still shuffle.
    k.op(format!("selp.{} {j}, {j}, {inner}, {active}", if wide { "b64" } else { "b32" }));
    let oidx = decompose(&mut k, &o, ty, &r.dims[..r.n_outer]);
    let part = k.reg(acc_cls);
    {
        let mut g = Gen { k: &mut k, bases: &bases, status: status.clone(), idx: vec![], acc: None };
        let init = g.expr(&Expr::Lit(id))?;
        k.op(format!("mov.{} {part}, {init}", mov_ty(acc_cls)));
    }
    let (top, end) = (k.label(), k.label());
    k.place(&top);
    let p = k.reg(Cls::Pred);
    k.op(format!("setp.ge.{ty} {p}, {j}, {inner}"));
    k.op(format!("@{p} bra {end}"));
    let iidx = decompose(&mut k, &j, ty, &r.dims[r.n_outer..]);
    {
        let idx: Vec<String> = oidx.iter().chain(&iidx).cloned().collect();
        let mut g = Gen { k: &mut k, bases: &bases, status: status.clone(), idx, acc: None };
        let v = g.expr(&r.value)?;
        let next = g.binary(r.combine, &part, &v, r.acc)?;
        k.op(format!("mov.{} {part}, {next}", mov_ty(acc_cls)));
    }
    k.op(format!("add.{ty} {j}, {j}, {t}"));
    k.op(format!("bra {top}"));
    k.place(&end);
    // Within the warp.
    let mut off = t.min(32) / 2;
    while off >= 1 {
        let other = shuffle(&mut k, &part, acc_cls, off);
        let mut g = Gen { k: &mut k, bases: &bases, status: status.clone(), idx: vec![], acc: None };
        let next = g.binary(r.combine, &part, &other, r.acc)?;
        k.op(format!("mov.{} {part}, {next}", mov_ty(acc_cls)));
        off /= 2;
    }
    // Across the warps of a group.
    if t > 32 {
        let warps = (REDUCE_BLOCK / 32) as usize;
        let smem = k.shared(8 * warps, 8);
        let (warp, wl, addr) = (k.reg(Cls::B32), k.reg(Cls::B32), k.reg(Cls::B32));
        k.op(format!("shr.u32 {warp}, {tid}, 5"));
        k.op(format!("and.b32 {wl}, {tid}, 31"));
        k.op(format!("mov.u32 {addr}, {smem}"));
        k.op(format!("mad.lo.u32 {addr}, {warp}, 8, {addr}"));
        let first = k.reg(Cls::Pred);
        k.op(format!("setp.eq.u32 {first}, {wl}, 0"));
        k.op(format!("@{first} st.shared.{} [{addr}], {part}", mov_ty(acc_cls)));
        k.op("bar.sync 0");
        let lead = k.reg(Cls::Pred);
        k.op(format!("setp.eq.u32 {lead}, {lane}, 0"));
        let skip = k.label();
        let nl = k.reg(Cls::Pred);
        k.op(format!("not.pred {nl}, {lead}"));
        k.op(format!("@{nl} bra {skip}"));
        for w in 1..(t / 32) {
            let other = k.reg(acc_cls);
            k.op(format!("ld.shared.{} {other}, [{addr}+{}]", mov_ty(acc_cls), 8 * w));
            let mut g = Gen { k: &mut k, bases: &bases, status: status.clone(), idx: vec![], acc: None };
            let next = g.binary(r.combine, &part, &other, r.acc)?;
            k.op(format!("mov.{} {part}, {next}", mov_ty(acc_cls)));
        }
        k.place(&skip);
    }
    // Lane 0 of an active group: combine into init, finish, store.
    let store = k.reg(Cls::Pred);
    let (lz, out) = (k.reg(Cls::Pred), k.label());
    k.op(format!("setp.eq.u32 {lz}, {lane}, 0"));
    k.op(format!("and.pred {store}, {lz}, {active}"));
    let ns = k.reg(Cls::Pred);
    k.op(format!("not.pred {ns}, {store}"));
    k.op(format!("@{ns} bra {out}"));
    {
        let zeros: Vec<String> = (r.n_outer..r.dims.len())
            .map(|_| {
                let z = k.reg(Cls::B64);
                k.op(format!("mov.u64 {z}, 0"));
                z
            })
            .collect();
        let idx: Vec<String> = oidx.iter().chain(&zeros).cloned().collect();
        let mut g = Gen { k: &mut k, bases: &bases, status: status.clone(), idx, acc: None };
        let init = g.expr(&Expr::Lit(r.init))?;
        let acc = g.binary(r.combine, &init, &part, r.acc)?;
        g.acc = Some((acc, r.acc));
        let v = g.expr(&r.finish)?;
        let mut out_acc = r.out.clone();
        out_acc.strides.resize(r.dims.len(), 0);
        let addr = g.addr(&out_acc)?;
        g.store(r.out.dtype, &v, &addr)?;
    }
    k.place(&out);
    k.op("ret");
    let blocks = outer.div_ceil(per_block as u64);
    if blocks > i32::MAX as u64 {
        bail!("a reduction over {outer} outer points is more than one CUDA grid holds");
    }
    Ok(Built { text: k.finish(NAME), mems, grid: [blocks as u32, 1, 1], block: [REDUCE_BLOCK, 1, 1] })
}

/// `shfl.sync.bfly` of `v` by `off` lanes (64-bit values as two halves).
fn shuffle(k: &mut Kernel, v: &str, c: Cls, off: u32) -> String {
    let r = k.reg(c);
    if matches!(c, Cls::B64 | Cls::F64) {
        let (lo, hi) = (k.reg(Cls::B32), k.reg(Cls::B32));
        k.op(format!("mov.b64 {{{lo}, {hi}}}, {v}"));
        k.op(format!("shfl.sync.bfly.b32 {lo}, {lo}, {off}, 31, 0xffffffff"));
        k.op(format!("shfl.sync.bfly.b32 {hi}, {hi}, {off}, 31, 0xffffffff"));
        k.op(format!("mov.b64 {r}, {{{lo}, {hi}}}"));
    } else {
        k.op(format!("shfl.sync.bfly.b32 {r}, {v}, {off}, 31, 0xffffffff"));
    }
    r
}
