//! Kernel IR expressions as PTX, with the CPU code generator's semantics
//! (`backend/cpu/codegen.rs` is the specification): f16 and bf16 compute in f32 (loads
//! widen exactly, stores round to nearest even), 8- and 16-bit integers compute in 32-bit
//! registers kept sign- or zero-extended (every result that can leave the type's range is
//! wrapped back), bools are 0/1 in 32-bit registers, integer division never traps
//! (`x / 0 = x % 0 = 0`, `MIN / -1` wraps), shifts by the width or more give 0 (or the sign
//! for arithmetic right shifts), float min/max propagate NaN, float-to-integer casts
//! truncate and wrap modulo 2^64 (0 for NaN, ±inf and |x| ≥ 2^64). Float arithmetic uses
//! explicit `.rn` so that ptxas never contracts a multiply and an add into an FMA the CPU
//! code does not do. The low-precision floats and the 4- and 2-bit integers are refused.

use std::collections::HashMap;

use anyhow::{Result, bail};
use neoc_runtime::abi::MathOp;

use super::math;
use super::ptx::{Cls, Kernel, f32_imm, f64_imm};
use crate::backend::cpu::codegen::expr_dtype;
use crate::kernel_ir::{Access, BinOp, ERR_INDEX, Expr, Lit, Mem, UnOp};
use crate::tensor::DType;

/// The register class a dtype computes in.
pub fn cls(t: DType) -> Result<Cls> {
    Ok(match t {
        DType::F32 | DType::F16 | DType::BF16 => Cls::F32,
        DType::F64 => Cls::F64,
        DType::I64 | DType::U64 => Cls::B64,
        DType::I8 | DType::U8 | DType::I16 | DType::U16 | DType::I32 | DType::U32 | DType::Bool => Cls::B32,
        other => bail!("dtype {} is not supported by the cuda backend yet", other.name()),
    })
}

/// Bytes of one element in memory.
pub fn esize(t: DType) -> Result<i64> {
    cls(t)?;
    Ok(t.size_of().unwrap_or(1) as i64)
}

/// The PTX integer type of a 32- or 64-bit integer register of dtype `t` (`s32`, `u64`).
fn ity(t: DType) -> &'static str {
    let wide = matches!(t, DType::I64 | DType::U64);
    match (t.is_signed_int(), wide) {
        (true, true) => "s64",
        (false, true) => "u64",
        (true, false) => "s32",
        (false, false) => "u32",
    }
}

fn bits(t: DType) -> u32 {
    match t {
        DType::I8 | DType::U8 => 8,
        DType::I16 | DType::U16 => 16,
        DType::I64 | DType::U64 => 64,
        DType::Bool => 1,
        _ => 32,
    }
}

/// Emits expressions of one loop body into a kernel.
pub struct Gen<'a> {
    pub k: &'a mut Kernel,
    /// A global-space base address register for every buffer the kernel touches.
    pub bases: &'a HashMap<Mem, String>,
    /// The status word's address (kernels store run-time error codes there).
    pub status: String,
    /// The loop indices, as i64 registers (in `finish`, only the outer ones).
    pub idx: Vec<String>,
    /// The accumulator register of a reduction's `finish`, with its dtype.
    pub acc: Option<(String, DType)>,
}

