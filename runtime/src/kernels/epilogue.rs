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
    use Activation::*;
    [None, Relu, Clip, LeakyRelu, Sigmoid, Silu, HardSwish].into_iter().find(|a| *a as u32 == code)
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

/// `1 / (1 + e^-x)`, without overflow for large |x|.
#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

#[inline(always)]
fn hard_swish(x: f32) -> f32 {
    x * (x / 6.0 + 0.5).clamp(0.0, 1.0)
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
        ]
    }

    #[test]
    fn codes_round_trip() {
        for a in all_acts() {
            assert_eq!(activation(a.kind as u32), Some(a.kind));
        }
        assert_eq!(activation(7), Option::None);
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
}
