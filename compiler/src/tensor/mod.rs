//! Dense host tensors: one `ndarray::ArrayD` per supported element type.
//!
//! This is the value type of the reference evaluator and of constant folding. It favours
//! obviously-correct code over speed. Element-generic code goes through [`Elem`] (every type,
//! strings included) and [`Scalar`] (numbers and bool, convertible through `f64`).

mod dtype;
pub mod npy;
pub mod low;
mod raw;

pub use dtype::DType;
pub use half::{bf16, f16};
pub use ndarray::{ArrayD, ArrayViewD, Axis, IxDyn};

use anyhow::{Result, anyhow, bail};
use std::fmt;

#[derive(Clone, PartialEq)]
pub enum Tensor {
    F32(ArrayD<f32>),
    F64(ArrayD<f64>),
    F16(ArrayD<f16>),
    BF16(ArrayD<bf16>),
    I8(ArrayD<i8>),
    I16(ArrayD<i16>),
    I32(ArrayD<i32>),
    I64(ArrayD<i64>),
    U8(ArrayD<u8>),
    U16(ArrayD<u16>),
    U32(ArrayD<u32>),
    U64(ArrayD<u64>),
    Bool(ArrayD<bool>),
    Str(ArrayD<String>),
    /// 8-bit float, 4-bit and 2-bit types (f8*, f4e2m1, i4, u4, i2, u2): one code per element,
    /// unpacked (a 4-bit value sits in the low bits of its byte). Data-movement ops treat it
    /// as bytes; only Cast (and quantisation) interpret the codes.
    Low(DType, ArrayD<u8>),
}

/// Applies `$body` to the array inside any tensor, binding it to `$a`. The body must have one
/// type for every element type (e.g. a shape, or a `Result<()>`).
#[macro_export]
macro_rules! with_array {
    ($t:expr, $a:ident => $body:expr) => {
        match $t {
            $crate::tensor::Tensor::F32($a) => $body,
            $crate::tensor::Tensor::F64($a) => $body,
            $crate::tensor::Tensor::F16($a) => $body,
            $crate::tensor::Tensor::BF16($a) => $body,
            $crate::tensor::Tensor::I8($a) => $body,
            $crate::tensor::Tensor::I16($a) => $body,
            $crate::tensor::Tensor::I32($a) => $body,
            $crate::tensor::Tensor::I64($a) => $body,
            $crate::tensor::Tensor::U8($a) => $body,
            $crate::tensor::Tensor::U16($a) => $body,
            $crate::tensor::Tensor::U32($a) => $body,
            $crate::tensor::Tensor::U64($a) => $body,
            $crate::tensor::Tensor::Bool($a) => $body,
            $crate::tensor::Tensor::Str($a) => $body,
            $crate::tensor::Tensor::Low(_, $a) => $body,
        }
    };
}

/// Like [`with_array!`], but the body returns an `ArrayD` of the same element type and the
/// result is rewrapped into a `Tensor` of the same variant. Use it for data movement ops
/// (transpose, slice, gather...) that work for every element type.
#[macro_export]
macro_rules! map_array {
    ($t:expr, $a:ident => $body:expr) => {
        match $t {
            $crate::tensor::Tensor::F32($a) => $crate::tensor::Tensor::F32($body),
            $crate::tensor::Tensor::F64($a) => $crate::tensor::Tensor::F64($body),
            $crate::tensor::Tensor::F16($a) => $crate::tensor::Tensor::F16($body),
            $crate::tensor::Tensor::BF16($a) => $crate::tensor::Tensor::BF16($body),
            $crate::tensor::Tensor::I8($a) => $crate::tensor::Tensor::I8($body),
            $crate::tensor::Tensor::I16($a) => $crate::tensor::Tensor::I16($body),
            $crate::tensor::Tensor::I32($a) => $crate::tensor::Tensor::I32($body),
            $crate::tensor::Tensor::I64($a) => $crate::tensor::Tensor::I64($body),
            $crate::tensor::Tensor::U8($a) => $crate::tensor::Tensor::U8($body),
            $crate::tensor::Tensor::U16($a) => $crate::tensor::Tensor::U16($body),
            $crate::tensor::Tensor::U32($a) => $crate::tensor::Tensor::U32($body),
            $crate::tensor::Tensor::U64($a) => $crate::tensor::Tensor::U64($body),
            $crate::tensor::Tensor::Bool($a) => $crate::tensor::Tensor::Bool($body),
            $crate::tensor::Tensor::Str($a) => $crate::tensor::Tensor::Str($body),
            $crate::tensor::Tensor::Low(d, $a) => $crate::tensor::Tensor::Low(d.clone(), $body),
        }
    };
}

