//! The runtime's small tensor types: an element type ([`DType`], ONNX's codes), an owned
//! [`Tensor`], and the borrowed views [`TensorRef`] and [`TensorMut`] that
//! [`crate::Model::run_into`] takes. Data is dense, row-major, little-endian raw bytes,
//! except for [`DType::String`] tensors, which hold one Rust `String` per element (compiled
//! code sees them as handles into a per-run string heap; see [`crate::kernels::strings`]).

use std::fmt;

pub use crate::dtype::DType;
use crate::sys::{self, AlignedBuf};

/// The number of elements of `shape`, or `None` on overflow.
pub fn numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

/// Bytes of a dense tensor of `dtype` and `shape`, or `None` if it cannot be addressed.
pub fn byte_len(dtype: DType, shape: &[usize]) -> Option<usize> {
    dtype.byte_len(numel(shape)?).filter(|&n| n <= isize::MAX as usize)
}

/// Formats a shape as `[1, 3, 224, 224]`.
pub(crate) struct ShapeDisplay<'a>(pub &'a [usize]);

impl fmt::Display for ShapeDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// Plain numeric element types whose bytes can be viewed as a typed slice and back.
/// Sealed: implemented for the primitive integers and floats only.
pub trait Element: sys::Pod {
    const DTYPE: DType;
}

macro_rules! element {
    ($($t:ty => $d:ident),* $(,)?) => {
        $(impl Element for $t { const DTYPE: DType = DType::$d; })*
    };
}
element!(f32 => F32, f64 => F64, i8 => I8, u8 => U8, i16 => I16, u16 => U16,
         i32 => I32, u32 => U32, i64 => I64, u64 => U64);

/// Errors building or viewing a tensor.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TensorError {
    #[error("a {dtype} tensor of shape {} needs {expected} bytes, got {got}", ShapeDisplay(shape))]
    Length { dtype: DType, shape: Vec<usize>, expected: usize, got: usize },
    #[error("shape {} of {dtype} is too large to address", ShapeDisplay(shape))]
    TooLarge { dtype: DType, shape: Vec<usize> },
    #[error("tensor holds {actual}, not {requested}")]
    DType { actual: DType, requested: DType },
    #[error("out of memory allocating {bytes} bytes for a tensor")]
    OutOfMemory { bytes: usize },
    #[error("a string tensor of shape {} needs {expected} strings, got {got}", ShapeDisplay(shape))]
    StringCount { shape: Vec<usize>, expected: usize, got: usize },
    #[error("string tensors hold strings, not raw bytes; use the *_strings methods")]
    StringsNotBytes,
}

fn checked_len(dtype: DType, shape: &[usize]) -> Result<usize, TensorError> {
    byte_len(dtype, shape).ok_or_else(|| TensorError::TooLarge { dtype, shape: shape.to_vec() })
}

fn check_len(dtype: DType, shape: &[usize], got: usize) -> Result<(), TensorError> {
    if dtype.is_string() {
        return Err(TensorError::StringsNotBytes);
    }
    let expected = checked_len(dtype, shape)?;
    if expected != got {
        return Err(TensorError::Length { dtype, shape: shape.to_vec(), expected, got });
    }
    Ok(())
}

fn check_count(shape: &[usize], got: usize) -> Result<(), TensorError> {
    let expected = checked_len(DType::String, shape)? / 8;
    if expected != got {
        return Err(TensorError::StringCount { shape: shape.to_vec(), expected, got });
    }
    Ok(())
}

/// An owned tensor's elements.
#[derive(Clone, PartialEq, Eq)]
enum Data {
    Bytes(AlignedBuf),
    Strings(Vec<String>),
}

/// An owned tensor. Its bytes are 64-byte aligned; a string tensor holds `String`s.
#[derive(Clone, PartialEq, Eq)]
pub struct Tensor {
    dtype: DType,
    shape: Vec<usize>,
    data: Data,
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.data {
            Data::Bytes(b) => write!(f, "Tensor({} {}, {} bytes)", self.dtype, ShapeDisplay(&self.shape), b.len()),
            Data::Strings(s) => write!(f, "Tensor({} {}, {:?})", self.dtype, ShapeDisplay(&self.shape), s),
        }
    }
}

