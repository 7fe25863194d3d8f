//! Elementwise activations: Relu, LeakyRelu, PRelu, Elu, Selu, Celu, Sigmoid, HardSigmoid,
//! HardSwish, Softplus, Softsign, Gelu, Mish, Clip, ThresholdedRelu, Shrink, Swish.
//!
//! Specs: <https://onnx.ai/onnx/operators/onnx__Relu.html> (and `onnx__LeakyRelu.html`,
//! `onnx__PRelu.html`, `onnx__Elu.html`, `onnx__Selu.html`, `onnx__Celu.html`,
//! `onnx__Sigmoid.html`, `onnx__HardSigmoid.html`, `onnx__HardSwish.html`,
//! `onnx__Softplus.html`, `onnx__Softsign.html`, `onnx__Gelu.html`, `onnx__Mish.html`,
//! `onnx__Clip.html`, `onnx__ThresholdedRelu.html`, `onnx__Shrink.html`, `onnx__Swish.html`).
//!
//! Opset history that matters here:
//! - Relu, LeakyRelu, PRelu, Elu, Selu, Sigmoid, HardSigmoid, Clip: opset 1 had the
//!   meaningless `consumed_inputs` attribute (ignored); opset 6 dropped it.
//! - Relu 14 added signed integer types; PRelu 7 made the slope broadcast unidirectionally to
//!   X (we broadcast at every opset), PRelu 9 added integer types.
//! - Clip: `min`/`max` were attributes up to opset 6 (absent = no bound; opset 6 documents
//!   ±FLT_MAX defaults, which only differ for f64 values beyond the f32 range) and became
//!   optional scalar inputs in opset 11 (the normal form here); opset 12 added integer types.
//!   When min > max every value becomes max (numpy `clip`).
//! - Celu 12 (f32 only; 28 added f16/bf16/f64, accepted at every version), Shrink 9,
//!   ThresholdedRelu 10, HardSwish 14, Mish 18, Gelu 20 (`approximate` none/tanh), Swish 24
//!   (`alpha`). Later versions (13, 16, 22) only added types (bf16).
//!
//! Float kinds are computed in f64 and rounded once to the input type. Relu, PRelu and Clip
//! work in the input type (integers wrap like numpy); Shrink accepts every numeric type and,
//! like the reference, computes in f64 and converts back (truncating for integers).

use crate::ir::shape::broadcast;
use crate::ir::{Attr, Attrs, EvalInputs, InferCx, Importer, NodeCtx, Op, OpImpl, ValueType};
use crate::tensor::{ArrayD, DType, Scalar, Tensor};
use crate::with_scalar_array;
use anyhow::{Result, bail};

#[derive(Clone, Debug, PartialEq)]
pub enum Activation {
    Relu,
    LeakyRelu { alpha: f32 },
    /// Inputs: X, slope (broadcasts to X).
    PRelu,
    Elu { alpha: f32 },
    Selu { alpha: f32, gamma: f32 },
    Celu { alpha: f32 },
    Sigmoid,
    HardSigmoid { alpha: f32, beta: f32 },
    HardSwish,
    Softplus,
    Softsign,
    /// `tanh`: the tanh approximation instead of the exact erf form.
    Gelu { tanh: bool },
    Mish,
    /// Inputs: X, optional min, optional max (scalars of X's type).
    Clip,
    ThresholdedRelu { alpha: f32 },
    Shrink { lambd: f32, bias: f32 },
    Swish { alpha: f32 },
}

use Activation as A;

/// Which element types a kind accepts.
#[derive(Clone, Copy, PartialEq)]
enum Types {
    Float,
    FloatOrSignedInt,
    Numeric,
}

fn is_plain_float(d: DType) -> bool {
    matches!(d, DType::F32 | DType::F64 | DType::F16 | DType::BF16)
}

impl Activation {
    fn types(&self) -> Types {
        match self {
            A::Relu => Types::FloatOrSignedInt,
            A::PRelu | A::Clip | A::Shrink { .. } => Types::Numeric,
            _ => Types::Float,
        }
    }

