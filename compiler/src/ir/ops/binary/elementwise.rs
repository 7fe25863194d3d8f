//! Helpers shared by the elementwise families (`unary`, `binary`): the numeric trait that
//! lifts one scalar function to every element type, the one broadcasting loop, and macros
//! that dispatch on tensor variants.
//!
//! Numeric policy (matches the ONNX reference implementation, i.e. numpy, to within the
//! conformance tolerances):
//! - floats (f16, bf16, f32, f64) compute in `f64` and round once to the element type;
//! - integers compute in `i128`, which holds every value of every 8- to 64-bit integer type,
//!   and wrap back to the element type with an `as` cast (two's complement truncation), so
//!   overflow wraps exactly like numpy's fixed-width arithmetic.

use crate::ir::shape;
use crate::tensor::{ArrayD, ArrayViewD, IxDyn, Scalar, bf16, f16};
use anyhow::{Result, anyhow};

/// The numeric element types (every [`Scalar`] but bool).
pub trait Num: Scalar {
    /// Bit width of an integer type; `None` for floating-point types.
    const BITS: Option<u32>;
    /// Exact for integers (floats truncate; only used on integer types).
    fn to_i128(self) -> i128;
    /// Wraps to the type's width (two's complement), like a C cast.
    fn from_i128(v: i128) -> Self;
}

macro_rules! impl_int {
    ($($t:ty),*) => {$(
        impl Num for $t {
            const BITS: Option<u32> = Some(<$t>::BITS);
            fn to_i128(self) -> i128 { self as i128 }
            fn from_i128(v: i128) -> Self { v as $t }
        }
    )*};
}
impl_int!(i8, i16, i32, i64, u8, u16, u32, u64);

macro_rules! impl_float {
    ($($t:ty),*) => {$(
        impl Num for $t {
            const BITS: Option<u32> = None;
            fn to_i128(self) -> i128 { Scalar::to_f64(self) as i128 }
            fn from_i128(v: i128) -> Self { <$t as Scalar>::from_f64(v as f64) }
        }
    )*};
}
impl_float!(f32, f64, f16, bf16);

/// Whether `d` is one of the element types [`Num`] covers (floats and 8..64-bit integers held
/// natively; not bool, string or the 8/4/2-bit `Low` types).
pub fn is_num(d: crate::tensor::DType) -> bool {
    d.is_numeric() && !d.is_low()
}

/// Whether `d` is a natively held float type (f16, bf16, f32, f64).
pub fn is_float(d: crate::tensor::DType) -> bool {
    d.is_float() && !d.is_low()
}

/// Whether `d` is an 8..64-bit integer type.
pub fn is_int(d: crate::tensor::DType) -> bool {
    d.is_int() && !d.is_low()
}

/// `a` viewed at `shape` under numpy broadcasting (no copy).
pub fn broadcast_view<'a, T>(a: &'a ArrayD<T>, shape: &[usize]) -> Result<ArrayViewD<'a, T>> {
    a.broadcast(IxDyn(shape)).ok_or_else(|| anyhow!("shape {:?} does not broadcast to {:?}", a.shape(), shape))
}

/// The broadcasting loop of every binary op: `f` applied to each pair of elements of `a` and
/// `b` at their common numpy-broadcast shape (multidirectional broadcasting).
pub fn broadcast_zip<A, B, R>(a: &ArrayD<A>, b: &ArrayD<B>, mut f: impl FnMut(&A, &B) -> R) -> Result<ArrayD<R>> {
    let shape = shape::broadcast(a.shape(), b.shape())?;
    let (av, bv) = (broadcast_view(a, &shape)?, broadcast_view(b, &shape)?);
    Ok(ndarray::Zip::from(&av).and(&bv).map_collect(|x, y| f(x, y)))
}

/// Matches `$t` against the given `Tensor` variants, binding the array to `$a`; any other
/// tensor goes to the `$other => $else` arm.
macro_rules! dispatch {
    ([$($V:ident),*], $t:expr, $a:ident => $body:expr, $other:pat => $else:expr) => {
        match $t {
            $($crate::tensor::Tensor::$V($a) => $body,)*
            $other => $else,
        }
    };
}

/// Like [`dispatch!`] for two tensors of the same variant.
macro_rules! dispatch_pair {
    ([$($V:ident),*], $x:expr, $y:expr, $a:ident, $b:ident => $body:expr, $other:pat => $else:expr) => {
        match ($x, $y) {
            $(($crate::tensor::Tensor::$V($a), $crate::tensor::Tensor::$V($b)) => $body,)*
            $other => $else,
        }
    };
}