/// Like [`map_array!`] but fallible: the body returns `Result<ArrayD<_>>`.
#[macro_export]
macro_rules! try_map_array {
    ($t:expr, $a:ident => $body:expr) => {
        (|| -> ::anyhow::Result<$crate::tensor::Tensor> {
            Ok($crate::map_array!($t, $a => $body?))
        })()
    };
}

/// Every element type a [`Tensor`] can hold.
pub trait Elem: Clone + fmt::Debug + PartialEq + Default + Send + Sync + 'static {
    const DTYPE: DType;
    fn wrap(a: ArrayD<Self>) -> Tensor;
    fn unwrap_ref(t: &Tensor) -> Option<&ArrayD<Self>>;
    fn unwrap(t: Tensor) -> std::result::Result<ArrayD<Self>, Tensor>;
}

/// Numbers and bool. Conversions go through `f64` with Rust `as` semantics (truncation toward
/// zero for float → int, saturating at the type's range, NaN → 0), which is what ONNX's
/// reference implementation (numpy `astype`) does for in-range values.
pub trait Scalar: Elem + Copy + PartialOrd {
    fn to_f64(self) -> f64;
    fn from_f64(v: f64) -> Self;
    /// Exact for all integers (f64 is not exact above 2^53).
    fn to_i64(self) -> i64;
    fn from_i64(v: i64) -> Self;
    fn zero() -> Self {
        Self::from_f64(0.0)
    }
    fn one() -> Self {
        Self::from_f64(1.0)
    }
}

macro_rules! impl_elem {
    ($t:ty, $variant:ident, $dt:ident) => {
        impl Elem for $t {
            const DTYPE: DType = DType::$dt;
            fn wrap(a: ArrayD<Self>) -> Tensor {
                Tensor::$variant(a)
            }
            fn unwrap_ref(t: &Tensor) -> Option<&ArrayD<Self>> {
                match t {
                    Tensor::$variant(a) => Some(a),
                    _ => None,
                }
            }
            fn unwrap(t: Tensor) -> std::result::Result<ArrayD<Self>, Tensor> {
                match t {
                    Tensor::$variant(a) => Ok(a),
                    other => Err(other),
                }
            }
        }
    };
}

impl_elem!(f32, F32, F32);
impl_elem!(f64, F64, F64);
impl_elem!(f16, F16, F16);
impl_elem!(bf16, BF16, BF16);
impl_elem!(i8, I8, I8);
impl_elem!(i16, I16, I16);
impl_elem!(i32, I32, I32);
impl_elem!(i64, I64, I64);
impl_elem!(u8, U8, U8);
impl_elem!(u16, U16, U16);
impl_elem!(u32, U32, U32);
impl_elem!(u64, U64, U64);
impl_elem!(bool, Bool, Bool);
impl_elem!(String, Str, String);

macro_rules! impl_scalar_prim {
    ($($t:ty),*) => {$(
        impl Scalar for $t {
            fn to_f64(self) -> f64 { self as f64 }
            fn from_f64(v: f64) -> Self { v as $t }
            fn to_i64(self) -> i64 { self as i64 }
            fn from_i64(v: i64) -> Self { v as $t }
        }
    )*};
}
impl_scalar_prim!(f32, f64, i8, i16, i32, i64, u8, u16, u32, u64);

