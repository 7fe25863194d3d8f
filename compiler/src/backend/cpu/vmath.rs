//! Inline f32 math for generated code: `exp`, `sigmoid`, `tanh` and `erf` as Cranelift IR,
//! on scalars (`f32`) or four lanes (`f32x4`), with no call into the runtime.
//!
//! - `exp`: Cody–Waite range reduction `x = n·ln2 + r` (|r| ≤ ln2/2), Cephes' degree-7
//!   polynomial for `e^r`, and the scale `2^n` built from integer bits in two halves
//!   (`2^⌊n/2⌋ · 2^(n−⌊n/2⌋)`, each a normal number) so that subnormal results round once
//!   and overflow gives +inf. Inputs are clamped to [-104, 89] first (e^-104 rounds to 0,
//!   e^89 overflows), with comparisons that let NaN through.
//! - `sigmoid`: `e = exp(−|x|)`, then `1/(1+e)` for x ≥ 0 and `e/(1+e)` for x < 0 (one
//!   division, no overflow, no cancellation).
//! - `tanh`: Cephes' odd polynomial for |x| < 0.625 (no cancellation near 0), else
//!   `1 − 2/(e^{2|x|}+1)`; the sign of x is put back with bit operations (so tanh(−0) = −0).
//! - `erf`: |x| < 0.921875: `x + x·P(x²)`; above, `1 − exp(Q(|x|))` with Q a fit of
//!   `ln erfc` on [0.921875, 4] (|x| is clamped to 4, where erf rounds to 1 in f32). Both
//!   polynomials are weighted least-squares fits made for this file (near-minimax: 1.17
//!   and 1.19 ulp in an f32 simulation).
//!
//! Measured error bounds against f64 references are asserted in `tests/vmath.rs`.
//! Fused multiply-adds are used only when the ISA has them natively (see FACTS.md: the
//! `fmaf` libcall is not available to generated code).

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::types::{F32, F32X4, I16, I32, I32X4};
use cranelift_codegen::ir::{ConstantData, InstBuilder, MemFlagsData, Type, Value};
use cranelift_frontend::FunctionBuilder;
use neoc_runtime::abi::MathOp;
use neoc_runtime::kernels::math::erf_f32::{CLAMP as ERF_CLAMP, P as ERF_P, Q as ERF_Q, SMALL as ERF_SMALL};

/// exp: polynomial for `(e^r − 1 − r)/r²`, highest degree first (Cephes expf).
const EXP_P: [f32; 6] = [1.987_569_2e-4, 1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 5.000_000_1e-1];
const LOG2E: f32 = std::f32::consts::LOG2_E;
/// ln 2 = LN2_HI + LN2_LO, LN2_HI with 9 significant bits so that `n·LN2_HI` is exact.
const LN2_HI: f32 = 0.693_359_375;
const LN2_LO: f32 = -2.121_944_4e-4;
/// 1.5·2^23: adding it rounds to an integer, which lands in the low mantissa bits.
const SHIFTER: f32 = 12_582_912.0;
const EXP_LO: f32 = -104.0;
const EXP_HI: f32 = 89.0;

/// tanh for |x| < TANH_SMALL: `x + x·z·P(z)`, z = x² (Cephes tanhf).
const TANH_SMALL: f32 = 0.625;
const TANH_P: [f32; 5] = [-5.704_988_7e-3, 2.063_908_9e-2, -5.373_971_6e-2, 1.333_144_2e-1, -3.333_328_2e-1];


/// The ops [`emit`] computes inline.
pub fn inline(op: MathOp) -> bool {
    matches!(op, MathOp::Exp | MathOp::Sigmoid | MathOp::Tanh | MathOp::Erf)
}

/// Emits `op(x)` for f32 `x` (`F32`, or `F32X4` when `vector`). `fma`: the ISA has a
/// native fused multiply-add. Only ops for which [`inline`] holds.
pub fn emit(b: &mut FunctionBuilder, op: MathOp, x: Value, vector: bool, fma: bool) -> Value {
    let mut m = VMath { b, vector, fma };
    match op {
        MathOp::Exp => m.exp(x),
        MathOp::Sigmoid => m.sigmoid(x),
        MathOp::Tanh => m.tanh(x),
        MathOp::Erf => m.erf(x),
        other => unreachable!("{other:?} is not inline (check vmath::inline first)"),
    }
}

