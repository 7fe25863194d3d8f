//! Helpers shared by the gather, index and resize families: row-major index arithmetic,
//! index validation, element-type-generic gathering and scattering, and the reductions of
//! ScatterND/ScatterElements (also used by CumSum/CumProd).

use crate::tensor::{ArrayD, DType, Elem, IxDyn, Scalar, Tensor};
use anyhow::{Result, anyhow, bail};
use std::any::Any;

/// The most elements an output sized by input *values* (not input shapes) may have: beyond
/// this a size is treated as a mistake rather than allocated (the one limit, in
/// [`crate::ir::limits`]).
pub(crate) use crate::ir::limits::MAX_ELEMENTS;

/// The element count of an output shape computed from input values, checked against
/// overflow and [`MAX_ELEMENTS`].
pub(crate) fn checked_len(shape: &[usize], op: &str) -> Result<usize> {
    crate::ir::limits::elements(shape).map_err(|e| anyhow!("{op}: output shape {shape:?} is too large ({e})"))
}

/// Row-major strides of `shape`, in elements.
pub(crate) fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// The multi-index of row-major position `flat` in `shape`.
pub(crate) fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for i in (0..shape.len()).rev() {
        if shape[i] > 0 {
            idx[i] = flat % shape[i];
            flat /= shape[i];
        }
    }
    idx
}

/// The row-major position of multi-index `idx` given `strides`.
pub(crate) fn ravel(idx: &[usize], strides: &[usize]) -> usize {
    idx.iter().zip(strides).map(|(i, s)| i * s).sum()
}

/// Resolves an index into a dimension of size `dim`: `[-dim, dim)` is valid, negatives count
/// from the end. Anything else is an error naming `op`.
pub(crate) fn resolve_index(i: i64, dim: usize, op: &str) -> Result<usize> {
    let d = dim as i64;
    if i < -d || i >= d {
        bail!("{op}: index {i} is out of range for a dimension of size {dim}");
    }
    Ok(if i < 0 { (i + d) as usize } else { i as usize })
}

/// The values of an index tensor, which must be int32 or int64.
pub(crate) fn index_values(t: &Tensor, op: &str, what: &str) -> Result<Vec<i64>> {
    check_index_dtype(t.dtype(), op, what)?;
    t.to_i64_vec()
}

pub(crate) fn check_index_dtype(d: DType, op: &str, what: &str) -> Result<()> {
    if !matches!(d, DType::I32 | DType::I64) {
        bail!("{op}: {what} must be int32 or int64, got {d}");
    }
    Ok(())
}

/// The array of `t` with the same element type as `_like`. Tensors of the 8/4/2-bit types
/// are byte codes; the caller has checked that the dtypes match.
fn peer<'a, T: Elem>(t: &'a Tensor) -> Result<&'a ArrayD<T>> {
    if let Tensor::Low(_, a) = t {
        if let Some(x) = (a as &dyn Any).downcast_ref::<ArrayD<T>>() {
            return Ok(x);
        }
    }
    t.as_array::<T>()
}

/// A tensor of `shape` whose row-major elements are `t`'s elements at row-major positions
/// `src` (any element type).
pub(crate) fn take_flat(t: &Tensor, src: &[usize], shape: &[usize]) -> Result<Tensor> {
    if src.len() != shape.iter().product::<usize>() {
        bail!("internal: {} positions for output shape {shape:?}", src.len());
    }
    crate::try_map_array!(t, a => take_array(a, src, shape))
}

fn take_array<T: Elem>(a: &ArrayD<T>, src: &[usize], shape: &[usize]) -> Result<ArrayD<T>> {
    let data: Vec<&T> = a.iter().collect();
    let out = src
        .iter()
        .map(|&i| data.get(i).map(|v| (*v).clone()).ok_or_else(|| anyhow!("internal: position {i} out of range")))
        .collect::<Result<Vec<T>>>()?;
    Ok(ArrayD::from_shape_vec(IxDyn(shape), out)?)
}

/// `(outer, n, inner)` for lines along `axis` of `shape`: element `k` of line `(o, i)` sits at
/// row-major position `(o * n + k) * inner + i`.
pub(crate) fn lines(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (shape[..axis].iter().product(), shape[axis], shape[axis + 1..].iter().product())
}

/// Row-major source positions of `take(data, idx, axis)` (numpy), for already resolved
/// `idx` (each `< shape[axis]`).
pub(crate) fn axis_positions(shape: &[usize], axis: usize, idx: &[usize]) -> Vec<usize> {
    let (outer, n, inner) = lines(shape, axis);
    let mut src = Vec::with_capacity(outer * idx.len() * inner);
    for o in 0..outer {
        for &i in idx {
            src.extend((0..inner).map(|k| (o * n + i) * inner + k));
        }
    }
    src
}

/// How a scatter combines an update with the value already there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduction {
    None,
    Add,
    Mul,
    Max,
    Min,
}

impl Reduction {
    pub(crate) fn parse(s: &str) -> Option<Reduction> {
        Some(match s {
            "none" => Reduction::None,
            "add" => Reduction::Add,
            "mul" => Reduction::Mul,
            "max" => Reduction::Max,
            "min" => Reduction::Min,
            _ => return None,
        })
    }
    pub(crate) fn name(self) -> &'static str {
        match self {
            Reduction::None => "none",
            Reduction::Add => "add",
            Reduction::Mul => "mul",
            Reduction::Max => "max",
            Reduction::Min => "min",
        }
    }
}