    fn check_dtype(&self, d: DType) -> Result<()> {
        let ok = match self.types() {
            Types::Float => is_plain_float(d),
            Types::FloatOrSignedInt => is_plain_float(d) || matches!(d, DType::I8 | DType::I16 | DType::I32 | DType::I64),
            Types::Numeric => is_plain_float(d) || (d.is_int() && !d.is_low()),
        };
        if !ok {
            bail!("{}: {d} input is not supported", self.name());
        }
        Ok(())
    }

    /// The per-element function of the kinds computed through f64. Relu, PRelu and Clip are
    /// evaluated in the input type by `eval` and never come here (identity for them).
    pub(crate) fn pointwise(&self, x: f64) -> f64 {
        match *self {
            A::Relu | A::PRelu | A::Clip => x,
            A::LeakyRelu { alpha } => {
                if x > 0.0 {
                    x
                } else {
                    alpha as f64 * x
                }
            }
            A::Elu { alpha } => elu(x, alpha as f64),
            A::Selu { alpha, gamma } => gamma as f64 * elu(x, alpha as f64),
            A::Celu { alpha } => {
                let a = alpha as f64;
                np_max(0.0, x) + np_min(0.0, a * (x / a).exp_m1())
            }
            A::Sigmoid => sigmoid(x),
            A::HardSigmoid { alpha, beta } => hard_sigmoid(x, alpha as f64, beta as f64),
            A::HardSwish => x * hard_sigmoid(x, 1.0 / 6.0, 0.5),
            A::Softplus => softplus(x),
            A::Softsign => x / (1.0 + x.abs()),
            A::Gelu { tanh: false } => 0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2)),
            A::Gelu { tanh: true } => {
                let k = (2.0 / std::f64::consts::PI).sqrt();
                0.5 * x * (1.0 + (k * (x + 0.044715 * x * x * x)).tanh())
            }
            A::Mish => x * softplus(x).tanh(),
            A::ThresholdedRelu { alpha } => {
                if x > alpha as f64 {
                    x
                } else {
                    0.0
                }
            }
            A::Shrink { lambd, bias } => {
                let (l, b) = (lambd as f64, bias as f64);
                if x < -l {
                    x + b
                } else if x > l {
                    x - b
                } else {
                    0.0
                }
            }
            A::Swish { alpha } => x * sigmoid(alpha as f64 * x),
        }
    }
}

fn elu(x: f64, alpha: f64) -> f64 {
    if x > 0.0 { x } else { alpha * x.exp_m1() }
}

fn sigmoid(x: f64) -> f64 {
    if x > 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

fn hard_sigmoid(x: f64, alpha: f64, beta: f64) -> f64 {
    np_max(0.0, np_min(1.0, alpha * x + beta))
}

/// ln(1 + e^x) without overflow (numpy `logaddexp(0, x)`).
fn softplus(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    np_max(x, 0.0) + (-x.abs()).exp().ln_1p()
}

/// numpy `maximum`: NaN in either operand gives NaN.
fn np_max<T: PartialOrd + Copy>(a: T, b: T) -> T {
    #[allow(clippy::eq_op)]
    if a != a {
        a
    } else if b != b {
        b
    } else if b > a {
        b
    } else {
        a
    }
}

/// numpy `minimum`: NaN in either operand gives NaN.
fn np_min<T: PartialOrd + Copy>(a: T, b: T) -> T {
    #[allow(clippy::eq_op)]
    if a != a {
        a
    } else if b != b {
        b
    } else if b < a {
        b
    } else {
        a
    }
}

/// The error function, to about 1e-15 relative accuracy.
/// erf(x) = 2/√π · e^(−x²) · Σₙ 2ⁿ x^(2n+1) / (1·3·…·(2n+1)): all terms share x's sign, so
/// the sum has no cancellation; beyond |x| = 6, erf(x) rounds to ±1 in f64.
fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x.abs() >= 6.0 {
        return x.signum();
    }
    let x2 = x * x;
    let (mut term, mut sum) = (x, x);
    for n in 1..1000 {
        term *= 2.0 * x2 / (2 * n + 1) as f64;
        sum += term;
        if term.abs() <= 1e-17 * sum.abs() {
            break;
        }
    }
    2.0 / std::f64::consts::PI.sqrt() * (-x2).exp() * sum
}