impl Gen<'_> {
    fn acc_ty(&self) -> DType {
        self.acc.as_ref().map(|a| a.1).unwrap_or(DType::F32)
    }

    /// The byte address of `a`'s element at the current indices.
    pub fn addr(&mut self, a: &Access) -> Result<String> {
        let es = esize(a.dtype)?;
        let base = self.bases[&a.mem].clone();
        let off = self.k.reg(Cls::B64);
        self.k.op(format!("mov.s64 {off}, {}", a.offset.wrapping_mul(es)));
        for (d, &s) in a.strides.iter().enumerate() {
            if s != 0 {
                let i = self.idx[d].clone();
                self.k.op(format!("mad.lo.s64 {off}, {i}, {}, {off}", s.wrapping_mul(es)));
            }
        }
        let r = self.k.reg(Cls::B64);
        self.k.op(format!("add.s64 {r}, {base}, {off}"));
        Ok(r)
    }

    /// Loads the element of dtype `t` at `addr`, widened to its compute type.
    pub fn load(&mut self, t: DType, addr: &str) -> Result<String> {
        let r = self.k.reg(cls(t)?);
        match t {
            DType::F32 => self.k.op(format!("ld.global.f32 {r}, [{addr}]")),
            DType::F64 => self.k.op(format!("ld.global.f64 {r}, [{addr}]")),
            DType::F16 => {
                let h = self.k.reg(Cls::B16);
                self.k.op(format!("ld.global.b16 {h}, [{addr}]"));
                self.k.op(format!("cvt.f32.f16 {r}, {h}"));
            }
            DType::BF16 => {
                let u = self.k.reg(Cls::B32);
                self.k.op(format!("ld.global.u16 {u}, [{addr}]"));
                self.k.op(format!("shl.b32 {u}, {u}, 16"));
                self.k.op(format!("mov.b32 {r}, {u}"));
            }
            DType::Bool => {
                self.k.op(format!("ld.global.u8 {r}, [{addr}]"));
                self.k.op(format!("min.u32 {r}, {r}, 1"));
            }
            DType::I8 => self.k.op(format!("ld.global.s8 {r}, [{addr}]")),
            DType::U8 => self.k.op(format!("ld.global.u8 {r}, [{addr}]")),
            DType::I16 => self.k.op(format!("ld.global.s16 {r}, [{addr}]")),
            DType::U16 => self.k.op(format!("ld.global.u16 {r}, [{addr}]")),
            DType::I32 | DType::U32 => self.k.op(format!("ld.global.u32 {r}, [{addr}]")),
            DType::I64 | DType::U64 => self.k.op(format!("ld.global.u64 {r}, [{addr}]")),
            other => bail!("dtype {} is not supported by the cuda backend yet", other.name()),
        }
        Ok(r)
    }

    /// Stores compute-type value `v` as dtype `t` at `addr` (f16/bf16 round to nearest even).
    pub fn store(&mut self, t: DType, v: &str, addr: &str) -> Result<()> {
        match t {
            DType::F32 => self.k.op(format!("st.global.f32 [{addr}], {v}")),
            DType::F64 => self.k.op(format!("st.global.f64 [{addr}], {v}")),
            DType::F16 => {
                let h = self.k.reg(Cls::B16);
                self.k.op(format!("cvt.rn.f16.f32 {h}, {v}"));
                self.k.op(format!("st.global.b16 [{addr}], {h}"));
            }
            DType::BF16 => {
                let u = self.bf16_bits(v);
                self.k.op(format!("st.global.u16 [{addr}], {u}"));
            }
            DType::Bool | DType::I8 | DType::U8 => self.k.op(format!("st.global.u8 [{addr}], {v}")),
            DType::I16 | DType::U16 => self.k.op(format!("st.global.u16 [{addr}], {v}")),
            DType::I32 | DType::U32 => self.k.op(format!("st.global.u32 [{addr}], {v}")),
            DType::I64 | DType::U64 => self.k.op(format!("st.global.u64 [{addr}], {v}")),
            other => bail!("dtype {} is not supported by the cuda backend yet", other.name()),
        }
        Ok(())
    }

    /// f32 `v` rounded to bf16 (nearest even; NaN stays a quiet NaN), as the low 16 bits
    /// of a b32 register (`vmath::f32_to_bf16`).
    fn bf16_bits(&mut self, v: &str) -> String {
        let k = &mut *self.k;
        let (u, odd, r, a, q) = (k.reg(Cls::B32), k.reg(Cls::B32), k.reg(Cls::B32), k.reg(Cls::B32), k.reg(Cls::B32));
        let p = k.reg(Cls::Pred);
        k.op(format!("mov.b32 {u}, {v}"));
        k.op(format!("bfe.u32 {odd}, {u}, 16, 1"));
        k.op(format!("add.u32 {r}, {u}, 32767"));
        k.op(format!("add.u32 {r}, {r}, {odd}"));
        k.op(format!("shr.u32 {r}, {r}, 16"));
        k.op(format!("and.b32 {a}, {u}, 2147483647"));
        k.op(format!("setp.gt.u32 {p}, {a}, 2139095040"));
        k.op(format!("shr.u32 {q}, {u}, 16"));
        k.op(format!("or.b32 {q}, {q}, 64"));
        k.op(format!("selp.b32 {r}, {q}, {r}, {p}"));
        r
    }

    /// Wraps a 32-bit register holding a result of dtype `t` back into `t`'s range.
    fn wrap(&mut self, t: DType, r: &str) {
        match (bits(t), t.is_signed_int()) {
            (8 | 16, true) => self.k.op(format!("bfe.s32 {r}, {r}, 0, {}", bits(t))),
            (8, false) => self.k.op(format!("and.b32 {r}, {r}, 255")),
            (16, false) => self.k.op(format!("and.b32 {r}, {r}, 65535")),
            (1, _) => self.k.op(format!("and.b32 {r}, {r}, 1")),
            _ => {}
        }
    }

    fn lit(&mut self, l: Lit) -> Result<String> {
        Ok(match l {
            Lit::F32(v) => {
                let r = self.k.reg(Cls::F32);
                self.k.op(format!("mov.f32 {r}, {}", f32_imm(v)));
                r
            }
            Lit::F64(v) => {
                let r = self.k.reg(Cls::F64);
                self.k.op(format!("mov.f64 {r}, {}", f64_imm(v)));
                r
            }
            Lit::Int(v, d) if cls(d)? == Cls::F32 => {
                let r = self.k.reg(Cls::F32);
                self.k.op(format!("mov.f32 {r}, {}", f32_imm(v as f32)));
                r
            }
            Lit::Int(v, d) => {
                let c = cls(d)?;
                let r = self.k.reg(c);
                if c == Cls::B64 {
                    self.k.op(format!("mov.u64 {r}, {}", v as u64));
                } else {
                    self.k.op(format!("mov.u32 {r}, {}", v as u32));
                }
                r
            }
        })
    }

    /// A 0/1 b32 register from predicate `p`.
    fn from_pred(&mut self, p: &str) -> String {
        let r = self.k.reg(Cls::B32);
        self.k.op(format!("selp.u32 {r}, 1, 0, {p}"));
        r
    }

    /// A predicate from a 0/1 bool register.
    pub fn to_pred(&mut self, b: &str) -> String {
        let p = self.k.reg(Cls::Pred);
        self.k.op(format!("setp.ne.u32 {p}, {b}, 0"));
        p
    }

    /// Emits `e`, returning the register that holds its value (in `e`'s compute type).
    pub fn expr(&mut self, e: &Expr) -> Result<String> {
        let acc_ty = self.acc_ty();
        Ok(match e {
            Expr::Load(a) => {
                let addr = self.addr(a)?;
                self.load(a.dtype, &addr)?
            }
            Expr::LoadAt { mem, dtype, len, index } => {
                let i = self.expr(index)?;
                let k = &mut *self.k;
                let (bad, safe) = (k.reg(Cls::Pred), k.reg(Cls::B64));
                k.op(format!("setp.ge.u64 {bad}, {i}, {len}"));
                k.op(format!("@{bad} st.global.u32 [{}], {ERR_INDEX}", self.status));
                k.op(format!("selp.b64 {safe}, 0, {i}, {bad}"));
                let es = esize(*dtype)?;
                let addr = k.reg(Cls::B64);
                let base = &self.bases[mem];
                k.op(format!("mad.lo.s64 {addr}, {safe}, {es}, {base}"));
                self.load(*dtype, &addr)?
            }
            Expr::Index(d) => self.idx[*d].clone(),
            Expr::Lit(l) => self.lit(*l)?,
            Expr::Acc => self.acc.as_ref().expect("Acc only in a reduction's finish").0.clone(),
            Expr::Un(op, a) => {
                let t = expr_dtype(a, acc_ty);
                let x = self.expr(a)?;
                self.unary(*op, &x, t)?
            }
            Expr::Bin(op, a, b) => {
                let t = expr_dtype(a, acc_ty);
                let x = self.expr(a)?;
                let y = self.expr(b)?;
                self.binary(*op, &x, &y, t)?
            }
            Expr::Select(c, a, b) => {
                let t = expr_dtype(a, acc_ty);
                let c = self.expr(c)?;
                let x = self.expr(a)?;
                let y = self.expr(b)?;
                let p = self.to_pred(&c);
                self.select(&p, &x, &y, t)?
            }
            Expr::Cast(to, a) | Expr::Convert(crate::kernel_ir::Conversion { to, .. }, a) => {
                let from = expr_dtype(a, acc_ty);
                let x = self.expr(a)?;
                self.cast(&x, from, *to)?
            }
            Expr::Math(op, a, b) => {
                let t = expr_dtype(a, acc_ty);
                if cls(t)? != Cls::F32 {
                    bail!("math function {op:?} on {} is not supported by the cuda backend (f32, f16 and bf16 are)", t.name());
                }
                let x = self.expr(a)?;
                let y = match b {
                    Some(b) => Some(self.expr(b)?),
                    None => None,
                };
                self.math(*op, &x, y.as_deref())?
            }
        })
    }

    pub fn math(&mut self, op: MathOp, x: &str, y: Option<&str>) -> Result<String> {
        math::emit(self.k, op, x, y)
    }

    pub fn select(&mut self, p: &str, x: &str, y: &str, t: DType) -> Result<String> {
        let c = cls(t)?;
        let r = self.k.reg(c);
        let ty = match c {
            Cls::F32 => "f32",
            Cls::F64 => "f64",
            Cls::B64 => "b64",
            _ => "b32",
        };
        self.k.op(format!("selp.{ty} {r}, {x}, {y}, {p}"));
        Ok(r)
    }

    fn unary(&mut self, op: UnOp, x: &str, t: DType) -> Result<String> {
        let c = cls(t)?;
        let fty = if c == Cls::F64 { "f64" } else { "f32" };
        let float = t.is_float();
        let r = self.k.reg(if matches!(op, UnOp::IsNaN | UnOp::IsInf { .. }) { Cls::B32 } else { c });
        let k = &mut *self.k;
        match op {
            UnOp::Neg if float => k.op(format!("neg.{fty} {r}, {x}")),
            UnOp::Abs if float => k.op(format!("abs.{fty} {r}, {x}")),
            UnOp::Sqrt if float => k.op(format!("sqrt.rn.{fty} {r}, {x}")),
            UnOp::Floor if float => k.op(format!("cvt.rmi.{fty}.{fty} {r}, {x}")),
            UnOp::Ceil if float => k.op(format!("cvt.rpi.{fty}.{fty} {r}, {x}")),
            UnOp::Trunc if float => k.op(format!("cvt.rzi.{fty}.{fty} {r}, {x}")),
            UnOp::Nearest if float => k.op(format!("cvt.rni.{fty}.{fty} {r}, {x}")),
            UnOp::Floor | UnOp::Ceil | UnOp::Trunc | UnOp::Nearest => return Ok(x.to_string()),
            UnOp::Sqrt => bail!("Sqrt on {} is not supported by the cuda backend", t.name()),
            UnOp::Neg => {
                k.op(format!("neg.{} {r}, {x}", ity(t).replace('u', "s")));
                self.wrap(t, &r);
            }
            UnOp::Abs if t.is_unsigned_int() || t == DType::Bool => return Ok(x.to_string()),
            UnOp::Abs => {
                k.op(format!("abs.{} {r}, {x}", ity(t)));
                self.wrap(t, &r);
            }
            UnOp::Not if t == DType::Bool => k.op(format!("xor.b32 {r}, {x}, 1")),
            UnOp::Not => {
                k.op(format!("not.b{} {r}, {x}", if c == Cls::B64 { 64 } else { 32 }));
                self.wrap(t, &r);
            }
            UnOp::IsNaN => {
                let p = k.reg(Cls::Pred);
                k.op(format!("setp.nan.{fty} {p}, {x}, {x}"));
                k.op(format!("selp.u32 {r}, 1, 0, {p}"));
            }
            UnOp::IsInf { negative, positive } => {
                let (inf, ninf) = if c == Cls::F64 { (f64_imm(f64::INFINITY), f64_imm(f64::NEG_INFINITY)) } else { (f32_imm(f32::INFINITY), f32_imm(f32::NEG_INFINITY)) };
                let (p, q) = (k.reg(Cls::Pred), k.reg(Cls::Pred));
                k.op(format!("setp.eq.{fty} {p}, {x}, {inf}"));
                k.op(format!("setp.eq.{fty} {q}, {x}, {ninf}"));
                match (negative, positive) {
                    (true, true) => k.op(format!("or.pred {p}, {p}, {q}")),
                    (true, false) => k.op(format!("mov.pred {p}, {q}")),
                    (false, true) => {}
                    (false, false) => k.op(format!("mov.pred {p}, 0")),
                }
                k.op(format!("selp.u32 {r}, 1, 0, {p}"));
            }
        }
        Ok(r)
    }

    pub fn binary(&mut self, op: BinOp, x: &str, y: &str, t: DType) -> Result<String> {
        let c = cls(t)?;
        if t.is_float() {
            let f = if c == Cls::F64 { "f64" } else { "f32" };
            let k = &mut *self.k;
            if op.is_comparison() {
                let p = k.reg(Cls::Pred);
                let cc = match op {
                    BinOp::Eq => "eq",
                    BinOp::Lt => "lt",
                    BinOp::Le => "le",
                    BinOp::Gt => "gt",
                    _ => "ge",
                };
                k.op(format!("setp.{cc}.{f} {p}, {x}, {y}"));
                return Ok(self.from_pred(&p));
            }
            let r = k.reg(c);
            match op {
                BinOp::Add => k.op(format!("add.rn.{f} {r}, {x}, {y}")),
                BinOp::Sub => k.op(format!("sub.rn.{f} {r}, {x}, {y}")),
                BinOp::Mul => k.op(format!("mul.rn.{f} {r}, {x}, {y}")),
                BinOp::Div => k.op(format!("div.rn.{f} {r}, {x}, {y}")),
                BinOp::Min | BinOp::Max => {
                    // PTX min/max return the other operand for one NaN; the IR's propagate it.
                    let m = if op == BinOp::Min { "min" } else { "max" };
                    let (px, py) = (k.reg(Cls::Pred), k.reg(Cls::Pred));
                    k.op(format!("{m}.{f} {r}, {x}, {y}"));
                    k.op(format!("setp.nan.{f} {px}, {x}, {x}"));
                    k.op(format!("setp.nan.{f} {py}, {y}, {y}"));
                    k.op(format!("selp.{f} {r}, {x}, {r}, {px}"));
                    k.op(format!("selp.{f} {r}, {y}, {r}, {py}"));
                }
                other => bail!("{other:?} on {} is not supported by the cuda backend", t.name()),
            }
            return Ok(r);
        }
        let it = ity(t);
        let w = if c == Cls::B64 { 64 } else { 32 };
        if op.is_comparison() {
            let p = self.k.reg(Cls::Pred);
            let cc = match op {
                BinOp::Eq => "eq",
                BinOp::Lt => "lt",
                BinOp::Le => "le",
                BinOp::Gt => "gt",
                _ => "ge",
            };
            self.k.op(format!("setp.{cc}.{it} {p}, {x}, {y}"));
            return Ok(self.from_pred(&p));
        }
        let r = self.k.reg(c);
        match op {
            BinOp::Add => self.k.op(format!("add.{it} {r}, {x}, {y}")),
            BinOp::Sub => self.k.op(format!("sub.{it} {r}, {x}, {y}")),
            BinOp::Mul => self.k.op(format!("mul.lo.{it} {r}, {x}, {y}")),
            BinOp::Div | BinOp::TruncMod | BinOp::FloorMod => return self.int_divide(op, x, y, t),
            BinOp::Min => self.k.op(format!("min.{it} {r}, {x}, {y}")),
            BinOp::Max => self.k.op(format!("max.{it} {r}, {x}, {y}")),
            BinOp::And => self.k.op(format!("and.b{w} {r}, {x}, {y}")),
            BinOp::Or => self.k.op(format!("or.b{w} {r}, {x}, {y}")),
            BinOp::Xor => self.k.op(format!("xor.b{w} {r}, {x}, {y}")),
            BinOp::Shl | BinOp::Shr => {
                // PTX clamps shift amounts above the register width to the width, which
                // gives 0 (or the sign) as the IR wants; the amount is an unsigned u32, so a
                // 64-bit (or negative) amount is clamped to 64 first.
                let amount = if c == Cls::B64 {
                    let (m, a) = (self.k.reg(Cls::B64), self.k.reg(Cls::B32));
                    self.k.op(format!("min.u64 {m}, {y}, 64"));
                    self.k.op(format!("cvt.u32.u64 {a}, {m}"));
                    a
                } else {
                    y.to_string()
                };
                let ins = match (op, t.is_signed_int()) {
                    (BinOp::Shl, _) => format!("shl.b{w}"),
                    (_, true) => format!("shr.s{w}"),
                    _ => format!("shr.u{w}"),
                };
                self.k.op(format!("{ins} {r}, {x}, {amount}"));
            }
            _ => unreachable!("comparisons returned above"),
        }
        self.wrap(t, &r);
        Ok(r)
    }

    /// Integer division and remainders that never trap (the CPU backend's `int_divide`).
    fn int_divide(&mut self, op: BinOp, x: &str, y: &str, t: DType) -> Result<String> {
        let c = cls(t)?;
        let it = ity(t);
        let signed = t.is_signed_int();
        let b = if c == Cls::B64 { "b64" } else { "b32" };
        let k = &mut *self.k;
        let (zero, m1, bad) = (k.reg(Cls::Pred), k.reg(Cls::Pred), k.reg(Cls::Pred));
        let (sy, q, rm) = (k.reg(c), k.reg(c), k.reg(c));
        k.op(format!("setp.eq.{it} {zero}, {y}, 0"));
        if signed {
            k.op(format!("setp.eq.{it} {m1}, {y}, -1"));
            k.op(format!("or.pred {bad}, {zero}, {m1}"));
        } else {
            k.op(format!("mov.pred {m1}, 0"));
            k.op(format!("mov.pred {bad}, {zero}"));
        }
        k.op(format!("selp.{b} {sy}, 1, {y}, {bad}"));
        k.op(format!("div.{it} {q}, {x}, {sy}"));
        k.op(format!("rem.{it} {rm}, {x}, {sy}"));
        if signed {
            let n = k.reg(c);
            k.op(format!("neg.{it} {n}, {x}"));
            k.op(format!("selp.{b} {q}, {n}, {q}, {m1}"));
            k.op(format!("selp.{b} {rm}, 0, {rm}, {m1}"));
        }
        let r = match op {
            BinOp::Div => q,
            BinOp::TruncMod => rm,
            _ if signed => {
                // Floor mod: add y when r != 0 and the signs of r and y differ.
                let (nz, diff, s) = (k.reg(Cls::Pred), k.reg(Cls::Pred), k.reg(c));
                let fixed = k.reg(c);
                k.op(format!("setp.ne.{it} {nz}, {rm}, 0"));
                k.op(format!("xor.{b} {s}, {rm}, {y}"));
                k.op(format!("setp.lt.{it} {diff}, {s}, 0"));
                k.op(format!("and.pred {nz}, {nz}, {diff}"));
                k.op(format!("add.{it} {fixed}, {rm}, {y}"));
                k.op(format!("selp.{b} {fixed}, {fixed}, {rm}, {nz}"));
                fixed
            }
            _ => rm,
        };
        let out = self.k.reg(c);
        self.k.op(format!("selp.{b} {out}, 0, {r}, {zero}"));
        self.wrap(t, &out);
        Ok(out)
    }

    /// Converts between compute-type values with Cast's rules (the CPU backend's
    /// `convert`/`cast_compute`).
    pub fn cast(&mut self, x: &str, from: DType, to: DType) -> Result<String> {
        let (fc, tc) = (cls(from)?, cls(to)?);
        if from == to {
            return Ok(x.to_string());
        }
        if from == DType::F64 && matches!(to, DType::F16 | DType::BF16) {
            // f64 → f32 → f16 would round twice; rounding to odd first makes it exact.
            let r = self.f64_to_f32_odd(x);
            return self.cast(&r, DType::F32, to);
        }
        let k = &mut *self.k;
        let v = match (from.is_float(), to.is_float()) {
            (true, true) => {
                if fc == tc {
                    x.to_string()
                } else {
                    let r = k.reg(tc);
                    if tc == Cls::F64 {
                        k.op(format!("cvt.f64.f32 {r}, {x}"));
                    } else {
                        k.op(format!("cvt.rn.f32.f64 {r}, {x}"));
                    }
                    r
                }
            }
            (false, true) => {
                let r = k.reg(tc);
                let f = if tc == Cls::F64 { "f64" } else { "f32" };
                let src = if from == DType::Bool { "u32" } else { ity(from) };
                k.op(format!("cvt.rn.{f}.{src} {r}, {x}"));
                r
            }
            (true, false) if to == DType::Bool => {
                let f = if fc == Cls::F64 { "f64" } else { "f32" };
                let p = k.reg(Cls::Pred);
                // NaN is true (numpy): "not equal or unordered".
                k.op(format!("setp.neu.{f} {p}, {x}, 0{}", if fc == Cls::F64 { "d0000000000000000" } else { "f00000000" }));
                return Ok(self.from_pred(&p));
            }
            (true, false) => {
                let f = if fc == Cls::F64 { "f64" } else { "f32" };
                let (ax, mag, neg) = (k.reg(fc), k.reg(Cls::B64), k.reg(Cls::B64));
                let (isneg, inr) = (k.reg(Cls::Pred), k.reg(Cls::Pred));
                let limit = if fc == Cls::F64 { f64_imm(2f64.powi(64)) } else { f32_imm(2f32.powi(64)) };
                let zero = if fc == Cls::F64 { f64_imm(0.0) } else { f32_imm(0.0) };
                k.op(format!("abs.{f} {ax}, {x}"));
                // Saturating (NaN gives 0); exact below 2^64.
                k.op(format!("cvt.rzi.u64.{f} {mag}, {ax}"));
                k.op(format!("neg.s64 {neg}, {mag}"));
                k.op(format!("setp.lt.{f} {isneg}, {x}, {zero}"));
                k.op(format!("selp.b64 {mag}, {neg}, {mag}, {isneg}"));
                k.op(format!("setp.lt.{f} {inr}, {ax}, {limit}"));
                k.op(format!("selp.b64 {mag}, {mag}, 0, {inr}"));
                if tc == Cls::B64 {
                    mag
                } else {
                    let r = k.reg(Cls::B32);
                    k.op(format!("cvt.u32.u64 {r}, {mag}"));
                    self.wrap(to, &r);
                    r
                }
            }
            (false, false) => {
                if to == DType::Bool {
                    let p = k.reg(Cls::Pred);
                    k.op(format!("setp.ne.{} {p}, {x}, 0", if fc == Cls::B64 { "u64" } else { "u32" }));
                    return Ok(self.from_pred(&p));
                }
                let r = k.reg(tc);
                match (fc, tc) {
                    (Cls::B32, Cls::B64) => {
                        let s = if from.is_signed_int() { "cvt.s64.s32" } else { "cvt.u64.u32" };
                        k.op(format!("{s} {r}, {x}"));
                    }
                    (Cls::B64, Cls::B32) => {
                        k.op(format!("cvt.u32.u64 {r}, {x}"));
                        self.wrap(to, &r);
                    }
                    (Cls::B64, Cls::B64) => k.op(format!("mov.b64 {r}, {x}")),
                    _ => {
                        k.op(format!("mov.b32 {r}, {x}"));
                        self.wrap(to, &r);
                    }
                }
                r
            }
        };
        // Narrow floats: round to the type, keep computing in f32.
        Ok(match to {
            DType::F16 => {
                let (h, r) = (self.k.reg(Cls::B16), self.k.reg(Cls::F32));
                self.k.op(format!("cvt.rn.f16.f32 {h}, {v}"));
                self.k.op(format!("cvt.f32.f16 {r}, {h}"));
                r
            }
            DType::BF16 => {
                let u = self.bf16_bits(&v);
                let r = self.k.reg(Cls::F32);
                self.k.op(format!("shl.b32 {u}, {u}, 16"));
                self.k.op(format!("mov.b32 {r}, {u}"));
                r
            }
            _ => v,
        })
    }

    /// f64 `x` to f32 rounded to odd (inexact results get an odd last bit).
    fn f64_to_f32_odd(&mut self, x: &str) -> String {
        let k = &mut *self.k;
        let (r, back, ab, ax) = (k.reg(Cls::F32), k.reg(Cls::F64), k.reg(Cls::F64), k.reg(Cls::F64));
        let (bits, low, down, up) = (k.reg(Cls::B32), k.reg(Cls::B32), k.reg(Cls::B32), k.reg(Cls::B32));
        let (inexact, even, away) = (k.reg(Cls::Pred), k.reg(Cls::Pred), k.reg(Cls::Pred));
        k.op(format!("cvt.rn.f32.f64 {r}, {x}"));
        k.op(format!("cvt.f64.f32 {back}, {r}"));
        k.op(format!("setp.neu.f64 {inexact}, {back}, {x}"));
        k.op(format!("mov.b32 {bits}, {r}"));
        k.op(format!("and.b32 {low}, {bits}, 1"));
        k.op(format!("setp.eq.u32 {even}, {low}, 0"));
        k.op(format!("and.pred {inexact}, {inexact}, {even}"));
        k.op(format!("abs.f64 {ab}, {back}"));
        k.op(format!("abs.f64 {ax}, {x}"));
        k.op(format!("setp.gt.f64 {away}, {ab}, {ax}"));
        k.op(format!("sub.u32 {down}, {bits}, 1"));
        k.op(format!("add.u32 {up}, {bits}, 1"));
        k.op(format!("selp.b32 {down}, {down}, {up}, {away}"));
        k.op(format!("selp.b32 {bits}, {down}, {bits}, {inexact}"));
        let out = k.reg(Cls::F32);
        k.op(format!("mov.b32 {out}, {bits}"));
        out
    }
}