/// `a (op) b` in the element type, like numpy: integers wrap, floats round once, max/min
/// propagate NaN, bool add/mul are or/and.
pub(crate) fn combine<T: Scalar>(r: Reduction, a: T, b: T) -> T {
    #[allow(clippy::eq_op)]
    let nan = |v: T| v != v;
    match r {
        Reduction::None => b,
        Reduction::Add if T::DTYPE.is_int() => T::from_i64(a.to_i64().wrapping_add(b.to_i64())),
        Reduction::Add => T::from_f64(a.to_f64() + b.to_f64()),
        Reduction::Mul if T::DTYPE.is_int() => T::from_i64(a.to_i64().wrapping_mul(b.to_i64())),
        Reduction::Mul => T::from_f64(a.to_f64() * b.to_f64()),
        Reduction::Max => {
            if nan(a) || (!nan(b) && a >= b) {
                a
            } else {
                b
            }
        }
        Reduction::Min => {
            if nan(a) || (!nan(b) && a <= b) {
                a
            } else {
                b
            }
        }
    }
}

/// A copy of `data` where, in order, element `dst` becomes `combine(r, data[dst],
/// updates[src])` for each `(dst, src)` pair (row-major positions).
pub(crate) fn scatter(data: &Tensor, updates: &Tensor, pairs: &[(usize, usize)], r: Reduction, op: &str) -> Result<Tensor> {
    if data.dtype() != updates.dtype() {
        bail!("{op}: updates are {} but data is {}", updates.dtype(), data.dtype());
    }
    if r == Reduction::None {
        return crate::try_map_array!(data, a => scatter_array(a, peer(updates)?, pairs, |_, u| u.clone()));
    }
    crate::with_scalar_array!(data, a, T => T::wrap(scatter_array(a, peer::<T>(updates)?, pairs, |x: &T, u: &T| combine(r, *x, *u))?))
        .map_err(|e| anyhow!("{op} with reduction '{}': {e}", r.name()))
}

fn scatter_array<T: Elem>(
    a: &ArrayD<T>,
    u: &ArrayD<T>,
    pairs: &[(usize, usize)],
    f: impl Fn(&T, &T) -> T,
) -> Result<ArrayD<T>> {
    let mut out: Vec<T> = a.iter().cloned().collect();
    let upd: Vec<&T> = u.iter().collect();
    for &(d, s) in pairs {
        let (Some(x), Some(v)) = (out.get(d), upd.get(s)) else { bail!("internal: scatter position out of range") };
        let y = f(x, v);
        out[d] = y;
    }
    Ok(ArrayD::from_shape_vec(IxDyn(a.shape()), out)?)
}

/// Shape and dtype inference, then evaluation, checking that the two agree (every input is
/// given as a constant). For unit tests.
#[cfg(test)]
pub(crate) fn run(op: &crate::ir::Op, inputs: &[Option<Tensor>], n_outputs: usize) -> Result<Vec<Tensor>> {
    use crate::ir::{Constant, EvalInputs, InferCx, OpImpl, ValueType};
    let consts: Vec<Option<Constant>> = inputs.iter().map(|t| t.clone().map(Constant::new)).collect();
    let tys: Vec<Option<(ValueType, Option<&Constant>)>> =
        inputs.iter().zip(&consts).map(|(t, c)| t.as_ref().map(|t| (ValueType::of(t), c.as_ref()))).collect();
    let types = op.infer(&InferCx { inputs: &tys, n_outputs })?;
    let refs: Vec<Option<&Tensor>> = inputs.iter().map(|t| t.as_ref()).collect();
    let out = op.eval(&EvalInputs { inputs: &refs, n_outputs })?;
    assert!(types.len() >= n_outputs && out.len() >= n_outputs, "{op:?}: too few outputs");
    for (i, t) in out.iter().take(n_outputs).enumerate() {
        assert_eq!(types[i], ValueType::of(t), "{op:?}: output {i} type differs between infer and eval");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_arithmetic() {
        assert_eq!(strides(&[2, 3, 4]), vec![12, 4, 1]);
        assert_eq!(unravel(23, &[2, 3, 4]), vec![1, 2, 3]);
        assert_eq!(ravel(&[1, 2, 3], &strides(&[2, 3, 4])), 23);
        assert_eq!(resolve_index(-1, 3, "t").unwrap(), 2);
        assert!(resolve_index(3, 3, "t").is_err());
        assert!(resolve_index(-4, 3, "t").is_err());
    }

    #[test]
    fn combine_like_numpy() {
        assert_eq!(combine(Reduction::Add, 127i8, 1), -128);
        assert_eq!(combine(Reduction::Mul, u64::MAX, 2), u64::MAX - 1);
        assert!(combine(Reduction::Max, 1.0f32, f32::NAN).is_nan());
        assert_eq!(combine(Reduction::Min, 3u64, u64::MAX), 3);
        assert!(combine(Reduction::Add, true, true));
    }
}
