//! The fused epilogue of the conv kernel: `y = act(y + bias + residual)`, over one row
//! of outputs at a time, while the row is still in cache. Each activation gets its own
//! monomorphised loop so the common ones (none, ReLU, clip) vectorise.
//!
//! NaN goes through every activation as NaN (comparisons are written so that a NaN input
//! takes the `x` branch), as in the ONNX operators.

use crate::abi::Activation;

/// An activation with its parameters, as [`crate::abi::ConvParams`] carries it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Act {
    pub kind: Activation,
    pub alpha: f32,
    pub beta: f32,
}

/// The [`Activation`] with code `code`, if there is one.
pub(crate) fn activation(code: u32) -> Option<Activation> {
    Activation::from_u32(code)
}

#[inline(always)]
fn relu(x: f32) -> f32 {
    if x < 0.0 { 0.0 } else { x }
}

#[inline(always)]
fn clip(x: f32, lo: f32, hi: f32) -> f32 {
    // min(max(x, lo), hi), as ONNX Clip (hi wins when lo > hi).
    let t = if x < lo { lo } else { x };
    if t > hi { hi } else { t }
}

#[inline(always)]
fn leaky_relu(x: f32, alpha: f32) -> f32 {
    if x < 0.0 { alpha * x } else { x }
}

/// `e^x` in f32 without a libm call, written so loops over it vectorise: Cephes' expf
/// (range reduction by n·ln2 with a two-part ln2, a degree-6 polynomial; about 1 ulp).
/// The 2^n scale is applied in two halves so results near f32::MAX and subnormal results
/// come out right; below -104 it returns 0, above ln(f32::MAX) +inf, and NaN stays NaN.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5·2^23: adding and subtracting it rounds to the nearest integer (SSE2 has no roundps).
    const ROUND: f32 = 12_582_912.0;
    let xc = x.clamp(-104.0, 88.72);
    let t = xc * LOG2E + ROUND;
    let n = t - ROUND;
    let r = xc - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 0.166_666_66;
    let p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    // n as an integer, read from t's low mantissa bits (t = 1.5·2^23 + n, |n| ≤ 151):
    // integer arithmetic that vectorises, where `n as i32` (saturating, NaN to 0) became
    // a scalar conversion per lane. A NaN x gives some n, and e (hence y) stays NaN.
    let n = (t.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let half = n >> 1;
    let scale = |k: i32| f32::from_bits((k.wrapping_add(127) as u32) << 23);
    let y = e * scale(half) * scale(n - half);
    if x < -104.0 {
        0.0
    } else if x > 88.722_84 {
        f32::INFINITY
    } else {
        y
    }
}

/// `1 / (1 + e^-x)`, without overflow for large |x| (`e^-|x|` ≤ 1).
#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    let e = exp(-x.abs());
    let s = 1.0 / (1.0 + e);
    if x >= 0.0 { s } else { e * s }
}

#[inline(always)]
fn hard_swish(x: f32) -> f32 {
    x * (x / 6.0 + 0.5).clamp(0.0, 1.0)
}

/// `p(x)` by Horner's rule, coefficients highest degree first.
#[inline(always)]
fn horner(x: f32, c: &[f32]) -> f32 {
    c[1..].iter().fold(c[0], |acc, &k| acc * x + k)
}

/// `1 + erf(z)` with the code generator's erf polynomials (`kernels::math::erf_f32`),
/// without its cancellation for negative z: there `1 + erf(z) = erfc(|z|) = exp(Q(|z|))`
/// directly, so GELU keeps its relative accuracy down to z = −4 (below, where erfc(|z|) <
/// 1.6e-8 and Q is not fitted, it is 0: what `1 + erf(z)` rounds to in f32). Branch-free
/// selects, so rows of it vectorise; NaN gives NaN (the last branch, from the NaN z).
#[inline(always)]
fn one_plus_erf(z: f32) -> f32 {
    use super::math::erf_f32::{CLAMP, P, Q, SMALL};
    let a = z.abs();
    let small = 1.0 + (z + z * horner(z * z, &P));
    let erfc = exp(horner(if a < CLAMP { a } else { CLAMP }, &Q));
    if z < -CLAMP {
        0.0
    } else if z <= -SMALL {
        erfc
    } else if z < SMALL {
        small
    } else {
        2.0 - erfc
    }
}