impl Scalar for f16 {
    fn to_f64(self) -> f64 {
        f16::to_f64(self)
    }
    fn from_f64(v: f64) -> Self {
        f16::from_f64(v)
    }
    fn to_i64(self) -> i64 {
        f16::to_f64(self) as i64
    }
    fn from_i64(v: i64) -> Self {
        f16::from_f64(v as f64)
    }
}

impl Scalar for bf16 {
    fn to_f64(self) -> f64 {
        bf16::to_f64(self)
    }
    fn from_f64(v: f64) -> Self {
        bf16::from_f64(v)
    }
    fn to_i64(self) -> i64 {
        bf16::to_f64(self) as i64
    }
    fn from_i64(v: i64) -> Self {
        bf16::from_f64(v as f64)
    }
}

impl Scalar for bool {
    fn to_f64(self) -> f64 {
        if self { 1.0 } else { 0.0 }
    }
    fn from_f64(v: f64) -> Self {
        v != 0.0
    }
    fn to_i64(self) -> i64 {
        self as i64
    }
    fn from_i64(v: i64) -> Self {
        v != 0
    }
}

/// Applies `$body` to the array inside any numeric or bool tensor, with `$T` bound to the
/// element type (a [`Scalar`]). Evaluates to `Err` for string tensors.
#[macro_export]
macro_rules! with_scalar_array {
    ($t:expr, $a:ident, $T:ident => $body:expr) => {
        match $t {
            $crate::tensor::Tensor::F32($a) => { type $T = f32; Ok($body) }
            $crate::tensor::Tensor::F64($a) => { type $T = f64; Ok($body) }
            $crate::tensor::Tensor::F16($a) => { type $T = $crate::tensor::f16; Ok($body) }
            $crate::tensor::Tensor::BF16($a) => { type $T = $crate::tensor::bf16; Ok($body) }
            $crate::tensor::Tensor::I8($a) => { type $T = i8; Ok($body) }
            $crate::tensor::Tensor::I16($a) => { type $T = i16; Ok($body) }
            $crate::tensor::Tensor::I32($a) => { type $T = i32; Ok($body) }
            $crate::tensor::Tensor::I64($a) => { type $T = i64; Ok($body) }
            $crate::tensor::Tensor::U8($a) => { type $T = u8; Ok($body) }
            $crate::tensor::Tensor::U16($a) => { type $T = u16; Ok($body) }
            $crate::tensor::Tensor::U32($a) => { type $T = u32; Ok($body) }
            $crate::tensor::Tensor::U64($a) => { type $T = u64; Ok($body) }
            $crate::tensor::Tensor::Bool($a) => { type $T = bool; Ok($body) }
            $crate::tensor::Tensor::Str(_) => Err(::anyhow::anyhow!("string tensors are not supported here")),
            $crate::tensor::Tensor::Low(d, _) => Err(::anyhow::anyhow!("{} tensors are not supported here", d)),
        }
    };
}

impl Tensor {
    pub fn dtype(&self) -> DType {
        match self {
            Tensor::F32(_) => DType::F32,
            Tensor::F64(_) => DType::F64,
            Tensor::F16(_) => DType::F16,
            Tensor::BF16(_) => DType::BF16,
            Tensor::I8(_) => DType::I8,
            Tensor::I16(_) => DType::I16,
            Tensor::I32(_) => DType::I32,
            Tensor::I64(_) => DType::I64,
            Tensor::U8(_) => DType::U8,
            Tensor::U16(_) => DType::U16,
            Tensor::U32(_) => DType::U32,
            Tensor::U64(_) => DType::U64,
            Tensor::Bool(_) => DType::Bool,
            Tensor::Str(_) => DType::String,
            Tensor::Low(d, _) => *d,
        }
    }

    pub fn shape(&self) -> &[usize] {
        with_array!(self, a => a.shape())
    }

