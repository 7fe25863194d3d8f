//! Conversions for the low-precision element types: the 8-bit floats (f8e4m3fn, f8e4m3fnuz,
//! f8e5m2, f8e5m2fnuz, f8e8m0), the 4-bit float f4e2m1 and the 4/2-bit integers (i4, u4, i2,
//! u2). This is the one place their rules live: compiled code calls them through
//! [`KernelTable::low_decode`](crate::abi::KernelTable::low_decode) /
//! [`low_encode`](crate::abi::KernelTable::low_encode), and the compiler's reference
//! evaluator calls the same functions.
//!
//! A code is one element, unpacked: a 4-bit or 2-bit value sits in the low bits of its byte
//! (two's complement for the signed integers).
//!
//! Semantics follow the ONNX reference implementation, i.e. `ml_dtypes` (as used by
//! `onnx.numpy_helper.saturate_cast` and `onnx/reference/ops/op_cast.py`):
//! - floats round to nearest, ties to even, from the `f32` value (ml_dtypes rounds an `f64`
//!   through `f32` first, so callers converting `f64` pass `v as f32`);
//! - `saturate` (the f8 types): out-of-range values and ±inf become ±max; without it they
//!   become NaN (fn/fnuz) or ±inf (e5m2). f4e2m1 has neither inf nor NaN and always
//!   saturates; a NaN becomes a zero of the opposite sign (what ml_dtypes does);
//! - f8e8m0 follows `onnx.numpy_helper.to_float8e8m0` (sign ignored, rounding mode choosable);
//! - integers: [`encode`] rounds to nearest even, then clamps (`saturate`, what quantisation
//!   wants) or keeps the low bits; [`int_code`] keeps the low bits of an exact integer (what
//!   Cast does: ml_dtypes truncates a float toward zero and wraps).

use crate::abi::{LOW_ROUND_DOWN, LOW_ROUND_NEAREST, LOW_ROUND_UP, LOW_SATURATE};
use crate::tensor::DType;

/// Rounding mode for conversions to f8e8m0 (Cast's `round_mode` attribute).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RoundMode {
    Up,
    Down,
    Nearest,
}

impl RoundMode {
    /// The round-mode bits of a [`crate::abi::LowEncodeFn`] `flags` argument.
    pub fn flags(self) -> u32 {
        match self {
            RoundMode::Up => LOW_ROUND_UP,
            RoundMode::Down => LOW_ROUND_DOWN,
            RoundMode::Nearest => LOW_ROUND_NEAREST,
        }
    }

    pub fn from_name(s: &str) -> Option<RoundMode> {
        match s {
            "up" => Some(RoundMode::Up),
            "down" => Some(RoundMode::Down),
            "nearest" => Some(RoundMode::Nearest),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            RoundMode::Up => "up",
            RoundMode::Down => "down",
            RoundMode::Nearest => "nearest",
        }
    }
}

/// How a small float format spends its top exponent.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Special {
    /// IEEE: top exponent holds ±inf (mantissa 0) and NaN.
    Ieee,
    /// "fn": no inf; NaN is exponent and mantissa all ones.
    Fn,
    /// "fnuz": no inf, no negative zero; NaN is the negative-zero code.
    Fnuz,
    /// No inf, no NaN (f4e2m1).
    Finite,
}

/// A small float format: its field widths, exponent bias and specials. Public so that the
/// compiler's inline codecs (aarch64 code, which calls no codec kernel) follow the same
/// description as [`decode`] and [`encode`].
#[derive(Clone, Copy, Debug)]
pub struct Fmt {
    pub ebits: u32,
    pub mbits: u32,
    pub bias: i32,
    pub special: Special,
}

const E4M3FN: Fmt = Fmt { ebits: 4, mbits: 3, bias: 7, special: Special::Fn };
const E4M3FNUZ: Fmt = Fmt { ebits: 4, mbits: 3, bias: 8, special: Special::Fnuz };
const E5M2: Fmt = Fmt { ebits: 5, mbits: 2, bias: 15, special: Special::Ieee };
const E5M2FNUZ: Fmt = Fmt { ebits: 5, mbits: 2, bias: 16, special: Special::Fnuz };
const E2M1: Fmt = Fmt { ebits: 2, mbits: 1, bias: 1, special: Special::Finite };
const HALF: Fmt = Fmt { ebits: 5, mbits: 10, bias: 15, special: Special::Ieee };