/// `a < b` (an i8 for scalars, an i32x4 lane mask for vectors). False when either is NaN.
pub fn less(b: &mut FunctionBuilder, x: Value, y: Value) -> Value {
    b.ins().fcmp(FloatCC::LessThan, x, y)
}

/// `cond ? x : y`, cond from a float comparison of the same shape as x and y.
pub fn select(b: &mut FunctionBuilder, cond: Value, x: Value, y: Value, vector: bool) -> Value {
    if vector {
        let ty = b.func.dfg.value_type(x);
        let mask = if b.func.dfg.value_type(cond) == ty { cond } else { b.ins().bitcast(ty, MemFlagsData::new(), cond) };
        b.ins().bitselect(mask, x, y)
    } else {
        b.ins().select(cond, x, y)
    }
}

/// `v` in every lane: a constant-pool vector (not a splat in the loop body) or a scalar.
pub fn f32_const(b: &mut FunctionBuilder, v: f32, vector: bool) -> Value {
    if vector {
        let bytes: Vec<u8> = (0..4).flat_map(|_| v.to_le_bytes()).collect();
        let c = b.func.dfg.constants.insert(ConstantData::from(bytes));
        b.ins().vconst(F32X4, c)
    } else {
        b.ins().f32const(v)
    }
}

struct VMath<'a, 'b> {
    b: &'a mut FunctionBuilder<'b>,
    vector: bool,
    fma: bool,
}

impl VMath<'_, '_> {
    fn fty(&self) -> Type {
        if self.vector { F32X4 } else { F32 }
    }
    fn ity(&self) -> Type {
        if self.vector { I32X4 } else { I32 }
    }
    fn f(&mut self, v: f32) -> Value {
        f32_const(self.b, v, self.vector)
    }
    fn i(&mut self, v: i32) -> Value {
        if self.vector {
            let bytes: Vec<u8> = (0..4).flat_map(|_| v.to_le_bytes()).collect();
            let c = self.b.func.dfg.constants.insert(ConstantData::from(bytes));
            self.b.ins().vconst(I32X4, c)
        } else {
            self.b.ins().iconst(I32, v as i64)
        }
    }
    fn bits(&mut self, x: Value) -> Value {
        let t = self.ity();
        self.b.ins().bitcast(t, MemFlagsData::new(), x)
    }
    fn float(&mut self, x: Value) -> Value {
        let t = self.fty();
        self.b.ins().bitcast(t, MemFlagsData::new(), x)
    }
    /// `a·b + c`, fused when the ISA has it.
    fn mul_add(&mut self, a: Value, b: Value, c: Value) -> Value {
        if self.fma {
            self.b.ins().fma(a, b, c)
        } else {
            let p = self.b.ins().fmul(a, b);
            self.b.ins().fadd(p, c)
        }
    }
    /// `Σ cs[k]·x^(len−1−k)` by Horner's rule.
    fn horner(&mut self, x: Value, cs: &[f32]) -> Value {
        let mut r = self.f(cs[0]);
        for &c in &cs[1..] {
            let c = self.f(c);
            r = self.mul_add(r, x, c);
        }
        r
    }
    fn select(&mut self, cond: Value, x: Value, y: Value) -> Value {
        select(self.b, cond, x, y, self.vector)
    }
    /// `min(x, hi)` that keeps NaN.
    fn clamp_hi(&mut self, x: Value, hi: f32) -> Value {
        let h = self.f(hi);
        let above = less(self.b, h, x);
        self.select(above, h, x)
    }
    /// `max(x, lo)` that keeps NaN.
    fn clamp_lo(&mut self, x: Value, lo: f32) -> Value {
        let l = self.f(lo);
        let below = less(self.b, x, l);
        self.select(below, l, x)
    }
    /// `y` with the sign bit of `x` (y's sign bit must be clear).
    fn with_sign_of(&mut self, y: Value, x: Value) -> Value {
        let xb = self.bits(x);
        let mask = self.i(i32::MIN);
        let sign = self.b.ins().band(xb, mask);
        let yb = self.bits(y);
        let r = self.b.ins().bor(yb, sign);
        self.float(r)
    }
    /// `2^n` for integer lanes `n` with `n + 127` in 1..=254.
    fn pow2(&mut self, n: Value) -> Value {
        let bias = self.i(127);
        let e = self.b.ins().iadd(n, bias);
        let e = self.b.ins().ishl_imm_s(e, 23);
        self.float(e)
    }

