//! Scalar arithmetic on Cranelift values: the unary and binary ops of the kernel IR, integer
//! division with its defined results for zero divisors and `MIN / -1`, and every cast
//! between dtypes (rounding, saturation and wrap-around as ONNX and numpy define them). The
//! vector forms are in [`super::nest`]; transcendental math calls are in [`super::StepGen::math`].

use anyhow::{Result, bail};
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::types::{F32, F64, I8, I32, I64};
use cranelift_codegen::ir::{InstBuilder, MemFlagsData, Type, Value};

use super::{StepGen, clif_type};
use crate::backend::cpu::lowbit;
use crate::backend::cpu::vmath;
use crate::kernel_ir::{BinOp, Conversion, UnOp};
use crate::tensor::DType;

impl StepGen<'_, '_> {
    pub(super) fn unary(&mut self, op: UnOp, x: Value, t: DType) -> Result<Value> {
        let float = t.is_float();
        let ins = self.b.ins();
        Ok(match op {
            UnOp::Neg if float => ins.fneg(x),
            UnOp::Neg => ins.ineg(x),
            UnOp::Abs if float => ins.fabs(x),
            UnOp::Abs if t.is_unsigned_int() || t == DType::Bool => x,
            UnOp::Abs => ins.iabs(x),
            UnOp::Sqrt => ins.sqrt(x),
            UnOp::Floor if float => ins.floor(x),
            UnOp::Ceil if float => ins.ceil(x),
            UnOp::Trunc if float => ins.trunc(x),
            UnOp::Nearest if float => ins.nearest(x),
            UnOp::Floor | UnOp::Ceil | UnOp::Trunc | UnOp::Nearest => x,
            UnOp::Not if t == DType::Bool => ins.bxor_imm_s(x, 1),
            UnOp::Not => ins.bnot(x),
            UnOp::IsNaN => ins.fcmp(FloatCC::Unordered, x, x),
            UnOp::IsInf { negative, positive } => {
                let inf = if t == DType::F64 { ins.f64const(f64::INFINITY) } else { ins.f32const(f32::INFINITY) };
                let pos = self.b.ins().fcmp(FloatCC::Equal, x, inf);
                let ninf = self.b.ins().fneg(inf);
                let neg = self.b.ins().fcmp(FloatCC::Equal, x, ninf);
                match (negative, positive) {
                    (true, true) => self.b.ins().bor(pos, neg),
                    (true, false) => neg,
                    (false, true) => pos,
                    (false, false) => self.b.ins().iconst(I8, 0),
                }
            }
        })
    }

    pub(super) fn binary(&mut self, op: BinOp, x: Value, y: Value, t: DType) -> Result<Value> {
        let float = t.is_float();
        let signed = t.is_signed_int();
        if float {
            let ins = self.b.ins();
            return Ok(match op {
                BinOp::Add => ins.fadd(x, y),
                BinOp::Sub => ins.fsub(x, y),
                BinOp::Mul => ins.fmul(x, y),
                BinOp::Div => ins.fdiv(x, y),
                BinOp::Min => ins.fmin(x, y),
                BinOp::Max => ins.fmax(x, y),
                BinOp::Eq => ins.fcmp(FloatCC::Equal, x, y),
                BinOp::Lt => ins.fcmp(FloatCC::LessThan, x, y),
                BinOp::Le => ins.fcmp(FloatCC::LessThanOrEqual, x, y),
                BinOp::Gt => ins.fcmp(FloatCC::GreaterThan, x, y),
                BinOp::Ge => ins.fcmp(FloatCC::GreaterThanOrEqual, x, y),
                other => bail!("{other:?} on {} is not supported by the cpu backend", t.name()),
            });
        }
        let ty = clif_type(t)?;
        let bits = ty.bits() as i64;
        Ok(match op {
            BinOp::Add => self.b.ins().iadd(x, y),
            BinOp::Sub => self.b.ins().isub(x, y),
            BinOp::Mul => self.b.ins().imul(x, y),
            BinOp::Div | BinOp::TruncMod | BinOp::FloorMod => self.int_divide(op, x, y, ty, signed),
            BinOp::Min if signed => self.b.ins().smin(x, y),
            BinOp::Min => self.b.ins().umin(x, y),
            BinOp::Max if signed => self.b.ins().smax(x, y),
            BinOp::Max => self.b.ins().umax(x, y),
            BinOp::And => self.b.ins().band(x, y),
            BinOp::Or => self.b.ins().bor(x, y),
            BinOp::Xor => self.b.ins().bxor(x, y),
            BinOp::Shl | BinOp::Shr => {
                // Shifting by the width or more gives 0 (numpy), not Cranelift's masked shift.
                let shifted = match (op, signed) {
                    (BinOp::Shl, _) => self.b.ins().ishl(x, y),
                    (_, true) => self.b.ins().sshr(x, y),
                    _ => self.b.ins().ushr(x, y),
                };
                let too_far = self.b.ins().icmp_imm_s(IntCC::UnsignedGreaterThanOrEqual, y, bits);
                // Arithmetic right shifts by the width or more fill with the sign.
                let beyond = if op == BinOp::Shr && signed {
                    self.b.ins().sshr_imm_s(x, bits - 1)
                } else {
                    self.b.ins().iconst(ty, 0)
                };
                self.b.ins().select(too_far, beyond, shifted)
            }
            BinOp::Eq => self.b.ins().icmp(IntCC::Equal, x, y),
            BinOp::Lt => self.b.ins().icmp(if signed { IntCC::SignedLessThan } else { IntCC::UnsignedLessThan }, x, y),
            BinOp::Le => {
                self.b.ins().icmp(if signed { IntCC::SignedLessThanOrEqual } else { IntCC::UnsignedLessThanOrEqual }, x, y)
            }
            BinOp::Gt => self.b.ins().icmp(if signed { IntCC::SignedGreaterThan } else { IntCC::UnsignedGreaterThan }, x, y),
            BinOp::Ge => self.b.ins().icmp(
                if signed { IntCC::SignedGreaterThanOrEqual } else { IntCC::UnsignedGreaterThanOrEqual },
                x,
                y,
            ),
        })
    }

