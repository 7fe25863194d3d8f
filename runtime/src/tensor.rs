//! The runtime's small tensor types: an element type ([`DType`], ONNX's codes), an owned
//! [`Tensor`], and the borrowed views [`TensorRef`] and [`TensorMut`] that
//! [`crate::Model::run_into`] takes. Data is dense, row-major, little-endian raw bytes,
//! except for [`DType::String`] tensors, which hold one Rust `String` per element (compiled
//! code sees them as handles into a per-run string heap; see [`crate::kernels::strings`]).

use std::fmt;

use crate::sys::{self, AlignedBuf};

/// Element types. The numeric codes are ONNX's `TensorProto.DataType` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    U8,
    I8,
    U16,
    I16,
    I32,
    I64,
    Bool,
    F16,
    F64,
    U32,
    U64,
    Complex64,
    Complex128,
    BF16,
    F8E4M3FN,
    F8E4M3FNUZ,
    F8E5M2,
    F8E5M2FNUZ,
    U4,
    I4,
    F4E2M1,
    F8E8M0,
    U2,
    I2,
    /// UTF-8 strings (ONNX code 8). A string tensor's elements are `String`s, not bytes.
    String,
}

impl DType {
    /// From ONNX's `TensorProto.DataType` code; `None` for unknown codes.
    pub fn from_onnx(code: u32) -> Option<DType> {
        use DType::*;
        Some(match code {
            1 => F32,
            2 => U8,
            3 => I8,
            4 => U16,
            5 => I16,
            6 => I32,
            7 => I64,
            9 => Bool,
            10 => F16,
            11 => F64,
            12 => U32,
            13 => U64,
            14 => Complex64,
            15 => Complex128,
            16 => BF16,
            17 => F8E4M3FN,
            18 => F8E4M3FNUZ,
            19 => F8E5M2,
            20 => F8E5M2FNUZ,
            21 => U4,
            22 => I4,
            23 => F4E2M1,
            24 => F8E8M0,
            25 => U2,
            26 => I2,
            8 => String,
            _ => return None,
        })
    }

    pub fn onnx_code(self) -> u32 {
        use DType::*;
        match self {
            F32 => 1,
            U8 => 2,
            I8 => 3,
            U16 => 4,
            I16 => 5,
            I32 => 6,
            I64 => 7,
            Bool => 9,
            F16 => 10,
            F64 => 11,
            U32 => 12,
            U64 => 13,
            Complex64 => 14,
            Complex128 => 15,
            BF16 => 16,
            F8E4M3FN => 17,
            F8E4M3FNUZ => 18,
            F8E5M2 => 19,
            F8E5M2FNUZ => 20,
            U4 => 21,
            I4 => 22,
            F4E2M1 => 23,
            F8E8M0 => 24,
            U2 => 25,
            I2 => 26,
            String => 8,
        }
    }

    /// The short name the compiler uses too (`f32`, `i64`, `bf16`, ...).
    pub fn name(self) -> &'static str {
        use DType::*;
        match self {
            F32 => "f32",
            U8 => "u8",
            I8 => "i8",
            U16 => "u16",
            I16 => "i16",
            I32 => "i32",
            I64 => "i64",
            Bool => "bool",
            F16 => "f16",
            F64 => "f64",
            U32 => "u32",
            U64 => "u64",
            Complex64 => "complex64",
            Complex128 => "complex128",
            BF16 => "bf16",
            F8E4M3FN => "f8e4m3fn",
            F8E4M3FNUZ => "f8e4m3fnuz",
            F8E5M2 => "f8e5m2",
            F8E5M2FNUZ => "f8e5m2fnuz",
            U4 => "u4",
            I4 => "i4",
            F4E2M1 => "f4e2m1",
            F8E8M0 => "f8e8m0",
            U2 => "u2",
            I2 => "i2",
            String => "string",
        }
    }

    /// Bits per element. Sub-byte types (4 and 2 bits) are packed as ONNX packs them,
    /// the first element in the low bits of the first byte. A string element is 64 bits
    /// in compiled memory: one handle into the run's string heap.
    pub fn bits(self) -> usize {
        use DType::*;
        match self {
            U2 | I2 => 2,
            U4 | I4 | F4E2M1 => 4,
            U8 | I8 | Bool | F8E4M3FN | F8E4M3FNUZ | F8E5M2 | F8E5M2FNUZ | F8E8M0 => 8,
            U16 | I16 | F16 | BF16 => 16,
            F32 | I32 | U32 => 32,
            F64 | I64 | U64 | Complex64 | String => 64,
            Complex128 => 128,
        }
    }

    /// The alignment the runtime guarantees (and asks of callers) for a buffer of this type:
    /// the size of one scalar component.
    pub fn align(self) -> usize {
        match self {
            DType::Complex64 => 4,
            DType::Complex128 => 8,
            d => (d.bits() / 8).max(1),
        }
    }

    /// Whether elements are strings (not raw bytes).
    pub fn is_string(self) -> bool {
        self == DType::String
    }

    /// Bytes needed for `numel` elements, or `None` on overflow (for strings: the bytes
    /// of their handles in compiled memory).
    pub fn byte_len(self, numel: usize) -> Option<usize> {
        let bits = numel.checked_mul(self.bits())?;
        Some(bits.div_ceil(8))
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

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