/// The single value of a min/max input of Clip, in the element type of X.
fn bound<T: Scalar>(t: Option<&Tensor>, what: &str) -> Result<Option<T>> {
    let Some(t) = t else { return Ok(None) };
    let a = t.as_array::<T>().map_err(|e| anyhow::anyhow!("Clip: {what}: {e}"))?;
    match a.len() {
        1 => Ok(a.iter().next().copied()),
        n => bail!("Clip: {what} must hold one value, it has shape {:?} ({n} values)", a.shape()),
    }
}

fn clip<T: Scalar>(x: &ArrayD<T>, lo: Option<T>, hi: Option<T>) -> ArrayD<T> {
    x.mapv(|v| {
        let v = lo.map_or(v, |l| np_max(v, l));
        hi.map_or(v, |h| np_min(v, h))
    })
}

fn relu<T: Scalar>(x: &ArrayD<T>) -> ArrayD<T> {
    x.mapv(|v| if v < T::zero() { T::zero() } else { v })
}

/// Integer products wrap (like numpy); float products are rounded once to T.
fn mul<T: Scalar>(a: T, b: T, int: bool) -> T {
    if int { T::from_i64(a.to_i64().wrapping_mul(b.to_i64())) } else { T::from_f64(a.to_f64() * b.to_f64()) }
}

fn prelu<T: Scalar>(x: &ArrayD<T>, slope: &Tensor, int: bool) -> Result<ArrayD<T>> {
    let s = slope.as_array::<T>().map_err(|e| anyhow::anyhow!("PRelu: slope: {e}"))?;
    let s = s
        .broadcast(x.raw_dim())
        .ok_or_else(|| anyhow::anyhow!("PRelu: slope of shape {:?} does not broadcast to X {:?}", s.shape(), x.shape()))?;
    let mut out = x.clone();
    ndarray::Zip::from(&mut out).and(&s).for_each(|o, &s| {
        if !(*o > T::zero()) {
            *o = mul(*o, s, int);
        }
    });
    Ok(out)
}