/// [`dispatch!`] over the numeric variants (the [`Num`] types).
macro_rules! with_num {
    ($t:expr, $a:ident => $body:expr, $other:pat => $else:expr) => {
        $crate::ir::ops::binary::elementwise::dispatch!(
            [F32, F64, F16, BF16, I8, I16, I32, I64, U8, U16, U32, U64], $t, $a => $body, $other => $else)
    };
}

/// [`dispatch_pair!`] over the numeric variants (the [`Num`] types).
macro_rules! with_num_pair {
    ($x:expr, $y:expr, $a:ident, $b:ident => $body:expr, $other:pat => $else:expr) => {
        $crate::ir::ops::binary::elementwise::dispatch_pair!(
            [F32, F64, F16, BF16, I8, I16, I32, I64, U8, U16, U32, U64], $x, $y, $a, $b => $body, $other => $else)
    };
}

pub(crate) use {dispatch, dispatch_pair, with_num, with_num_pair};

/// Test helper for the elementwise families: imports `op_type` at `opset` with constant
/// inputs, checks that `infer` agrees with `eval` and that the op round-trips through its
/// printed attributes, and returns the output.
#[cfg(test)]
pub(crate) fn run_op(
    op_type: &str,
    opset: i64,
    attrs: &[(&str, crate::ir::Attr)],
    inputs: &[crate::tensor::Tensor],
) -> Result<crate::tensor::Tensor> {
    use crate::ir::{EvalInputs, InferCx, NodeInput, OpImpl, ValueType, ops};
    let attrs = attrs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    let node_inputs = |ts: &[crate::tensor::Tensor]| ts.iter().map(|t| Some(NodeInput::Const(t.clone()))).collect();
    let (op, ins) = ops::build(op_type, "", opset, "test", &attrs, node_inputs(inputs), 1)?;
    let ins: Vec<_> = ins.into_iter().map(|i| i.and_then(|i| i.konst().cloned()).expect("constant input")).collect();
    let again = ops::rebuild(&op, node_inputs(&ins), 1)?;
    assert_eq!(again, op, "round trip of {op_type}");
    let types: Vec<_> = ins.iter().map(|t| Some((ValueType::of(t), None))).collect();
    let inferred = op.infer(&InferCx { inputs: &types, n_outputs: 1 })?;
    let refs: Vec<_> = ins.iter().map(Some).collect();
    let out = op.eval(&EvalInputs { inputs: &refs, n_outputs: 1 })?.remove(0);
    assert_eq!(inferred[0], ValueType::of(&out), "infer and eval disagree on {op_type}");
    Ok(out)
}

/// A tensor from a shape and values (test helper).
#[cfg(test)]
pub(crate) fn t<T: crate::tensor::Elem>(shape: &[usize], v: Vec<T>) -> crate::tensor::Tensor {
    crate::tensor::Tensor::from_vec(shape, v).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zip_broadcasts_both_ways() {
        let a = ArrayD::from_shape_vec(IxDyn(&[2, 1]), vec![1, 2]).unwrap();
        let b = ArrayD::from_shape_vec(IxDyn(&[3]), vec![10, 20, 30]).unwrap();
        let c = broadcast_zip(&a, &b, |x, y| x + y).unwrap();
        assert_eq!(c.shape(), &[2, 3]);
        assert_eq!(c.iter().copied().collect::<Vec<_>>(), vec![11, 21, 31, 12, 22, 32]);
        let e = ArrayD::<i32>::zeros(IxDyn(&[0, 3]));
        assert_eq!(broadcast_zip(&e, &b, |x, y| x + y).unwrap().shape(), &[0, 3]);
        assert!(broadcast_zip(&a, &ArrayD::<i32>::zeros(IxDyn(&[3, 4])), |x, y| x + y).is_err());
    }

    #[test]
    fn integers_wrap() {
        assert_eq!(i8::from_i128(127i8.to_i128() + 1), -128);
        assert_eq!(u64::from_i128(u64::MAX.to_i128().wrapping_mul(u64::MAX.to_i128())), 1);
        assert_eq!(<u8 as Num>::BITS, Some(8));
        assert_eq!(<f32 as Num>::BITS, None);
    }
}
