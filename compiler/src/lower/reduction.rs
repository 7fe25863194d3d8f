//! Reductions over some axes of a tensor, shared by the reduce, softmax, norm, index and
//! gather families: the iteration space ([`Space`]), the identities of max and min
//! ([`lowest`], [`highest`]), the compute type of f16 and bf16, and the arg search.
//!
//! A reduction over `axes` loops over the kept dims (outer) and then the reduced dims
//! (inner). Statistics land in temporaries laid out densely over the kept dims, and the
//! ops that normalise read them back broadcast over the reduced dims.

use anyhow::{Result, bail};

use super::Lw;
use crate::kernel_ir::build::int;
use crate::kernel_ir::{Access, BinOp, Expr, Lit, Mem, Reduce as ReduceStep, Step, UnOp, dense_strides};
use crate::ir::ValueType;
use crate::tensor::DType;

/// The iteration space of a reduction of `shape` over `axes`: (dims, n_outer, and the
/// source strides permuted to match), plus the stats' strides in `shape`'s own space.
pub(super) struct Space {
    pub(super) dims: Vec<usize>,
    pub(super) n_outer: usize,
    src: Vec<i64>,
    /// Strides of a dense stats tensor (over the kept dims) indexed in `shape`'s space.
    stat_in_x: Vec<i64>,
    /// Elements per reduction.
    pub(super) count: usize,
    pub(super) kept: Vec<usize>,
}

pub(super) fn space(shape: &[usize], axes: &[usize]) -> Space {
    let xs = dense_strides(shape);
    let kept: Vec<usize> = (0..shape.len()).filter(|d| !axes.contains(d)).collect();
    let red: Vec<usize> = (0..shape.len()).filter(|d| axes.contains(d)).collect();
    let kept_shape: Vec<usize> = kept.iter().map(|&d| shape[d]).collect();
    let ks = dense_strides(&kept_shape);
    let mut stat_in_x = vec![0i64; shape.len()];
    for (k, &d) in kept.iter().enumerate() {
        stat_in_x[d] = ks[k];
    }
    Space {
        dims: kept.iter().chain(&red).map(|&d| shape[d]).collect(),
        n_outer: kept.len(),
        src: kept.iter().chain(&red).map(|&d| xs[d]).collect(),
        stat_in_x,
        count: red.iter().map(|&d| shape[d]).product(),
        kept: kept_shape,
    }
}

impl Space {
    pub(super) fn load(&self, mem: Mem, dtype: DType) -> Expr {
        Expr::Load(Access { mem, dtype, offset: 0, strides: self.src.clone() })
    }
    /// A stats tensor read inside this reduction's loops (zero stride over reduced dims).
    pub(super) fn stat(&self, mem: Mem, dtype: DType) -> Expr {
        let mut strides = dense_strides(&self.kept);
        strides.resize(self.dims.len(), 0);
        Expr::Load(Access { mem, dtype, offset: 0, strides })
    }
    pub(super) fn stat_x(&self, mem: Mem, dtype: DType) -> Expr {
        Expr::Load(Access { mem, dtype, offset: 0, strides: self.stat_in_x.clone() })
    }
    #[allow(clippy::too_many_arguments)]
    pub(super) fn step(&self, acc: DType, init: Lit, combine: BinOp, value: Expr, finish: Expr, out: Mem, out_dtype: DType) -> Step {
        Step::Reduce(ReduceStep {
            dims: self.dims.clone(),
            n_outer: self.n_outer,
            acc,
            init,
            combine,
            value,
            finish,
            out: Access { mem: out, dtype: out_dtype, offset: 0, strides: dense_strides(&self.kept) },
        })
    }
    pub(super) fn stat_temp(&self, lw: &mut Lw, dtype: DType) -> Mem {
        lw.temp(&ValueType::new(dtype, self.kept.clone()))
    }
}

pub(super) fn lowest(t: DType) -> Lit {
    match t {
        DType::F32 | DType::F64 | DType::F16 | DType::BF16 => Lit::of(t, f64::NEG_INFINITY),
        DType::Bool => Lit::Int(0, t),
        DType::I8 => Lit::Int(i8::MIN as i64, t),
        DType::I16 => Lit::Int(i16::MIN as i64, t),
        DType::I32 => Lit::Int(i32::MIN as i64, t),
        DType::I64 => Lit::Int(i64::MIN, t),
        _ => Lit::Int(0, t),
    }
}