impl OpImpl for Activation {
    fn name(&self) -> &'static str {
        match self {
            A::Relu => "Relu",
            A::LeakyRelu { .. } => "LeakyRelu",
            A::PRelu => "PRelu",
            A::Elu { .. } => "Elu",
            A::Selu { .. } => "Selu",
            A::Celu { .. } => "Celu",
            A::Sigmoid => "Sigmoid",
            A::HardSigmoid { .. } => "HardSigmoid",
            A::HardSwish => "HardSwish",
            A::Softplus => "Softplus",
            A::Softsign => "Softsign",
            A::Gelu { .. } => "Gelu",
            A::Mish => "Mish",
            A::Clip => "Clip",
            A::ThresholdedRelu { .. } => "ThresholdedRelu",
            A::Shrink { .. } => "Shrink",
            A::Swish { .. } => "Swish",
        }
    }

    fn attrs(&self) -> Attrs {
        let mut m = Attrs::new();
        let mut f = |k: &str, v: f32| {
            m.insert(k.to_string(), Attr::Float(v));
        };
        match *self {
            A::LeakyRelu { alpha }
            | A::Elu { alpha }
            | A::Celu { alpha }
            | A::ThresholdedRelu { alpha }
            | A::Swish { alpha } => f("alpha", alpha),
            A::Selu { alpha, gamma } => {
                f("alpha", alpha);
                f("gamma", gamma);
            }
            A::HardSigmoid { alpha, beta } => {
                f("alpha", alpha);
                f("beta", beta);
            }
            A::Shrink { lambd, bias } => {
                f("lambd", lambd);
                f("bias", bias);
            }
            A::Gelu { tanh } => {
                m.insert("approximate".into(), Attr::Str(if tanh { "tanh" } else { "none" }.into()));
            }
            A::Relu | A::PRelu | A::Sigmoid | A::HardSwish | A::Softplus | A::Softsign | A::Mish | A::Clip => {}
        }
        m
    }

    fn infer(&self, cx: &InferCx) -> Result<Vec<ValueType>> {
        // X, plus PRelu's slope or Clip's min and max.
        let most = match self {
            A::PRelu => 2,
            A::Clip => 3,
            _ => 1,
        };
        if cx.inputs.len() > most {
            bail!("{} takes at most {most} input{}, got {}", self.name(), if most > 1 { "s" } else { "" }, cx.inputs.len());
        }
        let x = cx.ty(0)?;
        self.check_dtype(x.dtype)?;
        match self {
            A::PRelu => {
                let s = cx.ty(1)?;
                if s.dtype != x.dtype {
                    bail!("PRelu: slope is {} but X is {}", s.dtype, x.dtype);
                }
                if broadcast(&x.shape, &s.shape).ok().as_deref() != Some(&x.shape[..]) {
                    bail!("PRelu: slope of shape {:?} does not broadcast to X {:?}", s.shape, x.shape);
                }
            }
            A::Clip => {
                for (i, what) in [(1, "min"), (2, "max")] {
                    if let Some(t) = cx.opt_ty(i) {
                        if t.dtype != x.dtype {
                            bail!("Clip: {what} is {} but X is {}", t.dtype, x.dtype);
                        }
                        if t.len() != 1 {
                            bail!("Clip: {what} must hold one value, it has shape {:?}", t.shape);
                        }
                    }
                }
            }
            _ => {}
        }
        Ok(vec![x.clone()])
    }

    fn eval(&self, inputs: &EvalInputs) -> Result<Vec<Tensor>> {
        let x = inputs.req(0)?;
        self.check_dtype(x.dtype())?;
        let int = x.dtype().is_int();
        let y = match self {
            A::Relu => with_scalar_array!(x, a, T => Tensor::from_array(relu::<T>(a)))?,
            A::PRelu => {
                let slope = inputs.req(1)?;
                with_scalar_array!(x, a, T => Tensor::from_array(prelu::<T>(a, slope, int)?))?
            }
            A::Clip => with_scalar_array!(x, a, T => {
                let lo = bound::<T>(inputs.opt(1), "min")?;
                let hi = bound::<T>(inputs.opt(2), "max")?;
                Tensor::from_array(clip::<T>(a, lo, hi))
            })?,
            _ => Tensor::from_f64_array(x.dtype(), x.to_f64_array()?.mapv(|v| self.pointwise(v)))?,
        };
        Ok(vec![y])
    }
}

/// Opset 1 carried `consumed_inputs`, which means nothing for inference.
fn old_attrs(ctx: &NodeCtx) {
    if ctx.opset < 6 {
        ctx.ignore(&["consumed_inputs"]);
    }
}