/// GELU, `x/2 · (1 + erf(x/√2))`.
#[inline(always)]
fn gelu(x: f32) -> f32 {
    0.5 * x * one_plus_erf(x * std::f32::consts::FRAC_1_SQRT_2)
}

/// GELU's tanh form, as `x · sigmoid(2u)` (= `x/2 · (1 + tanh u)`, u = √(2/π)·(x + 0.044715·x³)):
/// no cancellation in `1 + tanh u` for negative x.
#[inline(always)]
fn gelu_tanh(x: f32) -> f32 {
    const TWO_SQRT_2_OVER_PI: f32 = 1.595_769_1;
    x * sigmoid(TWO_SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x))
}

impl Act {
    /// The activation applied to one value (the rows use the same functions).
    #[cfg(test)]
    pub fn apply(self, x: f32) -> f32 {
        match self.kind {
            Activation::None => x,
            Activation::Relu => relu(x),
            Activation::Clip => clip(x, self.alpha, self.beta),
            Activation::LeakyRelu => leaky_relu(x, self.alpha),
            Activation::Sigmoid => sigmoid(x),
            Activation::Silu => x * sigmoid(x),
            Activation::HardSwish => hard_swish(x),
            Activation::Gelu => gelu(x),
            Activation::GeluTanh => gelu_tanh(x),
        }
    }

    /// `y[i] = act(y[i] + bias + residual[i])` (no residual term when `residual` is
    /// `None`; it must then be as long as `y`). Always inlined, so that kernels compiled
    /// for wider vectors (`#[target_feature]`) get their epilogue compiled alike.
    #[inline(always)]
    pub fn apply_row(self, y: &mut [f32], bias: f32, residual: Option<&[f32]>) {
        let (lo, hi, alpha) = (self.alpha, self.beta, self.alpha);
        match self.kind {
            Activation::None => {
                if bias != 0.0 || residual.is_some() {
                    row(y, bias, residual, |x| x)
                }
            }
            Activation::Relu => row(y, bias, residual, relu),
            Activation::Clip => row(y, bias, residual, |x| clip(x, lo, hi)),
            Activation::LeakyRelu => row(y, bias, residual, |x| leaky_relu(x, alpha)),
            Activation::Sigmoid => row(y, bias, residual, sigmoid),
            Activation::Silu => row(y, bias, residual, |x| x * sigmoid(x)),
            Activation::HardSwish => row(y, bias, residual, hard_swish),
            Activation::Gelu => row(y, bias, residual, gelu),
            Activation::GeluTanh => row(y, bias, residual, gelu_tanh),
        }
    }
}