/// 2^n as f64, exact for the exponents used here.
fn pow2(n: i32) -> f64 {
    f64::from_bits(((n + 1023) as u64) << 52)
}

/// floor(log2(a)) for a finite a > 0 (subnormal f64 values give something below -1022, which
/// every caller clamps).
fn floor_log2(a: f64) -> i32 {
    ((a.to_bits() >> 52) & 0x7FF) as i32 - 1023
}

impl Fmt {
    pub fn sign_bit(self) -> u32 {
        1 << (self.ebits + self.mbits)
    }
    pub fn exp_all(self) -> u32 {
        (1 << self.ebits) - 1
    }
    pub fn man_all(self) -> u32 {
        (1 << self.mbits) - 1
    }
    pub fn max_code(self) -> u32 {
        match self.special {
            Special::Ieee => ((self.exp_all() - 1) << self.mbits) | self.man_all(),
            Special::Fn => (self.exp_all() << self.mbits) | (self.man_all() - 1),
            Special::Fnuz | Special::Finite => (self.exp_all() << self.mbits) | self.man_all(),
        }
    }
    /// The code for an out-of-range value when not saturating.
    pub fn overflow_code(self, sign: u32) -> u32 {
        match self.special {
            Special::Ieee => sign | (self.exp_all() << self.mbits),
            Special::Fn => sign | (self.exp_all() << self.mbits) | self.man_all(),
            Special::Fnuz => self.sign_bit(),
            Special::Finite => sign | self.max_code(),
        }
    }

    /// The code of a NaN of the given sign.
    pub fn nan_code(self, neg: bool) -> u32 {
        let sign = if neg { self.sign_bit() } else { 0 };
        match self.special {
            // Quiet NaN: the top mantissa bit set.
            Special::Ieee => sign | (self.exp_all() << self.mbits) | (1 << (self.mbits - 1)),
            Special::Fn => sign | (self.exp_all() << self.mbits) | self.man_all(),
            Special::Fnuz => self.sign_bit(),
            // ml_dtypes turns a NaN into a zero of the opposite sign.
            Special::Finite => sign ^ self.sign_bit(),
        }
    }

    fn decode(self, code: u32) -> f64 {
        let code = code & ((self.sign_bit() << 1) - 1);
        let neg = code & self.sign_bit() != 0;
        let e = (code >> self.mbits) & self.exp_all();
        let m = code & self.man_all();
        let signed = |v: f64| if neg { -v } else { v };
        match self.special {
            Special::Fnuz if code == self.sign_bit() => return f64::NAN,
            Special::Fn if e == self.exp_all() && m == self.man_all() => return signed(f64::NAN),
            Special::Ieee if e == self.exp_all() => return signed(if m == 0 { f64::INFINITY } else { f64::NAN }),
            _ => {}
        }
        let emin = 1 - self.bias;
        let mag = if e == 0 {
            m as f64 * pow2(emin - self.mbits as i32)
        } else {
            (m + (1 << self.mbits)) as f64 * pow2(e as i32 - self.bias - self.mbits as i32)
        };
        signed(mag)
    }

