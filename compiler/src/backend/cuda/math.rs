//! f32 math functions as PTX (no libdevice: the driver loads our PTX alone). PTX's own
//! transcendental instructions are approximations (`ex2.approx`, `sin.approx`, ...) whose
//! absolute errors fail ONNX's `atol` near zero, so these are range reductions and
//! polynomials with fused multiply-adds:
//!
//! - `exp`, `sigmoid`, `tanh`, `erf`: the CPU backend's inline forms (`backend/cpu/vmath.rs`:
//!   Cody–Waite reduction, Cephes' polynomials, the same constants), so the two backends
//!   agree to within an ulp or two;
//! - `log`: musl's `logf` (reduction to [√½, √2), an odd series in `f/(2+f)`);
//! - `sin`, `cos`, `tan`: reduction by π/2 and musl's `__sindf`/`__cosdf` kernels, in f64
//!   (accurate for |x| < 2^28; beyond, the reduction loses bits);
//! - `asin`, `acos`, `atan`: Cephes' `asinf`/`atanf` (acos via asin without cancellation);
//! - `expm1`, `log1p` by Kahan's corrections of `exp`/`log`; `sinh`, `cosh`, `asinh`,
//!   `acosh`, `atanh` from those; `softplus` as `max(x,0) + log1p(exp(-|x|))`;
//! - `pow` as `exp(b·log|a|)` with C's special cases (negative bases with integer
//!   exponents, zeros, ones); `fmod` exactly, in f64, with the dividend's sign.

use anyhow::Result;
use neoc_runtime::abi::MathOp;
use neoc_runtime::kernels::math::erf_f32::{CLAMP as ERF_CLAMP, P as ERF_P, Q as ERF_Q, SMALL as ERF_SMALL};

use super::ptx::{Cls, Kernel, f32_imm, f64_imm};

const EXP_P: [f32; 6] = [1.987_569_2e-4, 1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 5.000_000_1e-1];
const LN2_HI: f32 = 0.693_359_375;
const LN2_LO: f32 = -2.121_944_4e-4;
const SHIFTER: f32 = 12_582_912.0;
const TANH_P: [f32; 5] = [-5.704_988_7e-3, 2.063_908_9e-2, -5.373_971_6e-2, 1.333_144_2e-1, -3.333_328_2e-1];

/// `op(x[, y])` for f32 registers; the result register.
pub fn emit(k: &mut Kernel, op: MathOp, x: &str, y: Option<&str>) -> Result<String> {
    let mut m = M { k };
    let y = y.map(str::to_string);
    Ok(match op {
        MathOp::Exp => m.exp(x),
        MathOp::Log => m.log(x),
        MathOp::Tanh => m.tanh(x),
        MathOp::Erf => m.erf(x),
        MathOp::Sigmoid => m.sigmoid(x),
        MathOp::Sin => m.sincos(x, false, false),
        MathOp::Cos => m.sincos(x, true, false),
        MathOp::Tan => m.sincos(x, false, true),
        MathOp::Asin => m.asin(x),
        MathOp::Acos => m.acos(x),
        MathOp::Atan => m.atan(x),
        MathOp::Sinh => m.sinh_cosh(x, false),
        MathOp::Cosh => m.sinh_cosh(x, true),
        MathOp::Asinh => m.asinh(x),
        MathOp::Acosh => m.acosh(x),
        MathOp::Atanh => m.atanh(x),
        MathOp::Expm1 => m.expm1(x),
        MathOp::Log1p => m.log1p(x),
        MathOp::Softplus => m.softplus(x),
        MathOp::Pow => m.pow(x, &y.ok_or_else(|| anyhow::anyhow!("Pow needs two operands"))?),
        MathOp::Fmod => m.fmod(x, &y.ok_or_else(|| anyhow::anyhow!("Fmod needs two operands"))?),
    })
}

struct M<'a> {
    k: &'a mut Kernel,
}

fn c(v: f32) -> String {
    f32_imm(v)
}