impl Tensor {
    /// A tensor of zero bytes (of empty strings for [`DType::String`]).
    pub fn zeros(dtype: DType, shape: impl Into<Vec<usize>>) -> Result<Tensor, TensorError> {
        let shape = shape.into();
        let len = checked_len(dtype, &shape)?;
        if dtype.is_string() {
            let mut v = Vec::new();
            v.try_reserve_exact(len / 8).map_err(|_| TensorError::OutOfMemory { bytes: len })?;
            v.resize(len / 8, String::new());
            return Ok(Tensor { dtype, shape, data: Data::Strings(v) });
        }
        let data = AlignedBuf::zeroed(len).ok_or(TensorError::OutOfMemory { bytes: len })?;
        Ok(Tensor { dtype, shape, data: Data::Bytes(data) })
    }

    /// A string tensor, e.g. `Tensor::from_strings([2], vec!["a".into(), "b".into()])`;
    /// the number of strings must match the shape.
    pub fn from_strings(shape: impl Into<Vec<usize>>, values: Vec<String>) -> Result<Tensor, TensorError> {
        let shape = shape.into();
        check_count(&shape, values.len())?;
        Ok(Tensor { dtype: DType::String, shape, data: Data::Strings(values) })
    }

    /// The elements of a string tensor; an error for other dtypes.
    pub fn as_strings(&self) -> Result<&[String], TensorError> {
        match &self.data {
            Data::Strings(s) => Ok(s),
            Data::Bytes(_) => Err(TensorError::DType { actual: self.dtype, requested: DType::String }),
        }
    }

    pub fn as_strings_mut(&mut self) -> Result<&mut [String], TensorError> {
        match &mut self.data {
            Data::Strings(s) => Ok(s),
            Data::Bytes(_) => Err(TensorError::DType { actual: self.dtype, requested: DType::String }),
        }
    }

    /// A tensor from raw little-endian bytes (copied); the length must match the shape.
    pub fn from_bytes(dtype: DType, shape: impl Into<Vec<usize>>, bytes: &[u8]) -> Result<Tensor, TensorError> {
        let shape = shape.into();
        check_len(dtype, &shape, bytes.len())?;
        let mut data = AlignedBuf::zeroed(bytes.len()).ok_or(TensorError::OutOfMemory { bytes: bytes.len() })?;
        data.as_mut_slice().copy_from_slice(bytes);
        Ok(Tensor { dtype, shape, data: Data::Bytes(data) })
    }

    /// A tensor from typed values (copied into aligned storage).
    pub fn from_slice<T: Element>(shape: impl Into<Vec<usize>>, values: &[T]) -> Result<Tensor, TensorError> {
        Tensor::from_bytes(T::DTYPE, shape, sys::bytes_of(values))
    }

    /// A tensor from a `Vec` of typed values, e.g. `Tensor::from_vec([2, 2], vec![1f32, 2., 3., 4.])`.
    pub fn from_vec<T: Element>(shape: impl Into<Vec<usize>>, values: Vec<T>) -> Result<Tensor, TensorError> {
        Tensor::from_slice(shape, &values)
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The raw bytes; empty for a string tensor (see [`Tensor::as_strings`]).
    pub fn bytes(&self) -> &[u8] {
        match &self.data {
            Data::Bytes(b) => b.as_slice(),
            Data::Strings(_) => &[],
        }
    }

    /// The raw bytes; empty for a string tensor (see [`Tensor::as_strings_mut`]).
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        match &mut self.data {
            Data::Bytes(b) => b.as_mut_slice(),
            Data::Strings(_) => &mut [],
        }
    }

    /// The values as `&[T]`; an error if `T` is not this tensor's type.
    pub fn as_slice<T: Element>(&self) -> Result<&[T], TensorError> {
        self.check_type::<T>()?;
        Ok(sys::cast_slice(self.bytes()).expect("tensor storage is 64-byte aligned"))
    }

