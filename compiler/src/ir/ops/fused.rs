//! Ops made by neoc's fusion passes (domain `neoc`); they never come from ONNX files.
//!
//! - `neoc.FusedConv`: `y = act(conv(x, w) + bias + residual)`. Inputs: X, W, B
//!   (optional), residual (optional, Y's shape). Attributes: Conv's, plus `act`
//!   (`none`, `relu`, `clip`, `leaky_relu`, `sigmoid`, `silu`, `hard_swish`), `alpha`,
//!   `beta` (clip's bounds, leaky_relu's slope) and `_residual`.
//! - `neoc.FusedMatMul`: `y = act(scale · A·B + addends…)`. Inputs: A, B, then up to two
//!   addends (a bias, a residual), each broadcast numpy-style to the product's shape.
//!   Attributes: `_gemm` (1: Gemm's 2-D form with `trans_a`/`trans_b`; 0: MatMul's
//!   batched form), `scale`, and `act`, `alpha`, `beta` as for FusedConv.
//! - `neoc.Elementwise`: a chain of elementwise ops, given as a `body` graph whose inputs
//!   are the node's inputs (numpy broadcasting to the body's output); compiled as one loop.
//!
//! Both evaluate through the ops they replace, so the reference is the unfused graph's.

use anyhow::{Result, anyhow, bail};

use super::conv::Conv;
use super::conv::spatial::Window;
use crate::ir::{Attr, Attrs, EvalInputs, Graph, InferCx, Importer, NodeCtx, Op, OpImpl, ValueType};
use crate::tensor::{DType, Tensor};

/// The activation at the end of a fused kernel.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Act {
    None,
    Relu,
    /// `min(max(x, lo), hi)`.
    Clip { lo: f32, hi: f32 },
    LeakyRelu { alpha: f32 },
    Sigmoid,
    Silu,
    HardSwish,
    /// `x/2 · (1 + erf(x/√2))`.
    Gelu,
    /// `x/2 · (1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
    GeluTanh,
}