fn relu_imp(ctx: &mut NodeCtx) -> Result<Op> {
    old_attrs(ctx);
    Ok(A::Relu.into())
}
fn leaky_relu(ctx: &mut NodeCtx) -> Result<Op> {
    old_attrs(ctx);
    Ok(A::LeakyRelu { alpha: ctx.float("alpha", 0.01)? }.into())
}
fn prelu_imp(ctx: &mut NodeCtx) -> Result<Op> {
    old_attrs(ctx);
    if ctx.opset < 7 {
        // Before opset 7 a 1-D slope of X's channel count applied per channel (axis 1), as
        // PyTorch exported it; reshape it to [C, 1, ...] so numpy broadcasting does the same.
        let x = ctx.input(0).map(|i| i.ty());
        let slope = ctx.input(1).and_then(|i| i.konst()).cloned();
        if let (Some(x), Some(slope)) = (x, slope) {
            if slope.rank() == 1 && x.rank() > 2 && x.shape[1] == slope.len() && slope.len() > 1 {
                let mut shape = vec![slope.len()];
                shape.resize(x.rank() - 1, 1);
                ctx.set_input(1, crate::ir::NodeInput::Const(slope.reshape(&shape)?));
            }
        }
    }
    Ok(A::PRelu.into())
}
fn elu_imp(ctx: &mut NodeCtx) -> Result<Op> {
    old_attrs(ctx);
    Ok(A::Elu { alpha: ctx.float("alpha", 1.0)? }.into())
}
fn selu(ctx: &mut NodeCtx) -> Result<Op> {
    old_attrs(ctx);
    let alpha = ctx.float("alpha", 1.673_263_2)?;
    let gamma = ctx.float("gamma", 1.050_701)?;
    Ok(A::Selu { alpha, gamma }.into())
}
fn celu(ctx: &mut NodeCtx) -> Result<Op> {
    let alpha = ctx.float("alpha", 1.0)?;
    if alpha == 0.0 {
        return Err(ctx.unsupported("Celu with alpha = 0"));
    }
    Ok(A::Celu { alpha }.into())
}
fn sigmoid_imp(ctx: &mut NodeCtx) -> Result<Op> {
    old_attrs(ctx);
    Ok(A::Sigmoid.into())
}
fn hard_sigmoid_imp(ctx: &mut NodeCtx) -> Result<Op> {
    old_attrs(ctx);
    Ok(A::HardSigmoid { alpha: ctx.float("alpha", 0.2)?, beta: ctx.float("beta", 0.5)? }.into())
}
fn hard_swish(_ctx: &mut NodeCtx) -> Result<Op> {
    Ok(A::HardSwish.into())
}
fn softplus_imp(_ctx: &mut NodeCtx) -> Result<Op> {
    Ok(A::Softplus.into())
}
fn softsign(_ctx: &mut NodeCtx) -> Result<Op> {
    Ok(A::Softsign.into())
}
fn gelu(ctx: &mut NodeCtx) -> Result<Op> {
    let tanh = match ctx.string("approximate", "none")?.as_str() {
        "none" => false,
        "tanh" => true,
        other => return Err(ctx.unsupported(format!("Gelu approximate = {other:?}"))),
    };
    Ok(A::Gelu { tanh }.into())
}
fn mish(_ctx: &mut NodeCtx) -> Result<Op> {
    Ok(A::Mish.into())
}
fn clip_imp(ctx: &mut NodeCtx) -> Result<Op> {
    if ctx.opset < 11 {
        old_attrs(ctx);
        let dtype = ctx.input(0).map(|i| i.ty().dtype).ok_or_else(|| anyhow::anyhow!("Clip: input 0 is missing"))?;
        if !(is_plain_float(dtype) || (dtype.is_int() && !dtype.is_low())) {
            bail!("Clip: {dtype} input is not supported");
        }
        ctx.inputs.truncate(1);
        ctx.attr_to_input("min", 1, dtype)?;
        ctx.attr_to_input("max", 2, dtype)?;
    }
    Ok(A::Clip.into())
}
fn thresholded_relu(ctx: &mut NodeCtx) -> Result<Op> {
    Ok(A::ThresholdedRelu { alpha: ctx.float("alpha", 1.0)? }.into())
}
fn shrink(ctx: &mut NodeCtx) -> Result<Op> {
    Ok(A::Shrink { lambd: ctx.float("lambd", 0.5)?, bias: ctx.float("bias", 0.0)? }.into())
}
fn swish(ctx: &mut NodeCtx) -> Result<Op> {
    Ok(A::Swish { alpha: ctx.float("alpha", 1.0)? }.into())
}

const fn imp(op_type: &'static str, since: i64, build: fn(&mut NodeCtx) -> Result<Op>) -> Importer {
    Importer { op_type, domain: "", since, build }
}