    /// Round to nearest even; NaN must be handled by the caller.
    fn encode(self, v: f64, saturate: bool) -> u32 {
        let sign = if v.is_sign_negative() { self.sign_bit() } else { 0 };
        let saturate = saturate || self.special == Special::Finite;
        let a = v.abs();
        if a.is_infinite() {
            return if saturate { sign | self.max_code() } else { self.overflow_code(sign) };
        }
        let mbits = self.mbits as i32;
        let emin = 1 - self.bias;
        let e = if a == 0.0 { emin } else { floor_log2(a).max(emin) };
        // a / 2^(e - mbits) is exact (a power-of-two scaling far from f64's limits).
        let n = (a * pow2(mbits - e)).round_ties_even();
        let r = n * pow2(e - mbits);
        if r > self.decode(self.max_code()) {
            return if saturate { sign | self.max_code() } else { self.overflow_code(sign) };
        }
        if n == 0.0 {
            return if self.special == Special::Fnuz { 0 } else { sign };
        }
        let implicit = 1u32 << self.mbits;
        let mut n = n as u32;
        if n < implicit {
            return sign | n; // subnormal (e == emin)
        }
        let mut e = e;
        if n == implicit << 1 {
            e += 1;
            n = implicit;
        }
        sign | (((e + self.bias) as u32) << self.mbits) | (n - implicit)
    }
}

/// The format of a small float type (f8e8m0, a bare exponent, has none: see [`encode_e8m0`]).
pub fn float_fmt(dtype: DType) -> Option<Fmt> {
    match dtype {
        DType::F8E4M3FN => Some(E4M3FN),
        DType::F8E4M3FNUZ => Some(E4M3FNUZ),
        DType::F8E5M2 => Some(E5M2),
        DType::F8E5M2FNUZ => Some(E5M2FNUZ),
        DType::F4E2M1 => Some(E2M1),
        _ => None,
    }
}

/// Bit width and signedness of the small integer types.
fn int_fmt(dtype: DType) -> Option<(u32, bool)> {
    match dtype {
        DType::I4 => Some((4, true)),
        DType::U4 => Some((4, false)),
        DType::I2 => Some((2, true)),
        DType::U2 => Some((2, false)),
        _ => None,
    }
}

/// Whether `dtype` is one of the small integer types (i4, u4, i2, u2).
pub fn is_low_int(dtype: DType) -> bool {
    int_fmt(dtype).is_some()
}

/// The value range of a small integer type.
pub fn int_range(dtype: DType) -> Option<(i64, i64)> {
    let (bits, signed) = int_fmt(dtype)?;
    Some(if signed { (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) } else { (0, (1 << bits) - 1) })
}

/// The integer held by a small-integer code (only the low bits of `code` count).
pub fn decode_int(dtype: DType, code: u8) -> Option<i64> {
    let (bits, signed) = int_fmt(dtype)?;
    let v = (code as i64) & ((1 << bits) - 1);
    Some(if signed && v >= 1 << (bits - 1) { v - (1 << bits) } else { v })
}

/// The code of an exact integer in a small integer type, keeping its low bits (two's
/// complement): Cast's wrap-around. Returns 0 for other dtypes.
pub fn int_code(dtype: DType, v: i128) -> u8 {
    match int_fmt(dtype) {
        Some((bits, _)) => (v as u8) & ((1u8 << bits) - 1),
        None => 0,
    }
}

/// The value of `code` in the low-precision type `dtype` (NaN for a dtype that is not low).
pub fn decode(dtype: DType, code: u8) -> f32 {
    if let Some(f) = float_fmt(dtype) {
        return f.decode(code as u32) as f32;
    }
    if let Some(v) = decode_int(dtype, code) {
        return v as f32;
    }
    if dtype == DType::F8E8M0 {
        return if code == 0xFF { f32::NAN } else { pow2(code as i32 - 127) as f32 };
    }
    f32::NAN
}

/// The code of `v` in the low-precision type `dtype` (0 for a dtype that is not low). f8e8m0
/// rounds up (Cast's default); see [`encode_e8m0`] for the other modes.
pub fn encode(dtype: DType, v: f32, saturate: bool) -> u8 {
    if let Some(f) = float_fmt(dtype) {
        if v.is_nan() {
            return f.nan_code(v.is_sign_negative()) as u8;
        }
        return f.encode(v as f64, saturate) as u8;
    }
    if let Some((lo, hi)) = int_range(dtype) {
        if v.is_nan() {
            return 0;
        }
        let r = (v as f64).round_ties_even();
        return if saturate {
            int_code(dtype, r.clamp(lo as f64, hi as f64) as i128)
        } else if r.is_finite() {
            int_code(dtype, r as i128)
        } else {
            0
        };
    }
    if dtype == DType::F8E8M0 {
        return encode_e8m0(v, saturate, RoundMode::Up);
    }
    0
}