impl Act {
    fn name(self) -> &'static str {
        match self {
            Act::None => "none",
            Act::Relu => "relu",
            Act::Clip { .. } => "clip",
            Act::LeakyRelu { .. } => "leaky_relu",
            Act::Sigmoid => "sigmoid",
            Act::Silu => "silu",
            Act::HardSwish => "hard_swish",
            Act::Gelu => "gelu",
            Act::GeluTanh => "gelu_tanh",
        }
    }

    fn params(self) -> (f32, f32) {
        match self {
            Act::Clip { lo, hi } => (lo, hi),
            Act::LeakyRelu { alpha } => (alpha, 0.0),
            _ => (0.0, 0.0),
        }
    }

    fn parse(name: &str, alpha: f32, beta: f32) -> Option<Act> {
        Some(match name {
            "none" => Act::None,
            "relu" => Act::Relu,
            "clip" => Act::Clip { lo: alpha, hi: beta },
            "leaky_relu" => Act::LeakyRelu { alpha },
            "sigmoid" => Act::Sigmoid,
            "silu" => Act::Silu,
            "hard_swish" => Act::HardSwish,
            "gelu" => Act::Gelu,
            "gelu_tanh" => Act::GeluTanh,
            _ => return None,
        })
    }

    /// The runtime ABI's code for this activation and its two parameters.
    pub fn abi(self) -> (neoc_runtime::abi::Activation, f32, f32) {
        use neoc_runtime::abi::Activation as A;
        let kind = match self {
            Act::None => A::None,
            Act::Relu => A::Relu,
            Act::Clip { .. } => A::Clip,
            Act::LeakyRelu { .. } => A::LeakyRelu,
            Act::Sigmoid => A::Sigmoid,
            Act::Silu => A::Silu,
            Act::HardSwish => A::HardSwish,
            Act::Gelu => A::Gelu,
            Act::GeluTanh => A::GeluTanh,
        };
        let (alpha, beta) = self.params();
        (kind, alpha, beta)
    }

    /// The activation in f64, as the reference evaluates it.
    pub fn apply(self, x: f64) -> f64 {
        let sigmoid = |v: f64| neoc_runtime::kernels::math::math(neoc_runtime::abi::MathOp::Sigmoid, v, 0.0);
        match self {
            Act::None => x,
            Act::Relu => x.max(0.0),
            Act::Clip { lo, hi } => x.max(lo as f64).min(hi as f64),
            Act::LeakyRelu { alpha } => {
                if x < 0.0 {
                    alpha as f64 * x
                } else {
                    x
                }
            }
            Act::Sigmoid => sigmoid(x),
            Act::Silu => x * sigmoid(x),
            Act::HardSwish => x * (x / 6.0 + 0.5).clamp(0.0, 1.0),
            // The Gelu operator's own reference, so fusing it changes nothing in the reference.
            Act::Gelu => super::activation::Activation::Gelu { tanh: false }.pointwise(x),
            Act::GeluTanh => super::activation::Activation::Gelu { tanh: true }.pointwise(x),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Fused {
    Conv { w: Window, group: usize, act: Act, residual: bool },
    MatMul { gemm: Option<(bool, bool)>, scale: f32, act: Act },
    Elementwise { body: Graph },
}

pub const IMPORTERS: &[Importer] = &[
    Importer { op_type: "FusedConv", domain: "neoc", since: 1, build: import_conv },
    Importer { op_type: "FusedMatMul", domain: "neoc", since: 1, build: import_matmul },
    Importer { op_type: "Elementwise", domain: "neoc", since: 1, build: import_elementwise },
];

fn import_conv(ctx: &mut NodeCtx) -> Result<Op> {
    let (w, group) = super::conv::import_window(ctx)?;
    let act = import_act(ctx, "FusedConv")?;
    let residual = ctx.int("_residual", 0)? != 0;
    Ok(Fused::Conv { w, group, act, residual }.into())
}

fn import_act(ctx: &mut NodeCtx, op: &str) -> Result<Act> {
    let name = ctx.string("act", "none")?;
    Act::parse(&name, ctx.float("alpha", 0.0)?, ctx.float("beta", 0.0)?).ok_or_else(|| anyhow!("{op}: unknown activation '{name}'"))
}

fn import_matmul(ctx: &mut NodeCtx) -> Result<Op> {
    let gemm = if ctx.int("_gemm", 0)? != 0 { Some((ctx.int("trans_a", 0)? != 0, ctx.int("trans_b", 0)? != 0)) } else { None };
    let scale = ctx.float("scale", 1.0)?;
    let act = import_act(ctx, "FusedMatMul")?;
    if ctx.inputs.len() > 4 {
        bail!("FusedMatMul takes A, B and at most two addends, got {} inputs", ctx.inputs.len());
    }
    Ok(Fused::MatMul { gemm, scale, act }.into())
}

fn import_elementwise(ctx: &mut NodeCtx) -> Result<Op> {
    let body = ctx.opt_graph("body")?.ok_or_else(|| anyhow!("Elementwise needs a 'body' graph"))?.clone();
    if body.inputs.len() != ctx.inputs.len() || body.outputs.len() != 1 {
        bail!("Elementwise: the body takes {} inputs and gives {} outputs; the node has {} inputs", body.inputs.len(), body.outputs.len(), ctx.inputs.len());
    }
    Ok(Fused::Elementwise { body }.into())
}

impl Fused {
    fn conv(&self) -> Option<Conv> {
        match self {
            Fused::Conv { w, group, .. } => Some(Conv::Conv { w: w.clone(), group: *group }),
            _ => None,
        }
    }

    /// The plain product op of a FusedMatMul (scale applied separately).
    fn product(&self) -> Option<crate::ir::ops::matmul::MatMul> {
        use crate::ir::ops::matmul::MatMul;
        match self {
            Fused::MatMul { gemm: Some((trans_a, trans_b)), .. } => Some(MatMul::Gemm { alpha: 1.0, beta: 0.0, trans_a: *trans_a, trans_b: *trans_b }),
            Fused::MatMul { gemm: None, .. } => Some(MatMul::MatMul),
            _ => None,
        }
    }
}

/// Writes an activation's attributes (`act`, and `alpha`/`beta` where it has them).
fn write_act(a: &mut Attrs, act: Act) {
    a.insert("act".into(), Attr::Str(act.name().into()));
    let (alpha, beta) = act.params();
    if matches!(act, Act::Clip { .. } | Act::LeakyRelu { .. }) {
        a.insert("alpha".into(), Attr::Float(alpha));
    }
    if matches!(act, Act::Clip { .. }) {
        a.insert("beta".into(), Attr::Float(beta));
    }
}

impl OpImpl for Fused {
    fn name(&self) -> &'static str {
        match self {
            Fused::Conv { .. } => "FusedConv",
            Fused::MatMul { .. } => "FusedMatMul",
            Fused::Elementwise { .. } => "Elementwise",
        }
    }

    fn attrs(&self) -> Attrs {
        let mut a = Attrs::new();
        match self {
            Fused::Conv { w, group, act, residual } => {
                w.write_attrs(&mut a);
                a.insert("group".into(), Attr::Int(*group as i64));
                write_act(&mut a, *act);
                a.insert("_residual".into(), Attr::Int(*residual as i64));
            }
            Fused::MatMul { gemm, scale, act } => {
                a.insert("_gemm".into(), Attr::Int(gemm.is_some() as i64));
                if let Some((trans_a, trans_b)) = gemm {
                    a.insert("trans_a".into(), Attr::Int(*trans_a as i64));
                    a.insert("trans_b".into(), Attr::Int(*trans_b as i64));
                }
                a.insert("scale".into(), Attr::Float(*scale));
                write_act(&mut a, *act);
            }
            Fused::Elementwise { body } => {
                a.insert("body".into(), Attr::Graph(Box::new(body.clone())));
            }
        }
        a
    }

    fn infer(&self, cx: &InferCx) -> Result<Vec<ValueType>> {
        match self {
            Fused::Conv { residual, .. } => {
                let conv_inputs = &cx.inputs[..cx.inputs.len().min(3)];
                let out = self.conv().expect("conv").infer(&InferCx { inputs: conv_inputs, n_outputs: 1 })?;
                if *residual {
                    let r = cx.ty(3)?;
                    if r != &out[0] {
                        bail!("FusedConv: residual {r} does not match the output {}", out[0]);
                    }
                }
                if out[0].dtype != DType::F32 {
                    bail!("FusedConv computes on f32, got {}", out[0].dtype);
                }
                Ok(out)
            }
            Fused::MatMul { .. } => {
                let out = self.product().expect("matmul").infer(&InferCx { inputs: &cx.inputs[..cx.n_inputs().min(2)], n_outputs: 1 })?;
                if out[0].dtype != DType::F32 {
                    bail!("FusedMatMul computes on f32, got {}", out[0].dtype);
                }
                for t in (2..cx.n_inputs()).filter_map(|i| cx.opt_ty(i)) {
                    let b = crate::ir::shape::broadcast(&t.shape, &out[0].shape)?;
                    if t.dtype != DType::F32 || b != out[0].shape {
                        bail!("FusedMatMul: addend {t} does not broadcast to the product {}", out[0]);
                    }
                }
                Ok(out)
            }
            Fused::Elementwise { body } => {
                for (i, (name, ty)) in body.input_types().iter().enumerate() {
                    let given = cx.ty(i)?;
                    if given != ty {
                        bail!("Elementwise: input {i} is {given}, the body's '{name}' is {ty}");
                    }
                }
                Ok(body.output_types().into_iter().map(|(_, t)| t).collect())
            }
        }
    }

    fn eval(&self, inputs: &EvalInputs) -> Result<Vec<Tensor>> {
        match self {
            Fused::Conv { act, residual, .. } => {
                let conv_inputs = &inputs.inputs[..inputs.inputs.len().min(3)];
                let y = self.conv().expect("conv").eval(&EvalInputs { inputs: conv_inputs, n_outputs: 1 })?.remove(0);
                let mut v = y.to_f64_array()?;
                if *residual {
                    let r = inputs.req(3)?.to_f64_array()?;
                    if r.shape() != v.shape() {
                        bail!("FusedConv: residual shape {:?} differs from the output {:?}", r.shape(), v.shape());
                    }
                    v += &r;
                }
                v.mapv_inplace(|x| act.apply(x));
                Ok(vec![Tensor::from_f64_array(y.dtype(), v)?])
            }
            Fused::MatMul { scale, act, .. } => {
                let y = self.product().expect("matmul").eval(&EvalInputs { inputs: &inputs.inputs[..inputs.len().min(2)], n_outputs: 1 })?.remove(0);
                let mut v = y.to_f64_array()?;
                v.mapv_inplace(|x| x * *scale as f64);
                for t in (2..inputs.len()).filter_map(|i| inputs.opt(i)) {
                    let t = t.to_f64_array()?;
                    let t = t.broadcast(v.shape()).ok_or_else(|| anyhow!("FusedMatMul: addend {:?} does not broadcast to {:?}", t.shape(), v.shape()))?.to_owned();
                    v += &t;
                }
                v.mapv_inplace(|x| act.apply(x));
                Ok(vec![Tensor::from_f64_array(y.dtype(), v)?])
            }
            Fused::Elementwise { body } => {
                let args: Vec<Tensor> = (0..inputs.len()).map(|i| inputs.req(i).cloned()).collect::<Result<_>>()?;
                crate::eval::run(body, &args)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::parse::parse_graph;
    use crate::ir::print::graph_text;

    #[test]
    fn text_form_round_trips() {
        let text = "graph(%x: f32[1,2,4,4], %w: f32[3,2,3,3], %r: f32[1,3,2,2]) {\n  %y = neoc.FusedConv{_residual=1, act=\"clip\", alpha=0, beta=6, dilations=[1,1], group=1, kernel_shape=[3,3], pads=[0,0,0,0], strides=[1,1]}(%x, %w, _, %r) : f32[1,3,2,2]\n  return %y\n}\n";
        let g = parse_graph(text).expect("parses");
        let again = parse_graph(&graph_text(&g, 0, false)).expect("reparses");
        assert_eq!(graph_text(&g, 0, false), graph_text(&again, 0, false));
    }

    #[test]
    fn activations_match_their_definitions() {
        assert_eq!(Act::Relu.apply(-2.0), 0.0);
        assert_eq!(Act::Clip { lo: 0.0, hi: 6.0 }.apply(7.0), 6.0);
        assert!((Act::LeakyRelu { alpha: 0.1 }.apply(-2.0) - 0.1f32 as f64 * -2.0).abs() < 1e-15);
        assert_eq!(Act::HardSwish.apply(3.0), 3.0);
        assert!((Act::Silu.apply(1.0) - 1.0 / (1.0 + (-1f64).exp())).abs() < 1e-15);
    }
}