impl M<'_> {
    fn f(&mut self) -> String {
        self.k.reg(Cls::F32)
    }
    fn p(&mut self) -> String {
        self.k.reg(Cls::Pred)
    }
    /// `op.f32 r, a, b` style: one result register.
    fn op2(&mut self, op: &str, a: &str, b: &str) -> String {
        let r = self.f();
        self.k.op(format!("{op}.f32 {r}, {a}, {b}"));
        r
    }
    fn op1(&mut self, op: &str, a: &str) -> String {
        let r = self.f();
        self.k.op(format!("{op}.f32 {r}, {a}"));
        r
    }
    fn add(&mut self, a: &str, b: &str) -> String {
        self.op2("add.rn", a, b)
    }
    fn sub(&mut self, a: &str, b: &str) -> String {
        self.op2("sub.rn", a, b)
    }
    fn mul(&mut self, a: &str, b: &str) -> String {
        self.op2("mul.rn", a, b)
    }
    fn div(&mut self, a: &str, b: &str) -> String {
        self.op2("div.rn", a, b)
    }
    fn fma(&mut self, a: &str, b: &str, cc: &str) -> String {
        let r = self.f();
        self.k.op(format!("fma.rn.f32 {r}, {a}, {b}, {cc}"));
        r
    }
    fn horner(&mut self, x: &str, cs: &[f32]) -> String {
        let mut r = self.f();
        self.k.op(format!("mov.f32 {r}, {}", c(cs[0])));
        for &v in &cs[1..] {
            r = self.fma(&r, x, &c(v));
        }
        r
    }
    /// A predicate `a <cc> b` (ordered: false with NaN unless `cc` says otherwise).
    fn cmp(&mut self, cc: &str, a: &str, b: &str) -> String {
        let p = self.p();
        self.k.op(format!("setp.{cc}.f32 {p}, {a}, {b}"));
        p
    }
    fn sel(&mut self, p: &str, a: &str, b: &str) -> String {
        let r = self.f();
        self.k.op(format!("selp.f32 {r}, {a}, {b}, {p}"));
        r
    }
    /// `|y|` with the sign bit of `x`.
    fn with_sign_of(&mut self, y: &str, x: &str) -> String {
        let (a, b) = (self.k.reg(Cls::B32), self.k.reg(Cls::B32));
        self.k.op(format!("mov.b32 {a}, {x}"));
        self.k.op(format!("and.b32 {a}, {a}, 0x80000000"));
        self.k.op(format!("mov.b32 {b}, {y}"));
        self.k.op(format!("and.b32 {b}, {b}, 0x7FFFFFFF"));
        self.k.op(format!("or.b32 {b}, {b}, {a}"));
        let r = self.f();
        self.k.op(format!("mov.b32 {r}, {b}"));
        r
    }
    fn pow2(&mut self, n: &str) -> String {
        let e = self.k.reg(Cls::B32);
        self.k.op(format!("add.s32 {e}, {n}, 127"));
        self.k.op(format!("shl.b32 {e}, {e}, 23"));
        let r = self.f();
        self.k.op(format!("mov.b32 {r}, {e}"));
        r
    }

    fn exp(&mut self, x: &str) -> String {
        // Clamp to [-104, 89] letting NaN through.
        let lo = self.cmp("lt", x, &c(-104.0));
        let x = self.sel(&lo, &c(-104.0), x);
        let hi = self.cmp("gt", &x, &c(89.0));
        let x = self.sel(&hi, &c(89.0), &x);
        let t = self.fma(&x, &c(std::f32::consts::LOG2_E), &c(SHIFTER));
        let n = self.sub(&t, &c(SHIFTER));
        let nn = self.op1("neg", &n);
        let r = self.fma(&nn, &c(LN2_HI), &x);
        let r = self.fma(&nn, &c(LN2_LO), &r);
        let p = self.horner(&r, &EXP_P);
        let r2 = self.mul(&r, &r);
        let q = self.fma(&p, &r2, &r);
        let y = self.add(&q, &c(1.0));
        let (tb, n1, n2) = (self.k.reg(Cls::B32), self.k.reg(Cls::B32), self.k.reg(Cls::B32));
        self.k.op(format!("mov.b32 {tb}, {t}"));
        self.k.op(format!("sub.s32 {tb}, {tb}, {}", SHIFTER.to_bits()));
        self.k.op(format!("shr.s32 {n1}, {tb}, 1"));
        self.k.op(format!("sub.s32 {n2}, {tb}, {n1}"));
        let s1 = self.pow2(&n1);
        let s2 = self.pow2(&n2);
        let y = self.mul(&y, &s1);
        self.mul(&y, &s2)
    }

    fn sigmoid(&mut self, x: &str) -> String {
        let a = self.op1("abs", x);
        let na = self.op1("neg", &a);
        let e = self.exp(&na);
        let d = self.add(&c(1.0), &e);
        let neg = self.cmp("lt", x, &c(0.0));
        let num = self.sel(&neg, &e, &c(1.0));
        self.div(&num, &d)
    }

    fn tanh(&mut self, x: &str) -> String {
        let a = self.op1("abs", x);
        let z = self.mul(&a, &a);
        let p = self.horner(&z, &TANH_P);
        let pz = self.mul(&p, &z);
        let small = self.fma(&pz, &a, &a);
        let a2 = self.add(&a, &a);
        let e = self.exp(&a2);
        let d = self.add(&e, &c(1.0));
        let q = self.div(&c(2.0), &d);
        let large = self.sub(&c(1.0), &q);
        let is_small = self.cmp("lt", &a, &c(0.625));
        let y = self.sel(&is_small, &small, &large);
        self.with_sign_of(&y, x)
    }

    fn erf(&mut self, x: &str) -> String {
        let a = self.op1("abs", x);
        let s = self.mul(&a, &a);
        let p = self.horner(&s, &ERF_P);
        let small = self.fma(&a, &p, &a);
        let above = self.cmp("gt", &a, &c(ERF_CLAMP));
        let t = self.sel(&above, &c(ERF_CLAMP), &a);
        let q = self.horner(&t, &ERF_Q);
        let e = self.exp(&q);
        let large = self.sub(&c(1.0), &e);
        let is_small = self.cmp("lt", &a, &c(ERF_SMALL));
        let y = self.sel(&is_small, &small, &large);
        self.with_sign_of(&y, x)
    }

    /// musl's logf.
    fn log(&mut self, x0: &str) -> String {
        // Subnormals: scale up by 2^25 first.
        let sub = self.cmp("lt", x0, &c(f32::MIN_POSITIVE));
        let scaled = self.mul(x0, &c(33_554_432.0));
        let x = self.sel(&sub, &scaled, x0);
        let (ix, kk, m) = (self.k.reg(Cls::B32), self.k.reg(Cls::B32), self.k.reg(Cls::B32));
        self.k.op(format!("mov.b32 {ix}, {x}"));
        self.k.op(format!("add.s32 {ix}, {ix}, {}", 0x3f80_0000i32 - 0x3f35_04f3));
        self.k.op(format!("shr.s32 {kk}, {ix}, 23"));
        self.k.op(format!("sub.s32 {kk}, {kk}, 127"));
        self.k.op(format!("and.b32 {m}, {ix}, 8388607"));
        self.k.op(format!("add.s32 {m}, {m}, {}", 0x3f35_04f3));
        let p25 = self.k.reg(Cls::B32);
        self.k.op(format!("selp.s32 {p25}, 25, 0, {sub}"));
        self.k.op(format!("sub.s32 {kk}, {kk}, {p25}"));
        let xm = self.f();
        self.k.op(format!("mov.b32 {xm}, {m}"));
        let f = self.sub(&xm, &c(1.0));
        let two_f = self.add(&c(2.0), &f);
        let s = self.div(&f, &two_f);
        let z = self.mul(&s, &s);
        let w = self.mul(&z, &z);
        let t1 = self.fma(&w, &c(0.242_790_79), &c(0.400_009_72));
        let t1 = self.mul(&w, &t1);
        let t2 = self.fma(&w, &c(0.284_987_87), &c(0.666_666_6));
        let t2 = self.mul(&z, &t2);
        let r = self.add(&t2, &t1);
        let hf = self.mul(&f, &f);
        let hfsq = self.mul(&c(0.5), &hf);
        let dk = self.f();
        self.k.op(format!("cvt.rn.f32.s32 {dk}, {kk}"));
        let a = self.add(&hfsq, &r);
        let a = self.mul(&s, &a);
        let a = self.fma(&dk, &c(9.058_000_6e-6), &a);
        let a = self.sub(&a, &hfsq);
        let a = self.add(&a, &f);
        let y = self.fma(&dk, &c(0.693_138_1), &a);
        // Specials: x < 0 or NaN → NaN, 0 → -inf, +inf → +inf.
        let neg = self.cmp("ltu", x0, &c(0.0));
        let y = self.sel(&neg, &c(f32::NAN), &y);
        let zero = self.cmp("eq", x0, &c(0.0));
        let y = self.sel(&zero, &c(f32::NEG_INFINITY), &y);
        let inf = self.cmp("eq", x0, &c(f32::INFINITY));
        let y = self.sel(&inf, &c(f32::INFINITY), &y);
        let nan = self.cmp("nan", x0, x0);
        self.sel(&nan, x0, &y)
    }

    /// sin, cos or tan: reduction by π/2 and musl's kernels, in f64.
    fn sincos(&mut self, x: &str, cos: bool, tan: bool) -> String {
        let k = &mut *self.k;
        let (xd, t, n, r, z, w) = (k.reg(Cls::F64), k.reg(Cls::F64), k.reg(Cls::F64), k.reg(Cls::F64), k.reg(Cls::F64), k.reg(Cls::F64));
        k.op(format!("cvt.f64.f32 {xd}, {x}"));
        k.op(format!("mul.rn.f64 {t}, {xd}, {}", f64_imm(std::f64::consts::FRAC_2_PI)));
        k.op(format!("cvt.rni.f64.f64 {n}, {t}"));
        k.op(format!("fma.rn.f64 {r}, {n}, {}, {xd}", f64_imm(-1.570_796_310_901_641_845_70)));
        k.op(format!("fma.rn.f64 {r}, {n}, {}, {r}", f64_imm(-1.589_325_477_352_819_669_16e-8)));
        k.op(format!("mul.rn.f64 {z}, {r}, {r}"));
        k.op(format!("mul.rn.f64 {w}, {z}, {z}"));
        // __sindf(r)
        let (s, sr, s1, sin) = (k.reg(Cls::F64), k.reg(Cls::F64), k.reg(Cls::F64), k.reg(Cls::F64));
        k.op(format!("fma.rn.f64 {sr}, {z}, {}, {}", f64_imm(2.718_311_493_989_821_906_4e-6), f64_imm(-1.983_933_483_609_663_173_47e-4)));
        k.op(format!("mul.rn.f64 {s}, {z}, {r}"));
        k.op(format!("fma.rn.f64 {s1}, {z}, {}, {}", f64_imm(8.333_329_385_889_463_175_6e-3), f64_imm(-0.166_666_666_416_265_235_595)));
        k.op(format!("fma.rn.f64 {sin}, {s}, {s1}, {r}"));
        k.op(format!("mul.rn.f64 {s}, {s}, {w}"));
        k.op(format!("fma.rn.f64 {sin}, {s}, {sr}, {sin}"));
        // __cosdf(r)
        let (cr, c0, cw, cosr) = (k.reg(Cls::F64), k.reg(Cls::F64), k.reg(Cls::F64), k.reg(Cls::F64));
        k.op(format!("fma.rn.f64 {cr}, {z}, {}, {}", f64_imm(2.439_044_879_627_740_906_54e-5), f64_imm(-1.388_676_377_460_992_946_92e-3)));
        k.op(format!("fma.rn.f64 {c0}, {z}, {}, {}", f64_imm(-0.499_999_997_251_031_003_120), f64_imm(1.0)));
        k.op(format!("fma.rn.f64 {c0}, {w}, {}, {c0}", f64_imm(4.166_662_332_373_906_318_94e-2)));
        k.op(format!("mul.rn.f64 {cw}, {w}, {z}"));
        k.op(format!("fma.rn.f64 {cosr}, {cw}, {cr}, {c0}"));
        // Quadrant.
        let (q, q1, q2) = (k.reg(Cls::B32), k.reg(Cls::B32), k.reg(Cls::B32));
        let (odd, flip) = (k.reg(Cls::Pred), k.reg(Cls::Pred));
        k.op(format!("cvt.rzi.s32.f64 {q}, {n}"));
        if cos {
            k.op(format!("add.s32 {q}, {q}, 1"));
        }
        k.op(format!("and.b32 {q1}, {q}, 1"));
        k.op(format!("and.b32 {q2}, {q}, 2"));
        k.op(format!("setp.ne.u32 {odd}, {q1}, 0"));
        k.op(format!("setp.ne.u32 {flip}, {q2}, 0"));
        let res = k.reg(Cls::F64);
        if tan {
            // tan = sin/cos, and -cos/sin in odd quadrants.
            let (a, b, na) = (k.reg(Cls::F64), k.reg(Cls::F64), k.reg(Cls::F64));
            k.op(format!("selp.f64 {a}, {cosr}, {sin}, {odd}"));
            k.op(format!("selp.f64 {b}, {sin}, {cosr}, {odd}"));
            k.op(format!("neg.f64 {na}, {a}"));
            k.op(format!("selp.f64 {a}, {na}, {a}, {odd}"));
            k.op(format!("div.rn.f64 {res}, {a}, {b}"));
        } else {
            let neg = k.reg(Cls::F64);
            k.op(format!("selp.f64 {res}, {cosr}, {sin}, {odd}"));
            k.op(format!("neg.f64 {neg}, {res}"));
            k.op(format!("selp.f64 {res}, {neg}, {res}, {flip}"));
        }
        let out = self.f();
        self.k.op(format!("cvt.rn.f32.f64 {out}, {res}"));
        out
    }

    /// Cephes asinf on |x| ≤ 1 without the sign: (result, |x| > 1 as NaN handled by caller).
    fn asin_abs(&mut self, a: &str) -> String {
        let big = self.cmp("gt", a, &c(0.5));
        let one_m = self.sub(&c(1.0), a);
        let zb = self.mul(&c(0.5), &one_m);
        let zs = self.mul(a, a);
        let z = self.sel(&big, &zb, &zs);
        let sq = self.op1("sqrt.rn", &zb);
        let xx = self.sel(&big, &sq, a);
        let p = self.horner(&z, &[4.216_32e-2, 2.418_131_1e-2, 4.547_002_6e-2, 7.495_300_3e-2, 1.666_675_2e-1]);
        let pz = self.mul(&p, &z);
        let y = self.fma(&pz, &xx, &xx);
        let y2 = self.add(&y, &y);
        let yb = self.sub(&c(std::f32::consts::FRAC_PI_2), &y2);
        let y = self.sel(&big, &yb, &y);
        let out = self.cmp("gtu", a, &c(1.0));
        self.sel(&out, &c(f32::NAN), &y)
    }

    fn asin(&mut self, x: &str) -> String {
        let a = self.op1("abs", x);
        let y = self.asin_abs(&a);
        let y = self.with_sign_of(&y, x);
        let nan = self.cmp("nan", x, x);
        self.sel(&nan, x, &y)
    }

    fn acos(&mut self, x: &str) -> String {
        // x > 0.5: 2·asin(√((1-x)/2)); x < -0.5: π - 2·asin(√((1+x)/2)); else π/2 - asin(x).
        let a = self.op1("abs", x);
        let one_m = self.sub(&c(1.0), &a);
        let h = self.mul(&c(0.5), &one_m);
        let s = self.op1("sqrt.rn", &h);
        let as_ = self.asin_abs(&s);
        let two = self.add(&as_, &as_);
        let pi_m = self.sub(&c(std::f32::consts::PI), &two);
        let neg = self.cmp("lt", x, &c(0.0));
        let far = self.sel(&neg, &pi_m, &two);
        let mid_a = self.asin_abs(&a);
        let mid_s = self.with_sign_of(&mid_a, x);
        let mid = self.sub(&c(std::f32::consts::FRAC_PI_2), &mid_s);
        let is_far = self.cmp("gt", &a, &c(0.5));
        let y = self.sel(&is_far, &far, &mid);
        let out = self.cmp("gtu", &a, &c(1.0));
        self.sel(&out, &c(f32::NAN), &y)
    }

    fn atan(&mut self, x: &str) -> String {
        let a = self.op1("abs", x);
        let big = self.cmp("gt", &a, &c(2.414_213_5));
        let mid = self.cmp("gt", &a, &c(0.414_213_57));
        let inv = self.div(&c(-1.0), &a);
        let am1 = self.sub(&a, &c(1.0));
        let ap1 = self.add(&a, &c(1.0));
        let q = self.div(&am1, &ap1);
        let xm = self.sel(&mid, &q, &a);
        let xr = self.sel(&big, &inv, &xm);
        let y0m = self.sel(&mid, &c(std::f32::consts::FRAC_PI_4), &c(0.0));
        let y0 = self.sel(&big, &c(std::f32::consts::FRAC_PI_2), &y0m);
        let z = self.mul(&xr, &xr);
        let p = self.horner(&z, &[8.053_744_5e-2, -1.387_768_6e-1, 1.997_771_1e-1, -3.333_294_9e-1]);
        let pz = self.mul(&p, &z);
        let t = self.fma(&pz, &xr, &xr);
        let y = self.add(&y0, &t);
        let y = self.with_sign_of(&y, x);
        let nan = self.cmp("nan", x, x);
        self.sel(&nan, x, &y)
    }

    fn expm1(&mut self, x: &str) -> String {
        // Kahan: u = e^x; (u - 1)·x / ln u for |x| < 0.5 (u == 1 gives x), else u - 1.
        let u = self.exp(x);
        let um1 = self.sub(&u, &c(1.0));
        let lu = self.log(&u);
        let t = self.mul(&um1, x);
        let t = self.div(&t, &lu);
        let one = self.cmp("eq", &u, &c(1.0));
        let small = self.sel(&one, x, &t);
        let a = self.op1("abs", x);
        let is_small = self.cmp("lt", &a, &c(0.5));
        self.sel(&is_small, &small, &um1)
    }

    fn log1p(&mut self, x: &str) -> String {
        // Kahan: u = 1 + x; ln u · x / (u - 1) for |x| < 0.5 (u == 1 gives x), else ln u.
        let u = self.add(&c(1.0), x);
        let lu = self.log(&u);
        let um1 = self.sub(&u, &c(1.0));
        let t = self.mul(&lu, x);
        let t = self.div(&t, &um1);
        let one = self.cmp("eq", &u, &c(1.0));
        let small = self.sel(&one, x, &t);
        let a = self.op1("abs", x);
        let is_small = self.cmp("lt", &a, &c(0.5));
        self.sel(&is_small, &small, &lu)
    }

    fn softplus(&mut self, x: &str) -> String {
        let a = self.op1("abs", x);
        let na = self.op1("neg", &a);
        let e = self.exp(&na);
        let l = self.log1p(&e);
        let m = self.op2("max", x, &c(0.0));
        let y = self.add(&m, &l);
        let nan = self.cmp("nan", x, x);
        self.sel(&nan, x, &y)
    }

    fn sinh_cosh(&mut self, x: &str, cosh: bool) -> String {
        let a = self.op1("abs", x);
        // e = e^|x| / 2 (no overflow below sinh's own), then e ± 1/(4e).
        let am = self.sub(&a, &c(std::f32::consts::LN_2));
        let e = self.exp(&am);
        let four_e = self.mul(&c(4.0), &e);
        let inv = self.div(&c(1.0), &four_e);
        if cosh {
            return self.add(&e, &inv);
        }
        let large = self.sub(&e, &inv);
        // |x| < 1: (t + t/(t+1))/2 with t = expm1(|x|), no cancellation.
        let t = self.expm1(&a);
        let t1 = self.add(&t, &c(1.0));
        let q = self.div(&t, &t1);
        let s = self.add(&t, &q);
        let small = self.mul(&c(0.5), &s);
        let is_small = self.cmp("lt", &a, &c(1.0));
        let y = self.sel(&is_small, &small, &large);
        let y = self.with_sign_of(&y, x);
        let nan = self.cmp("nan", x, x);
        self.sel(&nan, x, &y)
    }

    fn asinh(&mut self, x: &str) -> String {
        let a = self.op1("abs", x);
        // log1p(a + a²/(1 + √(1+a²))); for a > 1e18, ln a + ln 2.
        let a2 = self.mul(&a, &a);
        let s = self.add(&a2, &c(1.0));
        let s = self.op1("sqrt.rn", &s);
        let d = self.add(&c(1.0), &s);
        let q = self.div(&a2, &d);
        let t = self.add(&a, &q);
        let y = self.log1p(&t);
        let la = self.log(&a);
        let big = self.add(&la, &c(std::f32::consts::LN_2));
        let is_big = self.cmp("gt", &a, &c(1e18));
        let y = self.sel(&is_big, &big, &y);
        let y = self.with_sign_of(&y, x);
        let nan = self.cmp("nan", x, x);
        self.sel(&nan, x, &y)
    }

    fn acosh(&mut self, x: &str) -> String {
        // log1p((x-1) + √((x-1)(x+1))); for x > 1e18, ln x + ln 2; x < 1 is NaN.
        let xm = self.sub(x, &c(1.0));
        let xp = self.add(x, &c(1.0));
        let pr = self.mul(&xm, &xp);
        let s = self.op1("sqrt.rn", &pr);
        let t = self.add(&xm, &s);
        let y = self.log1p(&t);
        let lx = self.log(x);
        let big = self.add(&lx, &c(std::f32::consts::LN_2));
        let is_big = self.cmp("gt", x, &c(1e18));
        let y = self.sel(&is_big, &big, &y);
        let below = self.cmp("ltu", x, &c(1.0));
        self.sel(&below, &c(f32::NAN), &y)
    }

    fn atanh(&mut self, x: &str) -> String {
        let two = self.add(x, x);
        let d = self.sub(&c(1.0), x);
        let q = self.div(&two, &d);
        let l = self.log1p(&q);
        self.mul(&c(0.5), &l)
    }

    fn pow(&mut self, a: &str, b: &str) -> String {
        let aa = self.op1("abs", a);
        let l = self.log(&aa);
        let bl = self.mul(b, &l);
        let r = self.exp(&bl);
        // Negative base: an integer exponent keeps the magnitude, an odd one the sign;
        // any other exponent gives NaN.
        let bt = self.op1("cvt.rzi.f32", b);
        let int = self.cmp("eq", &bt, b);
        let half = self.mul(&c(0.5), b);
        let ht = self.op1("cvt.rzi.f32", &half);
        let even = self.cmp("eq", &ht, &half);
        let nr = self.op1("neg", &r);
        let signed = self.sel(&even, &r, &nr);
        let negres = self.sel(&int, &signed, &c(f32::NAN));
        let neg = self.cmp("lt", a, &c(0.0));
        let y = self.sel(&neg, &negres, &r);
        // b·ln|a| = ±inf·0 or similar: 0^b, inf^b, a^±inf follow exp's limits except:
        // a == 0: b > 0 → 0 (signed for odd integer b), b < 0 → inf.
        let zero = self.cmp("eq", a, &c(0.0));
        let bpos = self.cmp("gt", b, &c(0.0));
        let z = self.sel(&bpos, &c(0.0), &c(f32::INFINITY));
        let odd = self.k.reg(Cls::Pred);
        self.k.op(format!("not.pred {odd}, {even}"));
        self.k.op(format!("and.pred {odd}, {odd}, {int}"));
        let zs = self.with_sign_of(&z, a);
        let z = self.sel(&odd, &zs, &z);
        let y = self.sel(&zero, &z, &y);
        // b == 0 or a == 1: 1, even for NaN.
        let one = self.cmp("eq", b, &c(0.0));
        let a1 = self.cmp("eq", a, &c(1.0));
        self.k.op(format!("or.pred {one}, {one}, {a1}"));
        self.sel(&one, &c(1.0), &y)
    }

    /// C's fmod: exact, with the dividend's sign; computed in f64, where the product of a
    /// 24-bit quotient and a 24-bit divisor is exact.
    fn fmod(&mut self, a: &str, b: &str) -> String {
        let k = &mut *self.k;
        let (ad, bd, q, r) = (k.reg(Cls::F64), k.reg(Cls::F64), k.reg(Cls::F64), k.reg(Cls::F64));
        k.op(format!("cvt.f64.f32 {ad}, {a}"));
        k.op(format!("cvt.f64.f32 {bd}, {b}"));
        k.op(format!("div.rn.f64 {q}, {ad}, {bd}"));
        k.op(format!("cvt.rzi.f64.f64 {q}, {q}"));
        k.op(format!("neg.f64 {q}, {q}"));
        k.op(format!("fma.rn.f64 {r}, {q}, {bd}, {ad}"));
        // A quotient rounded across an integer leaves r one divisor off: fold it back.
        let (ab, ar, wrong) = (k.reg(Cls::F64), k.reg(Cls::F64), k.reg(Cls::Pred));
        k.op(format!("abs.f64 {ab}, {bd}"));
        k.op(format!("abs.f64 {ar}, {r}"));
        k.op(format!("setp.ge.f64 {wrong}, {ar}, {ab}"));
        let fixed = k.reg(Cls::F64);
        k.op(format!("sub.rn.f64 {fixed}, {ar}, {ab}"));
        k.op(format!("selp.f64 {ar}, {fixed}, {ar}, {wrong}"));
        // Rounded up across an integer instead: r has the other sign; the remainder is
        // |b| - |r|.
        let (rn, an, mis, nz) = (k.reg(Cls::Pred), k.reg(Cls::Pred), k.reg(Cls::Pred), k.reg(Cls::Pred));
        k.op(format!("setp.lt.f64 {rn}, {r}, 0d0000000000000000"));
        k.op(format!("setp.lt.f64 {an}, {ad}, 0d0000000000000000"));
        k.op(format!("xor.pred {mis}, {rn}, {an}"));
        k.op(format!("setp.ne.f64 {nz}, {r}, 0d0000000000000000"));
        k.op(format!("and.pred {mis}, {mis}, {nz}"));
        k.op(format!("sub.rn.f64 {fixed}, {ab}, {ar}"));
        k.op(format!("selp.f64 {ar}, {fixed}, {ar}, {mis}"));
        let rf = self.f();
        self.k.op(format!("cvt.rn.f32.f64 {rf}, {ar}"));
        let y = self.with_sign_of(&rf, a);
        // fmod(a, ±inf) = a for finite a.
        let binf = self.op1("abs", b);
        let inf = self.cmp("eq", &binf, &c(f32::INFINITY));
        let afin = self.op1("abs", a);
        let fin = self.cmp("lt", &afin, &c(f32::INFINITY));
        self.k.op(format!("and.pred {inf}, {inf}, {fin}"));
        let y = self.sel(&inf, a, &y);
        // NaN from a NaN operand, an infinite dividend or a zero divisor.
        let bad = self.k.reg(Cls::Pred);
        self.k.op(format!("setp.nan.f64 {bad}, {ar}, {ar}"));
        self.sel(&bad, &c(f32::NAN), &y)
    }
}