/// f8e8m0 (a bare power-of-two exponent) exactly as `onnx.numpy_helper.to_float8e8m0`: the sign
/// is ignored, NaN and ±inf give NaN (0xFF), zero gives 2^-127 (code 0), and `saturate` stops
/// rounding at the largest finite code.
pub fn encode_e8m0(v: f32, saturate: bool, mode: RoundMode) -> u8 {
    let bits = v.to_bits();
    let exponent = (bits >> 23) & 0xFF;
    if exponent == 0xFF {
        return 0xFF;
    }
    let round_up = match mode {
        RoundMode::Down => false,
        RoundMode::Up => bits & 0x7F_FFFF != 0,
        RoundMode::Nearest => {
            let g = bits & 0x40_0000 != 0;
            let rs = bits & 0x3F_FFFF != 0; // round bit or sticky bits
            g && (rs || exponent > 0)
        }
    };
    let bump = round_up && !(saturate && exponent == 0xFE);
    (exponent + bump as u32) as u8
}

/// `f64` → IEEE half bits with one rounding (to nearest even), as numpy does; NaN is left to
/// the caller. (Dropping the low mantissa bits first, as some converters do, can round a
/// value just above a tie the wrong way.)
pub fn f64_to_f16_bits(v: f64) -> u16 {
    HALF.encode(v, false) as u16
}

/// See [`crate::abi::LowDecodeFn`].
///
/// # Safety
/// Always safe to call; `unsafe` only to have the table entry's type.
pub unsafe extern "C" fn low_decode(dtype: u32, code: u32) -> f32 {
    match DType::from_onnx(dtype) {
        Some(d) => decode(d, code as u8),
        None => f32::NAN,
    }
}

/// See [`crate::abi::LowEncodeFn`].
///
/// # Safety
/// Always safe to call; `unsafe` only to have the table entry's type.
pub unsafe extern "C" fn low_encode(dtype: u32, v: f32, flags: u32) -> u32 {
    let saturate = flags & LOW_SATURATE != 0;
    let mode = match flags & (LOW_ROUND_DOWN | LOW_ROUND_NEAREST) {
        LOW_ROUND_DOWN => RoundMode::Down,
        LOW_ROUND_NEAREST => RoundMode::Nearest,
        _ => RoundMode::Up,
    };
    match DType::from_onnx(dtype) {
        Some(DType::F8E8M0) => encode_e8m0(v, saturate, mode) as u32,
        Some(d) => encode(d, v, saturate) as u32,
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_entries_pass_their_arguments_through() {
        // SAFETY: always safe (see the functions).
        unsafe {
            assert_eq!(low_decode(DType::F8E4M3FN.onnx_code(), 0x7E), 448.0);
            assert_eq!(low_decode(DType::I4.onnx_code(), 0xF), -1.0);
            assert!(low_decode(99, 0).is_nan());
            assert_eq!(low_encode(DType::F8E4M3FN.onnx_code(), 1e6, LOW_SATURATE), 0x7E);
            assert_eq!(low_encode(DType::F8E4M3FN.onnx_code(), 1e6, 0), 0x7F);
            assert_eq!(low_encode(DType::F8E8M0.onnx_code(), 1.1, LOW_SATURATE | LOW_ROUND_UP), 128);
            assert_eq!(low_encode(DType::F8E8M0.onnx_code(), 1.9, LOW_SATURATE | LOW_ROUND_DOWN), 127);
            assert_eq!(low_encode(DType::F8E8M0.onnx_code(), 1.4, LOW_SATURATE | LOW_ROUND_NEAREST), 127);
            assert_eq!(low_encode(DType::F8E8M0.onnx_code(), 1.6, LOW_SATURATE | LOW_ROUND_NEAREST), 128);
            assert_eq!(low_encode(99, 1.0, 0), 0);
        }
    }
}
