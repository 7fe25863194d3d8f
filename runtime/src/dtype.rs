//! Element types: the one table of them, shared by the runtime and the compiler.
//!
//! The variants are in the order of ONNX's `TensorProto.DataType` codes, which they carry
//! ([`DType::onnx_code`]); the short names ([`DType::name`]) are the ones the compiler's
//! text forms and every message use. Facts about a type (its width, whether it is a float,
//! how it is stored) live here and nowhere else; the compiler adds only what concerns its own
//! tensor type.

use std::fmt;

/// Element types. The numeric codes are ONNX's `TensorProto.DataType` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    F32,
    U8,
    I8,
    U16,
    I16,
    I32,
    I64,
    /// UTF-8 strings (ONNX code 8). A string tensor's elements are `String`s, not bytes.
    String,
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
}

/// Every type with its ONNX code and short name: the table the methods below read.
const TABLE: [(DType, u32, &str); 26] = {
    use DType::*;
    [
        (F32, 1, "f32"),
        (U8, 2, "u8"),
        (I8, 3, "i8"),
        (U16, 4, "u16"),
        (I16, 5, "i16"),
        (I32, 6, "i32"),
        (I64, 7, "i64"),
        (String, 8, "string"),
        (Bool, 9, "bool"),
        (F16, 10, "f16"),
        (F64, 11, "f64"),
        (U32, 12, "u32"),
        (U64, 13, "u64"),
        (Complex64, 14, "complex64"),
        (Complex128, 15, "complex128"),
        (BF16, 16, "bf16"),
        (F8E4M3FN, 17, "f8e4m3fn"),
        (F8E4M3FNUZ, 18, "f8e4m3fnuz"),
        (F8E5M2, 19, "f8e5m2"),
        (F8E5M2FNUZ, 20, "f8e5m2fnuz"),
        (U4, 21, "u4"),
        (I4, 22, "i4"),
        (F4E2M1, 23, "f4e2m1"),
        (F8E8M0, 24, "f8e8m0"),
        (U2, 25, "u2"),
        (I2, 26, "i2"),
    ]
};

// The table is in variant order, so a variant's index is its row.
const _: () = {
    let mut i = 0;
    while i < TABLE.len() {
        assert!(TABLE[i].0 as usize == i && TABLE[i].1 as usize == i + 1);
        i += 1;
    }
};

impl DType {
    /// Every type, in ONNX code order.
    pub const ALL: [DType; 26] = {
        let mut all = [DType::F32; 26];
        let mut i = 0;
        while i < TABLE.len() {
            all[i] = TABLE[i].0;
            i += 1;
        }
        all
    };

    /// From ONNX's `TensorProto.DataType` code; `None` for unknown codes.
    pub fn from_onnx(code: u32) -> Option<DType> {
        TABLE.iter().find(|r| r.1 == code).map(|r| r.0)
    }

    /// From a code as a protobuf enum field holds it (an `i32`); `None` for unknown codes.
    pub fn from_onnx_i32(code: i32) -> Option<DType> {
        u32::try_from(code).ok().and_then(DType::from_onnx)
    }

    pub fn onnx_code(self) -> u32 {
        TABLE[self as usize].1
    }

    /// The short name used in text forms and messages (`f32`, `i64`, `bf16`, `string`, ...).
    pub fn name(self) -> &'static str {
        TABLE[self as usize].2
    }

    /// The type whose [`DType::name`] is `s`.
    pub fn from_name(s: &str) -> Option<DType> {
        TABLE.iter().find(|r| r.2 == s).map(|r| r.0)
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

    /// Bytes per element of raw data; `None` for strings (not raw bytes) and the packed
    /// sub-byte types.
    pub fn size_of(self) -> Option<usize> {
        match self {
            DType::String => None,
            d if d.bits() < 8 => None,
            d => Some(d.bits() / 8),
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

    /// The 8-, 4- and 2-bit types other than `u8`, `i8` and `bool`: the f8 and f4 floats
    /// and the 4- and 2-bit integers (the kernels in [`crate::kernels::lowbit`]).
    pub fn is_low(self) -> bool {
        use DType::*;
        matches!(self, F8E4M3FN | F8E4M3FNUZ | F8E5M2 | F8E5M2FNUZ | F8E8M0 | F4E2M1 | U4 | I4 | U2 | I2)
    }

    /// Floats stored as a code the runtime decodes and encodes (the f8 and f4 types; they
    /// compute in f32).
    pub fn is_coded_float(self) -> bool {
        use DType::*;
        matches!(self, F8E4M3FN | F8E4M3FNUZ | F8E5M2 | F8E5M2FNUZ | F8E8M0 | F4E2M1)
    }

    /// Bits per element of the packed sub-byte types (4 or 2), `None` for the others.
    pub fn packed_bits(self) -> Option<i64> {
        (self.bits() < 8).then_some(self.bits() as i64)
    }

    pub fn is_float(self) -> bool {
        use DType::*;
        matches!(self, F32 | F64 | F16 | BF16 | F8E4M3FN | F8E4M3FNUZ | F8E5M2 | F8E5M2FNUZ | F4E2M1 | F8E8M0)
    }

    pub fn is_signed_int(self) -> bool {
        matches!(self, DType::I8 | DType::I16 | DType::I32 | DType::I64 | DType::I4 | DType::I2)
    }

    pub fn is_unsigned_int(self) -> bool {
        matches!(self, DType::U8 | DType::U16 | DType::U32 | DType::U64 | DType::U4 | DType::U2)
    }

    pub fn is_int(self) -> bool {
        self.is_signed_int() || self.is_unsigned_int()
    }

    pub fn is_numeric(self) -> bool {
        self.is_float() || self.is_int()
    }

    pub fn is_complex(self) -> bool {
        matches!(self, DType::Complex64 | DType::Complex128)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names_round_trip() {
        for d in DType::ALL {
            assert_eq!(DType::from_onnx(d.onnx_code()), Some(d));
            assert_eq!(DType::from_onnx_i32(d.onnx_code() as i32), Some(d));
            assert_eq!(DType::from_name(d.name()), Some(d));
        }
        assert_eq!(DType::from_onnx(0), None);
        assert_eq!(DType::from_onnx(27), None);
        assert_eq!(DType::from_onnx_i32(-1), None);
        assert_eq!(DType::from_name("float"), None);
    }

    #[test]
    fn widths() {
        assert_eq!(DType::F32.size_of(), Some(4));
        assert_eq!(DType::I4.size_of(), None);
        assert_eq!(DType::String.size_of(), None);
        assert_eq!(DType::I4.byte_len(3), Some(2));
        assert_eq!(DType::U2.byte_len(5), Some(2));
        assert_eq!(DType::F32.byte_len(usize::MAX), None);
    }
}