    fn exp(&mut self, x: Value) -> Value {
        let x = self.clamp_lo(x, EXP_LO);
        let x = self.clamp_hi(x, EXP_HI);
        let log2e = self.f(LOG2E);
        let shifter = self.f(SHIFTER);
        let t = self.mul_add(x, log2e, shifter);
        let n = self.b.ins().fsub(t, shifter);
        let nneg = self.b.ins().fneg(n);
        let hi = self.f(LN2_HI);
        let r = self.mul_add(nneg, hi, x);
        let lo = self.f(LN2_LO);
        let r = self.mul_add(nneg, lo, r);
        let p = self.horner(r, &EXP_P);
        let r2 = self.b.ins().fmul(r, r);
        let q = self.mul_add(p, r2, r);
        let one = self.f(1.0);
        let y = self.b.ins().fadd(q, one);
        // n as an integer: the low mantissa bits of t (|n| ≤ 150).
        let tb = self.bits(t);
        let sb = self.i(SHIFTER.to_bits() as i32);
        let ni = self.b.ins().isub(tb, sb);
        let n1 = self.b.ins().sshr_imm_s(ni, 1);
        let n2 = self.b.ins().isub(ni, n1);
        let s1 = self.pow2(n1);
        let s2 = self.pow2(n2);
        let y = self.b.ins().fmul(y, s1);
        self.b.ins().fmul(y, s2)
    }

    fn sigmoid(&mut self, x: Value) -> Value {
        let a = self.b.ins().fabs(x);
        let na = self.b.ins().fneg(a);
        let e = self.exp(na);
        let one = self.f(1.0);
        let d = self.b.ins().fadd(one, e);
        let zero = self.f(0.0);
        let neg = less(self.b, x, zero);
        let num = self.select(neg, e, one);
        self.b.ins().fdiv(num, d)
    }

    fn tanh(&mut self, x: Value) -> Value {
        let a = self.b.ins().fabs(x);
        // Small |x|: a + a·z·P(z).
        let z = self.b.ins().fmul(a, a);
        let p = self.horner(z, &TANH_P);
        let pz = self.b.ins().fmul(p, z);
        let small = self.mul_add(pz, a, a);
        // Otherwise 1 − 2/(e^{2a} + 1).
        let a2 = self.b.ins().fadd(a, a);
        let e = self.exp(a2);
        let one = self.f(1.0);
        let two = self.f(2.0);
        let d = self.b.ins().fadd(e, one);
        let q = self.b.ins().fdiv(two, d);
        let large = self.b.ins().fsub(one, q);
        let lim = self.f(TANH_SMALL);
        let is_small = less(self.b, a, lim);
        let y = self.select(is_small, small, large);
        self.with_sign_of(y, x)
    }

    fn erf(&mut self, x: Value) -> Value {
        let a = self.b.ins().fabs(x);
        let s = self.b.ins().fmul(a, a);
        let p = self.horner(s, &ERF_P);
        let small = self.mul_add(a, p, a);
        let t = self.clamp_hi(a, ERF_CLAMP);
        let q = self.horner(t, &ERF_Q);
        let e = self.exp(q);
        let one = self.f(1.0);
        let large = self.b.ins().fsub(one, e);
        let lim = self.f(ERF_SMALL);
        let is_small = less(self.b, a, lim);
        let y = self.select(is_small, small, large);
        self.with_sign_of(y, x)
    }
}

/// The f32 value of f16 bits `h` (an i16), exactly: normals and subnormals, ±inf, NaN.
pub fn f16_to_f32(b: &mut FunctionBuilder, h: Value) -> Value {
    let h = b.ins().uextend(I32, h);
    // Exponent and mantissa moved to f32's place, exponent rebiased (Giesen's method).
    let em = b.ins().band_imm_s(h, 0x7fff);
    let o = b.ins().ishl_imm_s(em, 13);
    let o = b.ins().iadd_imm_s(o, (127 - 15) << 23);
    let exp = b.ins().band_imm_s(h, 0x7c00);
    // Inf/NaN: the exponent goes all ones.
    let is_special = b.ins().icmp_imm_s(IntCC::Equal, exp, 0x7c00);
    let special = b.ins().iadd_imm_s(o, (128 - 16) << 23);
    // Zero/subnormal: 2^-14 · (m / 2^10), computed exactly as (2^-14 + m·2^-24) − 2^-14.
    let is_sub = b.ins().icmp_imm_s(IntCC::Equal, exp, 0);
    let sub = b.ins().iadd_imm_s(o, 1 << 23);
    let sub = b.ins().bitcast(F32, MemFlagsData::new(), sub);
    let magic = b.ins().f32const(f32::from_bits(113 << 23));
    let sub = b.ins().fsub(sub, magic);
    let sub = b.ins().bitcast(I32, MemFlagsData::new(), sub);
    let o = b.ins().select(is_special, special, o);
    let o = b.ins().select(is_sub, sub, o);
    let sign = b.ins().band_imm_s(h, 0x8000);
    let sign = b.ins().ishl_imm_s(sign, 16);
    let o = b.ins().bor(o, sign);
    b.ins().bitcast(F32, MemFlagsData::new(), o)
}

