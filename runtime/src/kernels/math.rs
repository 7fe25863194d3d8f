//! Scalar math behind `KernelTable::math_f32` / `math_f64` (see [`crate::abi::MathOp`]).
//!
//! f32 functions compute in f64 and round once, as the reference evaluator does, so a
//! compiled model and the reference agree to the last bit on these ops.

use super::erf::erf;
use crate::abi::MathOp;

/// The f32 error function's polynomials, shared by the code generator's inline math
/// (`compiler/src/backend/cpu/vmath.rs`) and the kernels' GELU epilogue: weighted
/// least-squares fits made for neoc (near-minimax: 1.17 and 1.19 ulp in an f32 simulation).
pub mod erf_f32 {
    /// Below this |x|, `erf(x) = x + x·P(x²)`.
    pub const SMALL: f32 = 0.921_875;
    /// Highest degree first.
    pub const P: [f32; 6] = [-5.991_139_3e-4, 4.993_247_3e-3, -2.676_667_5e-2, 1.128_181_8e-1, -3.761_249_5e-1, 1.283_791_5e-1];
    /// From SMALL on, `erf(|x|) = 1 − exp(Q(|x|))`: Q ≈ ln erfc on [SMALL, CLAMP], highest
    /// degree first.
    pub const Q: [f32; 9] = [1.602_508_7e-6, -4.535_497e-5, 5.907_186_4e-4, -4.730_298_6e-3, 2.633_559e-2, -1.099_252_8e-1, -6.319_952e-1, -1.130_131_6, 2.942_914_1e-4];
    /// |x| is clamped to this for Q: erf(4) rounds to 1 in f32.
    pub const CLAMP: f32 = 4.0;
}

/// `op` applied in f64. Unknown op codes give NaN (the code generator only emits the
/// codes of [`MathOp`]).
pub fn math(op: MathOp, a: f64, b: f64) -> f64 {
    match op {
        MathOp::Exp => a.exp(),
        MathOp::Log => a.ln(),
        MathOp::Tanh => a.tanh(),
        MathOp::Erf => erf(a),
        MathOp::Sin => a.sin(),
        MathOp::Cos => a.cos(),
        MathOp::Tan => a.tan(),
        MathOp::Asin => a.asin(),
        MathOp::Acos => a.acos(),
        MathOp::Atan => a.atan(),
        MathOp::Sinh => a.sinh(),
        MathOp::Cosh => a.cosh(),
        MathOp::Asinh => a.asinh(),
        MathOp::Acosh => a.acosh(),
        MathOp::Atanh => a.atanh(),
        MathOp::Pow => a.powf(b),
        MathOp::Fmod => a % b,
        MathOp::Sigmoid => {
            if a >= 0.0 {
                1.0 / (1.0 + (-a).exp())
            } else {
                let e = a.exp();
                e / (1.0 + e)
            }
        }
        MathOp::Softplus => {
            if a > 0.0 {
                a + (-a).exp().ln_1p()
            } else {
                a.exp().ln_1p()
            }
        }
        MathOp::Expm1 => a.exp_m1(),
        MathOp::Log1p => a.ln_1p(),
    }
}

/// See [`crate::abi::MathF32Fn`].
///
/// # Safety
/// Always safe to call; `unsafe` only to have the table entry's type.
pub unsafe extern "C" fn math_f32(op: u32, a: f32, b: f32) -> f32 {
    match MathOp::from_u32(op) {
        Some(op) => math(op, a as f64, b as f64) as f32,
        None => f32::NAN,
    }
}

/// See [`crate::abi::MathF64Fn`].
///
/// # Safety
/// Always safe to call; `unsafe` only to have the table entry's type.
pub unsafe extern "C" fn math_f64(op: u32, a: f64, b: f64) -> f64 {
    match MathOp::from_u32(op) {
        Some(op) => math(op, a, b),
        None => f64::NAN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_op_code_round_trips_and_unknown_codes_give_nan() {
        for (i, op) in MathOp::ALL.iter().enumerate() {
            assert_eq!(*op as u32, i as u32);
            assert_eq!(MathOp::from_u32(i as u32), Some(*op));
        }
        // SAFETY: `math_f32` reads only its arguments (it is unsafe only as a kernel-table entry).
        assert!(unsafe { math_f32(999, 1.0, 1.0) }.is_nan());
    }

    #[test]
    fn sigmoid_and_softplus_do_not_overflow() {
        assert_eq!(math(MathOp::Sigmoid, -1000.0, 0.0), 0.0);
        assert_eq!(math(MathOp::Sigmoid, 1000.0, 0.0), 1.0);
        assert_eq!(math(MathOp::Softplus, 1000.0, 0.0), 1000.0);
        assert!((math(MathOp::Softplus, 0.0, 0.0) - 2f64.ln()).abs() < 1e-15);
        // SAFETY: as above, both read only their arguments.
        assert_eq!(unsafe { math_f32(MathOp::Pow as u32, 2.0, 10.0) }, 1024.0);
        // SAFETY: as above.
        assert_eq!(unsafe { math_f64(MathOp::Fmod as u32, -7.0, 3.0) }, -1.0);
    }
}
