//! The low-bit float codecs as generated code, for code that calls no codec kernel (aarch64:
//! [`crate::lower::Caps::SELF_CONTAINED`]). They compute what the runtime's
//! `low_decode`/`low_encode` compute (`neoc_runtime::kernels::lowbit`, whose format
//! descriptions [`lowbit::float_fmt`] they read), on the f32 bits:
//!
//! - decode: sign, exponent and mantissa fields placed into an f32 (a subnormal code is its
//!   mantissa times the smallest quantum), then the format's NaN and inf codes;
//! - encode: codes are monotonic in the magnitude and linear within a binade, as f32 bits
//!   are, so a normal value's code is its f32 bits rounded to `mbits` mantissa bits (ties to
//!   even, a carry moving into the exponent) and rebiased; a value below the smallest normal
//!   is its count of quanta, rounded to nearest even (`nearest`, exact: a power-of-two
//!   scaling). A count reaching 2^mbits is the smallest normal's code, as it should be. A
//!   code past the largest finite one saturates or overflows as the format says.
//!
//! The runtime's tests and `lowbit_tests.rs` (every code decoded, special values encoded with
//! every option, these forms against the reference) check that both agree.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::types::{F32, I32};
use cranelift_codegen::ir::{InstBuilder, MemFlagsData, Value};
use cranelift_frontend::FunctionBuilder;
use neoc_runtime::abi::{LOW_ROUND_DOWN, LOW_ROUND_NEAREST, LOW_SATURATE};
use neoc_runtime::kernels::lowbit::{self, Special};

use crate::tensor::DType;

const F32_NAN: i64 = 0x7FC0_0000;
const F32_INF: i64 = 0x7F80_0000;

fn bits_to_f32(b: &mut FunctionBuilder, x: Value) -> Value {
    b.ins().bitcast(F32, MemFlagsData::new(), x)
}

fn f32_to_bits(b: &mut FunctionBuilder, x: Value) -> Value {
    b.ins().bitcast(I32, MemFlagsData::new(), x)
}

/// `c ? x : y` for i32 constants `x`.
fn select_const(b: &mut FunctionBuilder, c: Value, x: i64, y: Value) -> Value {
    let x = b.ins().iconst(I32, x);
    b.ins().select(c, x, y)
}

/// The f32 value of `code` (an i32 holding the code in its low bits) of the coded float `d`.
pub fn decode(b: &mut FunctionBuilder, d: DType, code: Value) -> Value {
    let Some(f) = lowbit::float_fmt(d) else {
        // f8e8m0: 2^(code − 127); code 0 is the f32 subnormal 2^-127, 0xFF is NaN.
        let code = b.ins().band_imm_s(code, 0xFF);
        let normal = b.ins().ishl_imm_s(code, 23);
        let zero = b.ins().icmp_imm_s(IntCC::Equal, code, 0);
        let bits = select_const(b, zero, 1 << 22, normal);
        let nan = b.ins().icmp_imm_s(IntCC::Equal, code, 0xFF);
        let bits = select_const(b, nan, F32_NAN, bits);
        return bits_to_f32(b, bits);
    };
    let (mbits, sign_bit) = (f.mbits as i64, f.sign_bit() as i64);
    let code = b.ins().band_imm_s(code, (sign_bit << 1) - 1);
    let mag = b.ins().band_imm_s(code, sign_bit - 1);
    let e = b.ins().ushr_imm_s(mag, mbits);
    let m = b.ins().band_imm_s(mag, f.man_all() as i64);
    // Normal: the fields moved into place, the exponent rebiased.
    let normal = b.ins().ishl_imm_s(mag, 23 - mbits);
    let normal = b.ins().iadd_imm_s(normal, (127 - f.bias as i64) << 23);
    // Subnormal (e == 0): m quanta of 2^(emin − mbits).
    let mf = b.ins().fcvt_from_uint(F32, m);
    let quantum = b.ins().f32const(2f32.powi(1 - f.bias - f.mbits as i32));
    let sub = b.ins().fmul(mf, quantum);
    let sub = f32_to_bits(b, sub);
    let is_sub = b.ins().icmp_imm_s(IntCC::Equal, e, 0);
    let bits = b.ins().select(is_sub, sub, normal);
    // Specials, by magnitude code.
    let exp_all = f.exp_all() as i64;
    let bits = match f.special {
        Special::Ieee => {
            let top = b.ins().icmp_imm_s(IntCC::Equal, e, exp_all);
            let inf_or_nan = b.ins().icmp_imm_s(IntCC::Equal, m, 0);
            let inf_nan = b.ins().iconst(I32, F32_NAN);
            let inf_nan = select_const(b, inf_or_nan, F32_INF, inf_nan);
            b.ins().select(top, inf_nan, bits)
        }
        Special::Fn => {
            let nan = b.ins().icmp_imm_s(IntCC::Equal, mag, (exp_all << mbits) | f.man_all() as i64);
            select_const(b, nan, F32_NAN, bits)
        }
        Special::Fnuz | Special::Finite => bits,
    };
    // The sign; fnuz's negative-zero code is its (unsigned) NaN.
    let neg = b.ins().band_imm_s(code, sign_bit);
    let neg = b.ins().icmp_imm_s(IntCC::NotEqual, neg, 0);
    let signed = b.ins().bor_imm_s(bits, 0x8000_0000u32 as i32 as i64);
    let bits = b.ins().select(neg, signed, bits);
    let bits = match f.special {
        Special::Fnuz => {
            let nan = b.ins().icmp_imm_s(IntCC::Equal, code, sign_bit);
            select_const(b, nan, F32_NAN, bits)
        }
        _ => bits,
    };
    bits_to_f32(b, bits)
}