/// f32 `x` rounded to the nearest f16 (ties to even) as bits (an i16): overflow gives ±inf,
/// tiny values f16 subnormals or ±0, NaN a quiet NaN.
pub fn f32_to_f16(b: &mut FunctionBuilder, x: Value) -> Value {
    let u = b.ins().bitcast(I32, MemFlagsData::new(), x);
    let a = b.ins().band_imm_s(u, 0x7fff_ffff);
    // |x| ≥ 65536 (or NaN): inf (NaN). [65520, 65536) reaches inf through the rounding below.
    let is_nan = b.ins().icmp_imm_s(IntCC::UnsignedGreaterThan, a, 0x7f80_0000);
    let big = b.ins().icmp_imm_s(IntCC::UnsignedGreaterThanOrEqual, a, 0x4780_0000);
    let qnan = b.ins().iconst(I32, 0x7e00);
    let inf = b.ins().iconst(I32, 0x7c00);
    let special = b.ins().select(is_nan, qnan, inf);
    // |x| < 2^-14: an f16 subnormal; adding 0.5 (whose f32 ulp is f16's subnormal ulp,
    // 2^-24) rounds to nearest even in hardware.
    let af = b.ins().bitcast(F32, MemFlagsData::new(), a);
    let half = b.ins().f32const(0.5);
    let s = b.ins().fadd(af, half);
    let s = b.ins().bitcast(I32, MemFlagsData::new(), s);
    let sub = b.ins().iadd_imm_s(s, -0x3f00_0000);
    // Normal: rebias, add 0xfff plus the kept mantissa's lowest bit (ties to even), shift.
    let odd = b.ins().ushr_imm_s(a, 13);
    let odd = b.ins().band_imm_s(odd, 1);
    let n = b.ins().iadd_imm_s(a, ((15 - 127) << 23) + 0xfff);
    let n = b.ins().iadd(n, odd);
    let n = b.ins().ushr_imm_s(n, 13);
    let is_sub = b.ins().icmp_imm_s(IntCC::UnsignedLessThan, a, 113 << 23);
    let r = b.ins().select(is_sub, sub, n);
    let r = b.ins().select(big, special, r);
    let sign = b.ins().ushr_imm_s(u, 16);
    let sign = b.ins().band_imm_s(sign, 0x8000);
    let r = b.ins().bor(r, sign);
    b.ins().ireduce(I16, r)
}

/// The f32 value of bf16 bits `h` (an i16): exact.
pub fn bf16_to_f32(b: &mut FunctionBuilder, h: Value) -> Value {
    let h = b.ins().uextend(I32, h);
    let o = b.ins().ishl_imm_s(h, 16);
    b.ins().bitcast(F32, MemFlagsData::new(), o)
}

/// f32 `x` rounded to the nearest bf16 (ties to even) as bits (an i16); NaN stays a (quiet)
/// NaN, overflow rounds to inf.
pub fn f32_to_bf16(b: &mut FunctionBuilder, x: Value) -> Value {
    let u = b.ins().bitcast(I32, MemFlagsData::new(), x);
    let odd = b.ins().ushr_imm_s(u, 16);
    let odd = b.ins().band_imm_s(odd, 1);
    let r = b.ins().iadd_imm_s(u, 0x7fff);
    let r = b.ins().iadd(r, odd);
    let r = b.ins().ushr_imm_s(r, 16);
    let a = b.ins().band_imm_s(u, 0x7fff_ffff);
    let is_nan = b.ins().icmp_imm_s(IntCC::UnsignedGreaterThan, a, 0x7f80_0000);
    let q = b.ins().ushr_imm_s(u, 16);
    let q = b.ins().bor_imm_s(q, 0x40);
    let r = b.ins().select(is_nan, q, r);
    b.ins().ireduce(I16, r)
}

#[cfg(test)]
#[path = "vmath_tests.rs"]
mod tests;