    pub fn rank(&self) -> usize {
        self.shape().len()
    }

    pub fn len(&self) -> usize {
        self.shape().iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn from_array<T: Elem>(a: ArrayD<T>) -> Tensor {
        T::wrap(a)
    }

    pub fn from_vec<T: Elem>(shape: &[usize], data: Vec<T>) -> Result<Tensor> {
        let n = data.len();
        let a = ArrayD::from_shape_vec(IxDyn(shape), data)
            .map_err(|_| anyhow!("{n} values do not fill shape {shape:?}"))?;
        Ok(T::wrap(a))
    }

    pub fn scalar<T: Elem>(v: T) -> Tensor {
        T::wrap(ArrayD::from_elem(IxDyn(&[]), v))
    }

    /// A tensor of `dtype` and `shape` filled with zeros (false, "").
    pub fn zeros(dtype: DType, shape: &[usize]) -> Result<Tensor> {
        match dtype {
            DType::String => Ok(Tensor::Str(ArrayD::default(IxDyn(shape)))),
            // Code 0 is +0 for every low type except f8e8m0, which has no zero (code 0 is 2^-127).
            d if d.is_low() => Ok(Tensor::Low(d, ArrayD::zeros(IxDyn(shape)))),
            d => Tensor::from_f64_array(d, ArrayD::zeros(IxDyn(shape))),
        }
    }

    /// Borrows the array if the tensor holds `T`.
    pub fn as_array<T: Elem>(&self) -> Result<&ArrayD<T>> {
        T::unwrap_ref(self).ok_or_else(|| anyhow!("expected a {} tensor, got {}", T::DTYPE, self.dtype()))
    }

    pub fn into_array<T: Elem>(self) -> Result<ArrayD<T>> {
        T::unwrap(self).map_err(|t| anyhow!("expected a {} tensor, got {}", T::DTYPE, t.dtype()))
    }

    /// Every element converted to `f64` (bool → 0/1). Fails for strings.
    pub fn to_f64_array(&self) -> Result<ArrayD<f64>> {
        with_scalar_array!(self, a, T => a.mapv(|v: T| v.to_f64()))
    }

    /// Builds a tensor of `dtype` from `f64` values (Rust `as` conversion semantics).
    pub fn from_f64_array(dtype: DType, a: ArrayD<f64>) -> Result<Tensor> {
        Ok(match dtype {
            DType::F32 => Tensor::F32(a.mapv(|v| v as f32)),
            DType::F64 => Tensor::F64(a),
            DType::F16 => Tensor::F16(a.mapv(f16::from_f64)),
            DType::BF16 => Tensor::BF16(a.mapv(bf16::from_f64)),
            DType::I8 => Tensor::I8(a.mapv(|v| v as i8)),
            DType::I16 => Tensor::I16(a.mapv(|v| v as i16)),
            DType::I32 => Tensor::I32(a.mapv(|v| v as i32)),
            DType::I64 => Tensor::I64(a.mapv(|v| v as i64)),
            DType::U8 => Tensor::U8(a.mapv(|v| v as u8)),
            DType::U16 => Tensor::U16(a.mapv(|v| v as u16)),
            DType::U32 => Tensor::U32(a.mapv(|v| v as u32)),
            DType::U64 => Tensor::U64(a.mapv(|v| v as u64)),
            DType::Bool => Tensor::Bool(a.mapv(|v| v != 0.0)),
            other => bail!("cannot build a {other} tensor from numbers"),
        })
    }

    /// Every element as `i64` (exact for all integer types). For shape, axes and index inputs.
    pub fn to_i64_vec(&self) -> Result<Vec<i64>> {
        with_scalar_array!(self, a, T => a.iter().map(|v: &T| v.to_i64()).collect())
    }

    pub fn to_f64_vec(&self) -> Result<Vec<f64>> {
        Ok(self.to_f64_array()?.iter().copied().collect())
    }

    /// The single value of a one-element tensor, as `i64`.
    pub fn scalar_i64(&self) -> Result<i64> {
        let v = self.to_i64_vec()?;
        match v.as_slice() {
            [x] => Ok(*x),
            _ => bail!("expected a single value, got shape {:?}", self.shape()),
        }
    }

    pub fn scalar_f64(&self) -> Result<f64> {
        let v = self.to_f64_vec()?;
        match v.as_slice() {
            [x] => Ok(*x),
            _ => bail!("expected a single value, got shape {:?}", self.shape()),
        }
    }

    /// Converts to `dtype` with Rust `as` semantics (integers convert exactly between integer
    /// types where the value fits; float → int truncates).
    pub fn cast(&self, dtype: DType) -> Result<Tensor> {
        if self.dtype() == dtype {
            return Ok(self.clone());
        }
        // Integer → integer goes through i64/u64 to stay exact beyond 2^53.
        if self.dtype().is_int() && dtype.is_int() {
            if self.dtype() == DType::U64 {
                let a = self.as_array::<u64>()?;
                return Tensor::from_i64_array(dtype, a.mapv(|v| v as i64));
            }
            let a = with_scalar_array!(self, a, T => a.mapv(|v: T| v.to_i64()))?;
            return Tensor::from_i64_array(dtype, a);
        }
        Tensor::from_f64_array(dtype, self.to_f64_array()?)
    }

    fn from_i64_array(dtype: DType, a: ArrayD<i64>) -> Result<Tensor> {
        Ok(match dtype {
            DType::I8 => Tensor::I8(a.mapv(|v| v as i8)),
            DType::I16 => Tensor::I16(a.mapv(|v| v as i16)),
            DType::I32 => Tensor::I32(a.mapv(|v| v as i32)),
            DType::I64 => Tensor::I64(a),
            DType::U8 => Tensor::U8(a.mapv(|v| v as u8)),
            DType::U16 => Tensor::U16(a.mapv(|v| v as u16)),
            DType::U32 => Tensor::U32(a.mapv(|v| v as u32)),
            DType::U64 => Tensor::U64(a.mapv(|v| v as u64)),
            other => return Tensor::from_f64_array(other, a.mapv(|v| v as f64)),
        })
    }

    /// Same data, new shape (row-major). The element count must match.
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        if n != self.len() {
            bail!("cannot reshape {:?} ({} values) to {:?}", self.shape(), self.len(), shape);
        }
        try_map_array!(self, a => {
            let v: Vec<_> = a.iter().cloned().collect();
            ArrayD::from_shape_vec(IxDyn(shape), v).map_err(anyhow::Error::from)
        })
    }

    /// Makes the data standard (row-major) layout.
    pub fn into_standard(self) -> Tensor {
        map_array!(self, a => if a.is_standard_layout() { a } else { a.as_standard_layout().into_owned() })
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{:?}", self.dtype(), self.shape())?;
        if self.len() <= 16 {
            with_array!(self, a => write!(f, " {:?}", a.iter().collect::<Vec<_>>()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cast_is_exact_for_large_integers() {
        let t = Tensor::from_vec(&[2], vec![i64::MAX, -3]).unwrap();
        let u = t.cast(DType::U64).unwrap().cast(DType::I64).unwrap();
        assert_eq!(u, t);
    }

    #[test]
    fn float_to_int_truncates() {
        let t = Tensor::from_vec(&[3], vec![1.7f32, -1.7, 0.2]).unwrap();
        assert_eq!(t.cast(DType::I32).unwrap(), Tensor::from_vec(&[3], vec![1i32, -1, 0]).unwrap());
    }

    #[test]
    fn zeros_for_every_dtype() {
        for code in 1..=26 {
            let d = DType::from_onnx_i32(code).unwrap();
            assert_eq!(Tensor::zeros(d, &[2, 3]).is_ok(), !d.is_complex(), "{d}");
        }
    }
}