/// The code (an i32) of f32 `v` in the coded float `d`, with `low_encode`'s `flags`.
pub fn encode(b: &mut FunctionBuilder, d: DType, v: Value, flags: u32) -> Value {
    let saturate = flags & LOW_SATURATE != 0;
    let x = f32_to_bits(b, v);
    let Some(f) = lowbit::float_fmt(d) else {
        return encode_e8m0(b, x, saturate, flags);
    };
    let (mbits, sign_bit, max) = (f.mbits as i64, f.sign_bit() as i64, f.max_code() as i64);
    let a = b.ins().band_imm_s(x, 0x7FFF_FFFF);
    // Normal in the format: round the f32 bits to mbits mantissa bits, ties to even.
    let shift = 23 - mbits;
    let odd = b.ins().ushr_imm_s(a, shift);
    let odd = b.ins().band_imm_s(odd, 1);
    let r = b.ins().iadd_imm_s(a, (1 << (shift - 1)) - 1);
    let r = b.ins().iadd(r, odd);
    let r = b.ins().ushr_imm_s(r, shift);
    let normal = b.ins().iadd_imm_s(r, -((127 - f.bias as i64) << mbits));
    // Below the smallest normal: the count of quanta, rounded to nearest even.
    let av = bits_to_f32(b, a);
    let scale = b.ins().f32const(2f32.powi(f.mbits as i32 - (1 - f.bias)));
    let n = b.ins().fmul(av, scale);
    let n = b.ins().nearest(n);
    let sub = b.ins().fcvt_to_sint_sat(I32, n);
    let is_sub = b.ins().icmp_imm_s(IntCC::UnsignedLessThan, a, ((128 - f.bias as i64) as i64) << 23);
    let mag = b.ins().select(is_sub, sub, normal);
    let neg = b.ins().icmp_imm_s(IntCC::SignedLessThan, x, 0);
    let zero = b.ins().iconst(I32, 0);
    let sign = select_const(b, neg, sign_bit, zero);
    let code = b.ins().bor(sign, mag);
    // Zero: fnuz has no negative zero.
    let code = match f.special {
        Special::Fnuz => {
            let z = b.ins().icmp_imm_s(IntCC::Equal, mag, 0);
            b.ins().select(z, zero, code)
        }
        _ => code,
    };
    // Past the largest finite code (±inf included).
    let over = if saturate || f.special == Special::Finite {
        b.ins().bor_imm_s(sign, max)
    } else {
        match f.special {
            Special::Fnuz => b.ins().iconst(I32, sign_bit),
            _ => b.ins().bor_imm_s(sign, f.overflow_code(0) as i64),
        }
    };
    let too_big = b.ins().icmp_imm_s(IntCC::SignedGreaterThan, mag, max);
    let code = b.ins().select(too_big, over, code);
    // NaN.
    let is_nan = b.ins().fcmp(FloatCC::Unordered, v, v);
    let (pos, negc) = (f.nan_code(false) as i64, f.nan_code(true) as i64);
    let pos = b.ins().iconst(I32, pos);
    let nan = select_const(b, neg, negc, pos);
    b.ins().select(is_nan, nan, code)
}

/// f8e8m0, as `lowbit::encode_e8m0`: the f32 exponent field, bumped when the mode rounds up.
fn encode_e8m0(b: &mut FunctionBuilder, x: Value, saturate: bool, flags: u32) -> Value {
    let exponent = b.ins().ushr_imm_s(x, 23);
    let exponent = b.ins().band_imm_s(exponent, 0xFF);
    let round_up = match flags & (LOW_ROUND_DOWN | LOW_ROUND_NEAREST) {
        LOW_ROUND_DOWN => b.ins().iconst(I32, 0),
        LOW_ROUND_NEAREST => {
            let g = b.ins().band_imm_s(x, 0x40_0000);
            let g = b.ins().icmp_imm_s(IntCC::NotEqual, g, 0);
            let rs = b.ins().band_imm_s(x, 0x3F_FFFF);
            let rs = b.ins().icmp_imm_s(IntCC::NotEqual, rs, 0);
            let normal = b.ins().icmp_imm_s(IntCC::NotEqual, exponent, 0);
            let either = b.ins().bor(rs, normal);
            let up = b.ins().band(g, either);
            b.ins().uextend(I32, up)
        }
        _ => {
            let m = b.ins().band_imm_s(x, 0x7F_FFFF);
            let up = b.ins().icmp_imm_s(IntCC::NotEqual, m, 0);
            b.ins().uextend(I32, up)
        }
    };
    let round_up = if saturate {
        let top = b.ins().icmp_imm_s(IntCC::Equal, exponent, 0xFE);
        let zero = b.ins().iconst(I32, 0);
        b.ins().select(top, zero, round_up)
    } else {
        round_up
    };
    let code = b.ins().iadd(exponent, round_up);
    // NaN and ±inf (exponent 0xFF) stay 0xFF: adding a bump would pass it.
    let special = b.ins().icmp_imm_s(IntCC::Equal, exponent, 0xFF);
    select_const(b, special, 0xFF, code)
}