    pub fn as_slice_mut<T: Element>(&mut self) -> Result<&mut [T], TensorError> {
        self.check_type::<T>()?;
        Ok(sys::cast_slice_mut(self.bytes_mut()).expect("tensor storage is 64-byte aligned"))
    }

    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>, TensorError> {
        self.as_slice().map(<[T]>::to_vec)
    }

    fn check_type<T: Element>(&self) -> Result<(), TensorError> {
        if T::DTYPE != self.dtype {
            return Err(TensorError::DType { actual: self.dtype, requested: T::DTYPE });
        }
        Ok(())
    }

    pub fn view(&self) -> TensorRef<'_> {
        let data = match &self.data {
            Data::Bytes(b) => RefData::Bytes(b.as_slice()),
            Data::Strings(s) => RefData::Strings(s),
        };
        TensorRef { dtype: self.dtype, shape: &self.shape, data }
    }

    pub fn view_mut(&mut self) -> TensorMut<'_> {
        let data = match &mut self.data {
            Data::Bytes(b) => MutData::Bytes(b.as_mut_slice()),
            Data::Strings(s) => MutData::Strings(s),
        };
        TensorMut { dtype: self.dtype, shape: &self.shape, data }
    }
}

#[derive(Clone, Copy, Debug)]
enum RefData<'a> {
    Bytes(&'a [u8]),
    Strings(&'a [String]),
}

#[derive(Debug)]
enum MutData<'a> {
    Bytes(&'a mut [u8]),
    Strings(&'a mut [String]),
}

/// A borrowed input tensor. The byte length (or string count) always matches the shape.
#[derive(Clone, Copy, Debug)]
pub struct TensorRef<'a> {
    dtype: DType,
    shape: &'a [usize],
    data: RefData<'a>,
}

impl<'a> TensorRef<'a> {
    /// A view of raw bytes (not for strings: see [`TensorRef::from_strings`]).
    pub fn new(dtype: DType, shape: &'a [usize], bytes: &'a [u8]) -> Result<TensorRef<'a>, TensorError> {
        check_len(dtype, shape, bytes.len())?;
        Ok(TensorRef { dtype, shape, data: RefData::Bytes(bytes) })
    }

    /// A view of strings; the count must match the shape.
    pub fn from_strings(shape: &'a [usize], values: &'a [String]) -> Result<TensorRef<'a>, TensorError> {
        check_count(shape, values.len())?;
        Ok(TensorRef { dtype: DType::String, shape, data: RefData::Strings(values) })
    }

    /// The strings of a string tensor (`None` for other dtypes).
    pub fn strings(&self) -> Option<&'a [String]> {
        match self.data {
            RefData::Strings(s) => Some(s),
            RefData::Bytes(_) => None,
        }
    }

    pub fn from_slice<T: Element>(shape: &'a [usize], values: &'a [T]) -> Result<TensorRef<'a>, TensorError> {
        TensorRef::new(T::DTYPE, shape, sys::bytes_of(values))
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn shape(&self) -> &'a [usize] {
        self.shape
    }

    /// The raw bytes; empty for a string tensor.
    pub fn bytes(&self) -> &'a [u8] {
        match self.data {
            RefData::Bytes(b) => b,
            RefData::Strings(_) => &[],
        }
    }
}

/// A borrowed output buffer. The byte length (or string count) always matches the shape.
#[derive(Debug)]
pub struct TensorMut<'a> {
    dtype: DType,
    shape: &'a [usize],
    data: MutData<'a>,
}