    /// Integer division and remainders that never trap: `x / 0 = x % 0 = 0` (numpy), and
    /// `MIN / -1` wraps.
    pub(super) fn int_divide(&mut self, op: BinOp, x: Value, y: Value, ty: Type, signed: bool) -> Value {
        let zero = self.b.ins().iconst(ty, 0);
        let one = self.b.ins().iconst(ty, 1);
        let is_zero = self.b.ins().icmp_imm_s(IntCC::Equal, y, 0);
        let is_m1 = self.b.ins().icmp_imm_s(IntCC::Equal, y, -1);
        let bad = if signed { self.b.ins().bor(is_zero, is_m1) } else { is_zero };
        let safe_y = self.b.ins().select(bad, one, y);
        let (q, r) = if signed {
            (self.b.ins().sdiv(x, safe_y), self.b.ins().srem(x, safe_y))
        } else {
            (self.b.ins().udiv(x, safe_y), self.b.ins().urem(x, safe_y))
        };
        // y == -1: q = -x, r = 0. y == 0: 0.
        let (q, r) = if signed {
            let negx = self.b.ins().ineg(x);
            let q = self.b.ins().select(is_m1, negx, q);
            let r = self.b.ins().select(is_m1, zero, r);
            (q, r)
        } else {
            (q, r)
        };
        let result = match op {
            BinOp::Div => q,
            BinOp::TruncMod => r,
            _ => {
                if signed {
                    // Floor mod: add y when r != 0 and the signs of r and y differ.
                    let r_nz = self.b.ins().icmp_imm_s(IntCC::NotEqual, r, 0);
                    let x_sign = self.b.ins().bxor(r, y);
                    let differ = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, x_sign, 0);
                    let fix = self.b.ins().band(r_nz, differ);
                    let r_plus = self.b.ins().iadd(r, y);
                    self.b.ins().select(fix, r_plus, r)
                } else {
                    r
                }
            }
        };
        self.b.ins().select(is_zero, zero, result)
    }

    pub(super) fn cast(&mut self, x: Value, from: DType, to: DType) -> Result<Value> {
        self.convert(x, from, Conversion::cast(to))
    }

    /// Converts between compute-type values; a conversion to f16/bf16 or a low-precision
    /// float rounds to that precision (the result is still an f32 value, stored exactly).
    /// f64 goes to the low-precision floats through f32, as ml_dtypes does.
    pub(super) fn convert(&mut self, x: Value, from: DType, c: Conversion) -> Result<Value> {
        let to = c.to;
        if from == to {
            return Ok(x);
        }
        if from == DType::F64 && matches!(to, DType::F16 | DType::BF16) {
            // f64 → f32 → f16 would round twice; rounding to odd first makes it exact.
            let r = self.f64_to_f32_odd(x);
            return self.cast(r, DType::F32, to);
        }
        let v = self.cast_compute(x, from, to)?;
        Ok(match to {
            d if d.is_coded_float() => {
                let flags = lowbit::encode_flags(c.saturate, c.round_mode);
                self.runtime(d).round(&mut self.b, d, v, flags)
            }
            DType::F16 => {
                let h = vmath::f32_to_f16(&mut self.b, v);
                vmath::f16_to_f32(&mut self.b, h)
            }
            DType::BF16 => {
                let h = vmath::f32_to_bf16(&mut self.b, v);
                vmath::bf16_to_f32(&mut self.b, h)
            }
            _ => v,
        })
    }

    /// f64 `x` to f32 rounded to odd (inexact results get an odd last bit), so that a second
    /// rounding to a narrower format is correctly rounded.
    pub(super) fn f64_to_f32_odd(&mut self, x: Value) -> Value {
        let r = self.b.ins().fdemote(F32, x);
        let back = self.b.ins().fpromote(F64, r);
        let inexact = self.b.ins().fcmp(FloatCC::NotEqual, back, x);
        let bits = self.b.ins().bitcast(I32, MemFlagsData::new(), r);
        let low = self.b.ins().band_imm_s(bits, 1);
        let even = self.b.ins().icmp_imm_s(IntCC::Equal, low, 0);
        let fix = self.b.ins().band(inexact, even);
        let ab = self.b.ins().fabs(back);
        let ax = self.b.ins().fabs(x);
        let away = self.b.ins().fcmp(FloatCC::GreaterThan, ab, ax);
        let down = self.b.ins().iadd_imm_s(bits, -1);
        let up = self.b.ins().iadd_imm_s(bits, 1);
        let other = self.b.ins().select(away, down, up);
        let bits = self.b.ins().select(fix, other, bits);
        self.b.ins().bitcast(F32, MemFlagsData::new(), bits)
    }

    pub(super) fn cast_compute(&mut self, x: Value, from: DType, to: DType) -> Result<Value> {
        let to_ty = clif_type(to)?;
        let from_ty = clif_type(from)?;
        let ins = self.b.ins();
        Ok(match (from.is_float(), to.is_float()) {
            (true, true) => {
                if from_ty == to_ty {
                    x
                } else if from_ty == F32 {
                    ins.fpromote(F64, x)
                } else {
                    ins.fdemote(F32, x)
                }
            }
            (false, true) => {
                let wide = self.int_to_i64(x, from, from_ty);
                if from.is_unsigned_int() || from == DType::Bool {
                    self.b.ins().fcvt_from_uint(to_ty, wide)
                } else {
                    self.b.ins().fcvt_from_sint(to_ty, wide)
                }
            }
            (true, false) => {
                if to == DType::Bool {
                    let z = if from_ty == F32 { ins.f32const(0.0) } else { ins.f64const(0.0) };
                    // NaN is true (numpy).
                    self.b.ins().fcmp(FloatCC::NotEqual, x, z)
                } else {
                    let wide = self.float_to_int_wrapping(x, from_ty);
                    if to_ty == I64 { wide } else { self.b.ins().ireduce(to_ty, wide) }
                }
            }
            (false, false) => {
                if to == DType::Bool {
                    ins.icmp_imm_s(IntCC::NotEqual, x, 0)
                } else if to_ty.bits() > from_ty.bits() {
                    if from.is_signed_int() { ins.sextend(to_ty, x) } else { ins.uextend(to_ty, x) }
                } else if to_ty.bits() < from_ty.bits() {
                    ins.ireduce(to_ty, x)
                } else {
                    x
                }
            }
        })
    }

    /// Float `x` truncated toward zero, modulo 2^64 (as i64 bits); NaN, ±inf and |x| >= 2^64
    /// give 0. This is the reference's Cast: narrower integer targets keep the low bits.
    pub(super) fn float_to_int_wrapping(&mut self, x: Value, ty: Type) -> Value {
        let ins = self.b.ins();
        let ax = ins.fabs(x);
        // Exact for |x| < 2^64; the negation wraps like two's complement.
        let mag = self.b.ins().fcvt_to_uint_sat(I64, ax);
        let neg = self.b.ins().ineg(mag);
        let zero_f = if ty == F64 { self.b.ins().f64const(0.0) } else { self.b.ins().f32const(0.0) };
        let is_neg = self.b.ins().fcmp(FloatCC::LessThan, x, zero_f);
        let wide = self.b.ins().select(is_neg, neg, mag);
        let limit = if ty == F64 { self.b.ins().f64const(2f64.powi(64)) } else { self.b.ins().f32const(2f32.powi(64)) };
        let in_range = self.b.ins().fcmp(FloatCC::LessThan, ax, limit);
        let zero = self.b.ins().iconst(I64, 0);
        self.b.ins().select(in_range, wide, zero)
    }

    pub(super) fn int_to_i64(&mut self, x: Value, from: DType, ty: Type) -> Value {
        if ty == I64 {
            x
        } else if from.is_signed_int() {
            self.b.ins().sextend(I64, x)
        } else {
            self.b.ins().uextend(I64, x)
        }
    }
}