#[inline(always)]
fn row(y: &mut [f32], bias: f32, residual: Option<&[f32]>, f: impl Fn(f32) -> f32) {
    match residual {
        Some(r) => {
            let r = &r[..y.len()];
            for (v, r) in y.iter_mut().zip(r) {
                *v = f(*v + bias + *r);
            }
        }
        None => {
            for v in y.iter_mut() {
                *v = f(*v + bias);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The activations in f64, from their ONNX definitions.
    pub fn act_f64(act: Act, x: f64) -> f64 {
        let (a, b) = (act.alpha as f64, act.beta as f64);
        let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
        match act.kind {
            Activation::None => x,
            Activation::Relu => x.max(0.0),
            Activation::Clip => x.max(a).min(b),
            Activation::LeakyRelu => {
                if x < 0.0 {
                    a * x
                } else {
                    x
                }
            }
            Activation::Sigmoid => sig(x),
            Activation::Silu => x * sig(x),
            Activation::HardSwish => x * (x / 6.0 + 0.5).clamp(0.0, 1.0),
            Activation::Gelu => 0.5 * x * (1.0 + crate::kernels::erf::erf(x * std::f64::consts::FRAC_1_SQRT_2)),
            Activation::GeluTanh => 0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x)).tanh()),
        }
    }

    /// Every activation, with the parameters the tests use.
    pub fn all_acts() -> Vec<Act> {
        use Activation::*;
        let plain = |kind| Act { kind, alpha: 0.0, beta: 0.0 };
        vec![
            plain(None),
            plain(Relu),
            Act { kind: Clip, alpha: -0.5, beta: 1.25 },
            Act { kind: LeakyRelu, alpha: 0.1, beta: 0.0 },
            plain(Sigmoid),
            plain(Silu),
            plain(HardSwish),
            plain(Gelu),
            plain(GeluTanh),
        ]
    }

    #[test]
    fn codes_round_trip() {
        for a in all_acts() {
            assert_eq!(activation(a.kind as u32), Some(a.kind));
        }
        for (i, a) in Activation::ALL.iter().enumerate() {
            assert_eq!(*a as usize, i);
        }
        assert_eq!(activation(9), Option::None);
    }

    #[test]
    fn rows_match_f64_definitions() {
        let x: Vec<f32> = (-400..=400).map(|i| i as f32 * 0.03125).chain([-100.0, 100.0, -1e-30]).collect();
        let res: Vec<f32> = x.iter().map(|v| v * 0.25 - 0.125).collect();
        for act in all_acts() {
            for residual in [None, Some(&res[..])] {
                let mut y = x.clone();
                act.apply_row(&mut y, 0.5, residual);
                for (i, got) in y.iter().enumerate() {
                    let pre = x[i] as f64 + 0.5 + residual.map_or(0.0, |r| r[i] as f64);
                    let want = act_f64(act, pre);
                    // The sum rounds once or twice (2u relative to |pre| at most); the
                    // activations' slopes are at most 1.5 (HardSwish at x = 3) and their
                    // f32 evaluation (exp, a division) adds a few ulp.
                    let tol = 1.5 * 2.0 * pre.abs() * f64::powi(2.0, -24) + 8.0 * f64::from(f32::EPSILON) * want.abs() + 1e-40;
                    assert!((*got as f64 - want).abs() <= tol, "{act:?} at {pre}: {got} vs {want}");
                }
            }
        }
        // NaN stays NaN.
        for act in all_acts() {
            assert!(act.apply(f32::NAN).is_nan(), "{act:?}");
        }
    }

    #[test]
    fn clip_with_min_above_max_gives_max() {
        let act = Act { kind: Activation::Clip, alpha: 2.0, beta: 1.0 };
        assert_eq!(act.apply(0.0), 1.0);
        assert_eq!(act.apply(5.0), 1.0);
    }

    /// The inline exp against f64 over a dense sweep: at most 2 ulp (measured 1), exact
    /// limits at the clamps, NaN kept.
    #[test]
    fn inline_exp_is_within_two_ulp() {
        let mut worst = 0f64;
        let mut x = -87.3f32;
        while x < 88.72 {
            let want = (x as f64).exp();
            let got = super::exp(x) as f64;
            let ulp = (want as f32).next_up() as f64 - want as f32 as f64;
            worst = worst.max((got - want).abs() / ulp);
            x += 0.0137;
        }
        assert!(worst <= 2.0, "worst error {worst} ulp");
        assert_eq!(super::exp(-200.0), 0.0);
        assert!((super::exp(-100.0) as f64 - (-100f64).exp()).abs() < 2e-45, "subnormal results");
        assert_eq!(super::exp(100.0), f32::INFINITY);
        assert!(super::exp(f32::NAN).is_nan());
        assert_eq!(super::exp(0.0), 1.0);
    }
}