impl<'a> TensorMut<'a> {
    /// A view of raw bytes (not for strings: see [`TensorMut::from_strings`]).
    pub fn new(dtype: DType, shape: &'a [usize], bytes: &'a mut [u8]) -> Result<TensorMut<'a>, TensorError> {
        check_len(dtype, shape, bytes.len())?;
        Ok(TensorMut { dtype, shape, data: MutData::Bytes(bytes) })
    }

    /// A view of strings to be overwritten; the count must match the shape.
    pub fn from_strings(shape: &'a [usize], values: &'a mut [String]) -> Result<TensorMut<'a>, TensorError> {
        check_count(shape, values.len())?;
        Ok(TensorMut { dtype: DType::String, shape, data: MutData::Strings(values) })
    }

    /// A shorter-lived view of the same buffer.
    pub(crate) fn reborrow(&mut self) -> TensorMut<'_> {
        let data = match &mut self.data {
            MutData::Bytes(b) => MutData::Bytes(b),
            MutData::Strings(s) => MutData::Strings(s),
        };
        TensorMut { dtype: self.dtype, shape: self.shape, data }
    }

    /// The strings of a string tensor (`None` for other dtypes).
    pub fn strings_mut(&mut self) -> Option<&mut [String]> {
        match &mut self.data {
            MutData::Strings(s) => Some(s),
            MutData::Bytes(_) => None,
        }
    }

    pub fn from_slice<T: Element>(shape: &'a [usize], values: &'a mut [T]) -> Result<TensorMut<'a>, TensorError> {
        TensorMut::new(T::DTYPE, shape, sys::bytes_of_mut(values))
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn shape(&self) -> &[usize] {
        self.shape
    }

    /// The raw bytes; empty for a string tensor.
    pub fn bytes(&self) -> &[u8] {
        match &self.data {
            MutData::Bytes(b) => b,
            MutData::Strings(_) => &[],
        }
    }

    /// The raw bytes; empty for a string tensor.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        match &mut self.data {
            MutData::Bytes(b) => b,
            MutData::Strings(_) => &mut [],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for code in 0..40 {
            if let Some(d) = DType::from_onnx(code) {
                assert_eq!(d.onnx_code(), code);
            }
        }
        assert_eq!(DType::from_onnx(8), Some(DType::String));
    }

    #[test]
    fn byte_lengths() {
        assert_eq!(byte_len(DType::F32, &[2, 3]), Some(24));
        assert_eq!(byte_len(DType::I4, &[3]), Some(2));
        assert_eq!(byte_len(DType::U2, &[5]), Some(2));
        assert_eq!(byte_len(DType::F32, &[]), Some(4));
        assert_eq!(byte_len(DType::F32, &[0, 7]), Some(0));
        assert_eq!(byte_len(DType::F64, &[usize::MAX, 2]), None);
        assert_eq!(byte_len(DType::U8, &[usize::MAX]), None);
    }

    #[test]
    fn typed_round_trip() {
        let t = Tensor::from_vec([2, 2], vec![1f32, 2., 3., 4.]).unwrap();
        assert_eq!(t.dtype(), DType::F32);
        assert_eq!(t.as_slice::<f32>().unwrap(), &[1., 2., 3., 4.]);
        assert_eq!(t.bytes().as_ptr() as usize % 64, 0);
        assert!(matches!(t.as_slice::<i32>(), Err(TensorError::DType { .. })));
        assert!(matches!(Tensor::from_vec([3], vec![1f32, 2.]), Err(TensorError::Length { expected: 12, got: 8, .. })));
    }

    #[test]
    fn string_tensors() {
        let t = Tensor::from_strings([2], vec!["a".into(), "bé".into()]).unwrap();
        assert_eq!(t.dtype(), DType::String);
        assert_eq!(t.as_strings().unwrap(), &["a", "bé"]);
        assert!(t.bytes().is_empty());
        assert!(matches!(t.as_slice::<u64>(), Err(TensorError::DType { .. })));
        assert_eq!(t.view().strings().unwrap().len(), 2);
        assert!(matches!(Tensor::from_strings([3], vec![]), Err(TensorError::StringCount { expected: 3, got: 0, .. })));
        assert_eq!(Tensor::from_bytes(DType::String, [1], &[0; 8]), Err(TensorError::StringsNotBytes));
        assert_eq!(Tensor::zeros(DType::String, [2, 1]).unwrap().as_strings().unwrap(), &["", ""]);
        let f = Tensor::from_vec([1], vec![1f32]).unwrap();
        assert!(matches!(f.as_strings(), Err(TensorError::DType { .. })));
    }
}