pub(super) fn highest(t: DType) -> Lit {
    match t {
        DType::F32 | DType::F64 | DType::F16 | DType::BF16 => Lit::of(t, f64::INFINITY),
        DType::Bool => Lit::Int(1, t),
        DType::I8 => Lit::Int(i8::MAX as i64, t),
        DType::I16 => Lit::Int(i16::MAX as i64, t),
        DType::I32 => Lit::Int(i32::MAX as i64, t),
        DType::I64 => Lit::Int(i64::MAX, t),
        DType::U8 => Lit::Int(u8::MAX as i64, t),
        DType::U16 => Lit::Int(u16::MAX as i64, t),
        DType::U32 => Lit::Int(u32::MAX as i64, t),
        _ => Lit::Int(-1, t),
    }
}

/// The type f16 and bf16 are computed in (f32); other types compute in themselves.
pub(super) fn compute_type(t: DType) -> DType {
    if matches!(t, DType::F16 | DType::BF16) { DType::F32 } else { t }
}

/// Σ Index(first + k) · strides[k].
pub(super) fn flat_index(first: usize, strides: &[i64]) -> Expr {
    strides
        .iter()
        .enumerate()
        .map(|(k, &s)| Expr::bin(BinOp::Mul, Expr::Index(first + k), int(s)))
        .reduce(|a, b| Expr::bin(BinOp::Add, a, b))
        .unwrap_or(int(0))
}

/// Writes into `out` (i64, dense over the kept dims of `shape`) the flat position, within
/// the searched `axes` (ascending), of the first/last maximum (`max`) or minimum of `x`.
///
/// Two reductions over the same iteration space (kept dims outer, searched dims inner):
/// the extreme value first, then the first (or last) flat position whose value equals it.
/// NaN is the extreme either way, as in the reference (`numpy` argmax/argmin): the
/// NaN-propagating Max/Min finds it, and a NaN matches the extreme because only a NaN
/// extreme can exist when the row holds one.
#[allow(clippy::too_many_arguments)]
pub(super) fn arg_search(lw: &mut Lw, x: Mem, t: DType, shape: &[usize], axes: &[usize], max: bool, last: bool, out: Mem) -> Result<()> {
    if !t.is_numeric() {
        bail!("arg search on {} is not supported by the {backend} backend", t.name(), backend = lw.caps.backend);
    }
    let xs = dense_strides(shape);
    let kept: Vec<usize> = (0..shape.len()).filter(|d| !axes.contains(d)).collect();
    let kept_shape: Vec<usize> = kept.iter().map(|&d| shape[d]).collect();
    let red_shape: Vec<usize> = axes.iter().map(|&d| shape[d]).collect();
    if red_shape.contains(&0) {
        bail!("arg search over an empty axis");
    }
    let dims: Vec<usize> = kept_shape.iter().chain(&red_shape).copied().collect();
    let n_outer = kept.len();
    let src = Access { mem: x, dtype: t, offset: 0, strides: kept.iter().chain(axes).map(|&d| xs[d]).collect() };
    let stat = |mem: Mem, dtype: DType| Access { mem, dtype, offset: 0, strides: dense_strides(&kept_shape) };
    // The extreme value per kept point.
    let ext = lw.temp(&ValueType::new(t, kept_shape.clone()));
    let (init, combine) = if max { (lowest(t), BinOp::Max) } else { (highest(t), BinOp::Min) };
    lw.push(Step::Reduce(ReduceStep {
        dims: dims.clone(),
        n_outer,
        acc: t,
        init,
        combine,
        value: Expr::Load(src.clone()),
        finish: Expr::Acc,
        out: stat(ext, t),
    }));
    // The first/last position holding it.
    let mut ext_in = stat(ext, t);
    ext_in.strides.resize(dims.len(), 0);
    let v = Expr::Load(src);
    let mut hit = Expr::bin(BinOp::Eq, v.clone(), Expr::Load(ext_in));
    if t.is_float() {
        hit = Expr::bin(BinOp::Or, hit, Expr::un(UnOp::IsNaN, v));
    }
    let pos = flat_index(n_outer, &dense_strides(&red_shape));
    let count = red_shape.iter().product::<usize>() as i64;
    let (miss, combine) = if last { (-1, BinOp::Max) } else { (count, BinOp::Min) };
    lw.push(Step::Reduce(ReduceStep {
        dims,
        n_outer,
        acc: DType::I64,
        init: Lit::Int(miss, DType::I64),
        combine,
        value: Expr::select(hit, pos, int(miss)),
        finish: Expr::Acc,
        out: stat(out, DType::I64),
    }));
    Ok(())
}