pub const IMPORTERS: &[Importer] = &[
    imp("Relu", 1, relu_imp),
    imp("LeakyRelu", 1, leaky_relu),
    imp("PRelu", 1, prelu_imp),
    imp("Elu", 1, elu_imp),
    imp("Selu", 1, selu),
    imp("Celu", 12, celu),
    // Celu 28 only added f16, bf16 and f64, which the importer of 12 already accepts.
    imp("Celu", 28, celu),
    imp("Sigmoid", 1, sigmoid_imp),
    imp("HardSigmoid", 1, hard_sigmoid_imp),
    imp("HardSwish", 14, hard_swish),
    imp("Softplus", 1, softplus_imp),
    imp("Softsign", 1, softsign),
    imp("Gelu", 20, gelu),
    imp("Mish", 18, mish),
    imp("Clip", 1, clip_imp),
    imp("ThresholdedRelu", 10, thresholded_relu),
    imp("Shrink", 9, shrink),
    imp("Swish", 24, swish),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::NodeInput;
    use crate::ir::ops::{build, rebuild};

    fn t(shape: &[usize], v: Vec<f32>) -> Tensor {
        Tensor::from_vec(shape, v).unwrap()
    }

    fn run(op: &Activation, ins: &[Option<&Tensor>]) -> Result<Tensor> {
        let consts: Vec<_> = ins.iter().map(|i| i.map(|t| crate::ir::Constant::new(t.clone()))).collect();
        let tys: Vec<_> = consts.iter().map(|c| c.as_ref().map(|c| (c.ty().clone(), Some(c)))).collect();
        let inferred = op.infer(&InferCx { inputs: &tys, n_outputs: 1 })?;
        let y = op.eval(&EvalInputs { inputs: ins, n_outputs: 1 })?.remove(0);
        assert_eq!(inferred[0], ValueType::of(&y));
        Ok(y)
    }

    fn close(y: &Tensor, want: &[f64]) {
        let got = y.to_f64_vec().unwrap();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() <= 1e-6 + 1e-5 * w.abs(), "got {got:?}, want {want:?}");
        }
    }

    #[test]
    fn round_trip_every_kind() {
        let x = t(&[3], vec![-1.0, 0.0, 2.0]);
        let kinds = [
            A::Relu,
            A::LeakyRelu { alpha: 0.1 },
            A::PRelu,
            A::Elu { alpha: 2.0 },
            A::Selu { alpha: 2.0, gamma: 3.0 },
            A::Celu { alpha: 2.0 },
            A::Sigmoid,
            A::HardSigmoid { alpha: 0.5, beta: 0.6 },
            A::HardSwish,
            A::Softplus,
            A::Softsign,
            A::Gelu { tanh: false },
            A::Gelu { tanh: true },
            A::Mish,
            A::Clip,
            A::ThresholdedRelu { alpha: 2.0 },
            A::Shrink { lambd: 1.5, bias: 1.5 },
            A::Swish { alpha: 0.5 },
        ];
        for k in kinds {
            let n_in = match k {
                A::PRelu => 2,
                A::Clip => 3,
                _ => 1,
            };
            let inputs = vec![Some(NodeInput::Const(x.clone())); n_in];
            let op: Op = k.clone().into();
            assert_eq!(rebuild(&op, inputs, 1).unwrap(), op, "{k:?}");
        }
    }

    #[test]
    fn spec_examples() {
        let x = t(&[3], vec![-1.0, 0.0, 1.0]);
        close(&run(&A::Relu, &[Some(&x)]).unwrap(), &[0.0, 0.0, 1.0]);
        close(&run(&A::LeakyRelu { alpha: 0.1 }, &[Some(&x)]).unwrap(), &[-0.1, 0.0, 1.0]);
        close(&run(&A::Elu { alpha: 2.0 }, &[Some(&x)]).unwrap(), &[-1.2642411, 0.0, 1.0]);
        close(&run(&A::Selu { alpha: 2.0, gamma: 3.0 }, &[Some(&x)]).unwrap(), &[-3.7927232, 0.0, 3.0]);
        close(&run(&A::Sigmoid, &[Some(&x)]).unwrap(), &[0.26894143, 0.5, 0.7310586]);
        close(&run(&A::HardSigmoid { alpha: 0.5, beta: 0.6 }, &[Some(&x)]).unwrap(), &[0.1, 0.6, 1.0]);
        close(&run(&A::Softplus, &[Some(&x)]).unwrap(), &[0.31326166, 0.6931472, 1.3132616]);
        close(&run(&A::Softsign, &[Some(&x)]).unwrap(), &[-0.5, 0.0, 0.5]);
        close(&run(&A::Gelu { tanh: false }, &[Some(&x)]).unwrap(), &[-0.15865526, 0.0, 0.8413447]);
        close(&run(&A::Gelu { tanh: true }, &[Some(&x)]).unwrap(), &[-0.15880796, 0.0, 0.841192]);
        close(&run(&A::Mish, &[Some(&x)]).unwrap(), &[-0.30340144, 0.0, 0.86509836]);
        close(&run(&A::HardSwish, &[Some(&x)]).unwrap(), &[-0.33333334, 0.0, 0.6666667]);
        close(&run(&A::Swish { alpha: 1.0 }, &[Some(&x)]).unwrap(), &[-0.26894143, 0.0, 0.7310586]);
        close(&run(&A::Celu { alpha: 2.0 }, &[Some(&x)]).unwrap(), &[-0.78693867, 0.0, 1.0]);
        let x = t(&[3], vec![1.0, 2.0, 3.0]);
        close(&run(&A::ThresholdedRelu { alpha: 2.0 }, &[Some(&x)]).unwrap(), &[0.0, 0.0, 3.0]);
        let x = t(&[5], vec![-2.0, -1.0, 0.0, 1.0, 2.0]);
        close(&run(&A::Shrink { lambd: 1.5, bias: 1.5 }, &[Some(&x)]).unwrap(), &[-0.5, 0.0, 0.0, 0.0, 0.5]);
        close(&run(&A::Shrink { lambd: 1.5, bias: 0.0 }, &[Some(&x)]).unwrap(), &[-2.0, 0.0, 0.0, 0.0, 2.0]);
    }

    #[test]
    fn erf_matches_known_values() {
        for (x, want) in [(0.0, 0.0), (0.5, 0.5204998778130465), (1.0, 0.8427007929497149), (-2.5, -0.999593047982555), (4.0, 0.9999999845827421)] {
            assert!((erf(x) - want).abs() < 1e-15, "erf({x}) = {}", erf(x));
        }
        assert!(erf(f64::NAN).is_nan());
        assert_eq!(erf(40.0), 1.0);
    }

    #[test]
    fn nan_propagates() {
        let x = t(&[1], vec![f32::NAN]);
        for k in [A::Relu, A::HardSigmoid { alpha: 0.2, beta: 0.5 }, A::Celu { alpha: 1.0 }, A::Softplus, A::Mish] {
            assert!(run(&k, &[Some(&x)]).unwrap().to_f64_vec().unwrap()[0].is_nan(), "{k:?}");
        }
        let lo = Tensor::scalar(0.0f32);
        assert!(run(&A::Clip, &[Some(&x), Some(&lo), None]).unwrap().to_f64_vec().unwrap()[0].is_nan());
    }

    #[test]
    fn prelu_broadcasts_and_wraps() {
        let x = t(&[2, 3], vec![-1.0, 2.0, -3.0, 4.0, -5.0, 0.0]);
        let s = t(&[3], vec![0.5, 1.0, 2.0]);
        close(&run(&A::PRelu, &[Some(&x), Some(&s)]).unwrap(), &[-0.5, 2.0, -6.0, 4.0, -5.0, 0.0]);
        let bad = t(&[2], vec![1.0, 2.0]);
        assert!(run(&A::PRelu, &[Some(&x), Some(&bad)]).is_err());
        let xi = Tensor::from_vec(&[2], vec![-100i32, 7]).unwrap();
        let si = Tensor::from_vec(&[1], vec![i32::MAX]).unwrap();
        let y = run(&A::PRelu, &[Some(&xi), Some(&si)]).unwrap();
        assert_eq!(y, Tensor::from_vec(&[2], vec![(-100i32).wrapping_mul(i32::MAX), 7]).unwrap());
    }

    #[test]
    fn clip_forms() {
        let x = t(&[4], vec![-2.0, -1.0, 1.0, 3.0]);
        let (lo, hi) = (Tensor::scalar(-1.0f32), Tensor::scalar(2.0f32));
        close(&run(&A::Clip, &[Some(&x), Some(&lo), Some(&hi)]).unwrap(), &[-1.0, -1.0, 1.0, 2.0]);
        close(&run(&A::Clip, &[Some(&x), None, Some(&hi)]).unwrap(), &[-2.0, -1.0, 1.0, 2.0]);
        close(&run(&A::Clip, &[Some(&x)]).unwrap(), &[-2.0, -1.0, 1.0, 3.0]);
        // min > max: everything becomes max.
        close(&run(&A::Clip, &[Some(&x), Some(&hi), Some(&lo)]).unwrap(), &[-1.0; 4]);
        // Integers, u64 beyond i64 range.
        let xu = Tensor::from_vec(&[2], vec![u64::MAX, 3]).unwrap();
        let lou = Tensor::scalar(5u64);
        let y = run(&A::Clip, &[Some(&xu), Some(&lou), None]).unwrap();
        assert_eq!(y, Tensor::from_vec(&[2], vec![u64::MAX, 5]).unwrap());
        // Wrong dtype and non-scalar bounds are errors.
        let lo_i = Tensor::scalar(1i64);
        assert!(run(&A::Clip, &[Some(&x), Some(&lo_i), None]).is_err());
        assert!(run(&A::Clip, &[Some(&x), Some(&x), None]).is_err());
    }

    #[test]
    fn old_clip_attributes_become_inputs() {
        let x = t(&[3], vec![-2.0, 0.0, 2.0]);
        let mut attrs = Attrs::new();
        attrs.insert("max".into(), Attr::Float(1.0));
        let (op, ins) = build("Clip", "", 6, "n", &attrs, vec![Some(NodeInput::Const(x.clone()))], 1).unwrap();
        assert_eq!(op, Op::Activation(A::Clip));
        assert!(ins[1].is_none());
        let hi = ins[2].as_ref().unwrap().konst().unwrap().clone();
        assert_eq!(hi, Tensor::scalar(1.0f32));
        close(&run(&A::Clip, &[Some(&x), None, Some(&hi)]).unwrap(), &[-2.0, 0.0, 1.0]);
    }

    #[test]
    fn integer_relu_and_dtype_errors() {
        let x = Tensor::from_vec(&[3], vec![-3i8, 0, 5]).unwrap();
        assert_eq!(run(&A::Relu, &[Some(&x)]).unwrap(), Tensor::from_vec(&[3], vec![0i8, 0, 5]).unwrap());
        assert!(run(&A::Sigmoid, &[Some(&x)]).is_err());
        let b = Tensor::from_vec(&[1], vec![true]).unwrap();
        assert!(run(&A::Relu, &[Some(&b)]).is_err());
        assert!(run(&A::Relu, &[]).is_err());
        let e = t(&[0, 3], vec![]);
        assert_eq!(run(&A::Mish, &[Some(&e)]).unwrap().shape(), &[0, 3]);
        let mut attrs = Attrs::new();
        attrs.insert("approximate".into(), Attr::Str("fast".into()));
        assert!(build("Gelu", "", 20, "n", &attrs, vec![Some(NodeInput::Const(e))], 1).is_err());
    }

    #[test]
    fn half_types_round_once() {
        let x = Tensor::from_vec(&[2], vec![crate::tensor::bf16::from_f32(-3.0), crate::tensor::bf16::from_f32(0.5)]).unwrap();
        let y = run(&A::Celu { alpha: 2.0 }, &[Some(&x)]).unwrap();
        assert_eq!(y.dtype(), DType::BF16);
        close(&y, &[-1.5546875, 0.5]);
    }
}
