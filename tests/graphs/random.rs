//! Random small graphs of supported ops for the differential tests (`tests/differential.rs`):
//! random shapes with broadcasting, f32 and i32 values, attributes, constants that the
//! algebraic rewrites look for (x·1, x+0, Pow 2), and the decomposed patterns the fusion
//! passes rewrite (softmax, layer normalisation, GELU, conv + batch norm + residual + ReLU).
//!
//! A graph is a [`Recipe`]: graph inputs, then steps that each read earlier values by index
//! and make one value. [`Recipe::build`] re-checks every step's types, dropping a step whose
//! operands no longer fit (and the steps that read it), so [`Recipe::shrink`] can delete
//! steps freely while looking for the smallest graph that still fails.

use super::{A, G, Rng, attr, dt, tensor_f32, tensor_i64};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    F32,
    I32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Val {
    pub ty: Ty,
    pub shape: Vec<usize>,
}

/// One step: the op family and its parameters; operands are value indices.
#[derive(Clone, Debug)]
pub enum Step {
    Unary { op: &'static str, x: usize },
    /// A unary op that needs a bounded or positive input: applied to `guard(x)`.
    Guarded { op: &'static str, x: usize },
    Binary { op: &'static str, a: usize, b: usize },
    /// `x op c` with a constant `c` of shape `cshape` (a splat of `value`, or varied).
    WithConst { op: &'static str, x: usize, value: f32, cshape: Vec<usize>, varied: bool },
    Act { op: &'static str, x: usize, alpha: f32 },
    Clip { x: usize, lo: f32, hi: f32 },
    MatMulConst { x: usize, n: usize, seed: u64 },
    Gemm { x: usize, n: usize, trans_b: bool, bias: bool, alpha: f32, seed: u64 },
    Conv { x: usize, co: usize, k: usize, stride: usize, pad: usize, group: usize, bias: bool, seed: u64 },
    BatchNorm { x: usize, seed: u64 },
    Softmax { x: usize, axis: i64, log: bool },
    SoftmaxPattern { x: usize },
    LayerNorm { x: usize, seed: u64 },
    LayerNormPattern { x: usize },
    GeluPattern { x: usize, tanh: bool },
    Reduce { op: &'static str, x: usize, axes: Vec<i64>, keepdims: bool },
    Transpose { x: usize, perm: Vec<i64> },
    Flatten { x: usize, axis: i64 },
    Concat { a: usize, b: usize, axis: i64 },
    Slice { x: usize, axis: i64, start: i64, end: i64, step: i64 },
    Pool { op: &'static str, x: usize, k: usize, stride: usize },
    GlobalPool { x: usize },
    Where { ca: usize, cb: usize, x: usize, y: usize },
    CastRoundTrip { x: usize, via: i32 },
    IntToFloat { x: usize },
    Identity { x: usize, dropout: bool },
}

impl Step {
    fn operands(&self) -> Vec<usize> {
        use Step::*;
        match self {
            Unary { x, .. } | Guarded { x, .. } | WithConst { x, .. } | Act { x, .. } | Clip { x, .. } | MatMulConst { x, .. } | Gemm { x, .. }
            | Conv { x, .. } | BatchNorm { x, .. } | Softmax { x, .. } | SoftmaxPattern { x } | LayerNorm { x, .. } | LayerNormPattern { x }
            | GeluPattern { x, .. } | Reduce { x, .. } | Transpose { x, .. } | Flatten { x, .. } | Slice { x, .. } | Pool { x, .. }
            | GlobalPool { x } | CastRoundTrip { x, .. } | IntToFloat { x } | Identity { x, .. } => vec![*x],
            Binary { a, b, .. } | Concat { a, b, .. } => vec![*a, *b],
            Where { ca, cb, x, y } => vec![*ca, *cb, *x, *y],
        }
    }

    fn remap(&mut self, f: &dyn Fn(usize) -> usize) {
        use Step::*;
        match self {
            Unary { x, .. } | Guarded { x, .. } | WithConst { x, .. } | Act { x, .. } | Clip { x, .. } | MatMulConst { x, .. } | Gemm { x, .. }
            | Conv { x, .. } | BatchNorm { x, .. } | Softmax { x, .. } | SoftmaxPattern { x } | LayerNorm { x, .. } | LayerNormPattern { x }
            | GeluPattern { x, .. } | Reduce { x, .. } | Transpose { x, .. } | Flatten { x, .. } | Slice { x, .. } | Pool { x, .. }
            | GlobalPool { x } | CastRoundTrip { x, .. } | IntToFloat { x } | Identity { x, .. } => *x = f(*x),
            Binary { a, b, .. } | Concat { a, b, .. } => {
                *a = f(*a);
                *b = f(*b);
            }
            Where { ca, cb, x, y } => {
                *ca = f(*ca);
                *cb = f(*cb);
                *x = f(*x);
                *y = f(*y);
            }
        }
    }
}

/// A random graph: inputs, steps, and which values are graph outputs.
#[derive(Clone, Debug)]
pub struct Recipe {
    pub inputs: Vec<Val>,
    pub steps: Vec<Step>,
    pub outputs: Vec<usize>,
}

fn numel(s: &[usize]) -> usize {
    s.iter().product()
}

fn broadcast(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let n = a.len().max(b.len());
    (0..n)
        .map(|i| {
            let da = if i + a.len() >= n { a[i + a.len() - n] } else { 1 };
            let db = if i + b.len() >= n { b[i + b.len() - n] } else { 1 };
            match (da, db) {
                (x, y) if x == y => Some(x),
                (1, y) => Some(y),
                (x, 1) => Some(x),
                _ => None,
            }
        })
        .collect()
}

fn norm_axis(a: i64, rank: usize) -> Option<usize> {
    let r = rank as i64;
    (-r..r).contains(&a).then(|| if a < 0 { (a + r) as usize } else { a as usize })
}

/// Deterministic weights in [-0.5, 0.5).
fn weights(seed: u64, n: usize) -> Vec<f32> {
    let mut r = Rng::new(seed);
    (0..n).map(|_| r.range(-0.5, 0.5) as f32).collect()
}

/// The type `step` makes from `vals`, or `None` when its operands do not fit.
fn type_of(step: &Step, vals: &[Val]) -> Option<Val> {
    let v = |i: usize| vals.get(i);
    let f32v = |i: usize| v(i).filter(|x| x.ty == Ty::F32);
    let f = |shape: Vec<usize>| Some(Val { ty: Ty::F32, shape });
    use Step::*;
    match step {
        Unary { op, x } => {
            let x = v(*x)?;
            (x.ty == Ty::F32 || matches!(*op, "Neg" | "Abs" | "Relu")).then(|| x.clone())
        }
        Guarded { x, .. } | Act { x, .. } | Clip { x, .. } | Identity { x, .. } | CastRoundTrip { x, .. } => f(f32v(*x)?.shape.clone()),
        Binary { op, a, b } => {
            let (a, b) = (v(*a)?, v(*b)?);
            if a.ty != b.ty || (a.ty == Ty::I32 && !matches!(*op, "Add" | "Sub" | "Mul" | "Div" | "Mod" | "Max" | "Min")) {
                return None;
            }
            Some(Val { ty: a.ty, shape: broadcast(&a.shape, &b.shape)? })
        }
        WithConst { x, cshape, .. } => f(broadcast(&f32v(*x)?.shape, cshape)?),
        MatMulConst { x, n, .. } => {
            let s = &f32v(*x)?.shape;
            let mut o = s.clone();
            *o.last_mut()? = *n;
            (!s.is_empty()).then_some(())?;
            f(o)
        }
        Gemm { x, n, .. } => match f32v(*x)?.shape[..] {
            [m, _] => f(vec![m, *n]),
            _ => None,
        },
        // Empty input channels or spatial dims are refused by the compiler (a clear error,
        // tested among the hostile graphs), so the generator leaves them out.
        Conv { x, co, k, stride, pad, group, .. } => match f32v(*x)?.shape[..] {
            [b, c, h, w] if c > 0 && h > 0 && w > 0 && c % group == 0 && co % group == 0 && h + 2 * pad >= *k && w + 2 * pad >= *k => {
                f(vec![b, *co, (h + 2 * pad - k) / stride + 1, (w + 2 * pad - k) / stride + 1])
            }
            _ => None,
        },
        BatchNorm { x, .. } => {
            let s = &f32v(*x)?.shape;
            (s.len() == 4).then(|| Val { ty: Ty::F32, shape: s.clone() })
        }
        Softmax { x, axis, .. } => {
            let s = &f32v(*x)?.shape;
            norm_axis(*axis, s.len())?;
            f(s.clone())
        }
        SoftmaxPattern { x } | LayerNorm { x, .. } | LayerNormPattern { x } | GeluPattern { x, .. } => {
            let s = &f32v(*x)?.shape;
            (!s.is_empty() && numel(s) > 0).then(|| Val { ty: Ty::F32, shape: s.clone() })
        }
        Reduce { x, axes, keepdims, .. } => {
            let s = &f32v(*x)?.shape;
            let ax: Vec<usize> = axes.iter().map(|&a| norm_axis(a, s.len())).collect::<Option<_>>()?;
            let mut sorted = ax.clone();
            sorted.sort_unstable();
            sorted.dedup();
            if sorted.len() != ax.len() || ax.iter().any(|&a| s[a] == 0) {
                return None;
            }
            let shape = (0..s.len()).filter_map(|d| if ax.contains(&d) { keepdims.then_some(1) } else { Some(s[d]) }).collect();
            f(shape)
        }
        Transpose { x, perm } => {
            let s = &v(*x)?.shape;
            if perm.len() != s.len() {
                return None;
            }
            let mut seen = vec![false; s.len()];
            let mut o = vec![];
            for &p in perm {
                let p = norm_axis(p, s.len())?;
                if std::mem::replace(&mut seen[p], true) {
                    return None;
                }
                o.push(s[p]);
            }
            Some(Val { ty: v(*x)?.ty, shape: o })
        }
        Flatten { x, axis } => {
            let s = &v(*x)?.shape;
            let a = usize::try_from(*axis).ok().filter(|&a| a <= s.len())?;
            Some(Val { ty: v(*x)?.ty, shape: vec![numel(&s[..a]), numel(&s[a..])] })
        }
        Concat { a, b, axis } => {
            let (a, b) = (v(*a)?, v(*b)?);
            let ax = norm_axis(*axis, a.shape.len())?;
            if a.ty != b.ty || a.shape.len() != b.shape.len() || (0..a.shape.len()).any(|d| d != ax && a.shape[d] != b.shape[d]) {
                return None;
            }
            let mut o = a.shape.clone();
            o[ax] += b.shape[ax];
            Some(Val { ty: a.ty, shape: o })
        }
        Slice { x, axis, start, end, step } => {
            let xv = v(*x)?;
            let ax = norm_axis(*axis, xv.shape.len())?;
            let d = xv.shape[ax] as i64;
            let (s, e) = ((*start).clamp(0, d), (*end).clamp(0, d));
            let len = if e > s { (e - s + step - 1) / step } else { 0 };
            let mut o = xv.shape.clone();
            o[ax] = len as usize;
            Some(Val { ty: xv.ty, shape: o })
        }
        Pool { x, k, stride, .. } => match f32v(*x)?.shape[..] {
            [b, c, h, w] if h >= *k && w >= *k => f(vec![b, c, (h - k) / stride + 1, (w - k) / stride + 1]),
            _ => None,
        },
        GlobalPool { x } => match f32v(*x)?.shape[..] {
            [b, c, _, _] => f(vec![b, c, 1, 1]),
            _ => None,
        },
        Where { ca, cb, x, y } => {
            let (ca, cb, xv, yv) = (v(*ca)?, v(*cb)?, v(*x)?, v(*y)?);
            if ca.ty != cb.ty || xv.ty != yv.ty {
                return None;
            }
            let c = broadcast(&ca.shape, &cb.shape)?;
            Some(Val { ty: xv.ty, shape: broadcast(&broadcast(&c, &xv.shape)?, &yv.shape)? })
        }
        IntToFloat { x } => {
            let xv = v(*x)?;
            (xv.ty == Ty::I32).then(|| Val { ty: Ty::F32, shape: xv.shape.clone() })
        }
    }
}

/// Emits the ONNX nodes of `step` (value `k` is named `v{k}`), with its constants.
fn emit(g: G, step: &Step, out: &str, vals: &[Val]) -> G {
    let n = |i: usize| format!("v{i}");
    let c = |suffix: &str| format!("{out}_{suffix}");
    use Step::*;
    match step {
        Unary { op, x } => g.node(op, &[&n(*x)], &[out], vec![]),
        Guarded { op, x } => {
            // Exp and Erf of tanh(x) stay finite; Log, Sqrt and Reciprocal read |x| + 0.5.
            let (a, b) = (c("g0"), c("g1"));
            match *op {
                "Exp" | "Erf" | "Sin" | "Cos" => g.node("Tanh", &[&n(*x)], &[&a], vec![]).node(op, &[&a], &[out], vec![]),
                _ => g.init(tensor_f32(&c("half"), &[], &[0.5])).node("Abs", &[&n(*x)], &[&a], vec![]).node("Add", &[&a, &c("half")], &[&b], vec![]).node(op, &[&b], &[out], vec![]),
            }
        }
        Binary { op, a, b } if *op == "Div" && vals[*a].ty == Ty::F32 => {
            // Divide by |b| + 1: no division by (nearly) zero.
            let (t, u) = (c("abs"), c("den"));
            g.init(tensor_f32(&c("one"), &[], &[1.0])).node("Abs", &[&n(*b)], &[&t], vec![]).node("Add", &[&t, &c("one")], &[&u], vec![]).node("Div", &[&n(*a), &u], &[out], vec![])
        }
        Binary { op, a, b } => {
            let attrs = if *op == "Mod" { vec![attr("fmod", A::I(0))] } else { vec![] };
            g.node(op, &[&n(*a), &n(*b)], &[out], attrs)
        }
        WithConst { op, x, value, cshape, varied } => {
            let len = numel(cshape);
            let data: Vec<f32> = if *varied { weights(len as u64 + 7, len).iter().map(|w| value + w).collect() } else { vec![*value; len] };
            let dims: Vec<i64> = cshape.iter().map(|&d| d as i64).collect();
            let name = c("c");
            let ins: [&str; 2] = if *op == "Pow" || *op == "Sub" || *op == "Div" { [&n(*x), &name] } else { [&name, &n(*x)] };
            if *op == "Pow" {
                // Pow of |x| (a negative base with a fractional exponent is NaN).
                let a = c("abs");
                return g.init(tensor_f32(&name, &dims, &data)).node("Abs", &[&n(*x)], &[&a], vec![]).node("Pow", &[&a, &name], &[out], vec![]);
            }
            g.init(tensor_f32(&name, &dims, &data)).node(op, &ins, &[out], vec![])
        }
        Act { op, x, alpha } => {
            let attrs = match *op {
                "LeakyRelu" | "Elu" | "Celu" | "ThresholdedRelu" => vec![attr("alpha", A::F(*alpha))],
                "HardSigmoid" => vec![attr("alpha", A::F(*alpha)), attr("beta", A::F(0.5))],
                "Gelu" => vec![attr("approximate", A::S(if *alpha > 0.5 { "tanh" } else { "none" }))],
                _ => vec![],
            };
            g.node(op, &[&n(*x)], &[out], attrs)
        }
        Clip { x, lo, hi } => g.init(tensor_f32(&c("lo"), &[], &[*lo])).init(tensor_f32(&c("hi"), &[], &[*hi])).node("Clip", &[&n(*x), &c("lo"), &c("hi")], &[out], vec![]),
        MatMulConst { x, n: cols, seed } => {
            let k = *vals[*x].shape.last().unwrap_or(&1);
            g.init(tensor_f32(&c("w"), &[k as i64, *cols as i64], &weights(*seed, k * cols))).node("MatMul", &[&n(*x), &c("w")], &[out], vec![])
        }
        Gemm { x, n: cols, trans_b, bias, alpha, seed } => {
            let k = vals[*x].shape[1];
            let dims = if *trans_b { [*cols as i64, k as i64] } else { [k as i64, *cols as i64] };
            let mut g = g.init(tensor_f32(&c("w"), &dims, &weights(*seed, k * cols)));
            let mut ins = vec![n(*x), c("w")];
            if *bias {
                g = g.init(tensor_f32(&c("b"), &[*cols as i64], &weights(seed + 1, *cols)));
                ins.push(c("b"));
            }
            let refs: Vec<&str> = ins.iter().map(String::as_str).collect();
            g.node("Gemm", &refs, &[out], vec![attr("transB", A::I(*trans_b as i64)), attr("alpha", A::F(*alpha))])
        }
        Conv { x, co, k, stride, pad, group, bias, seed } => {
            let ci = vals[*x].shape[1] / group;
            let mut g = g.init(tensor_f32(&c("w"), &[*co as i64, ci as i64, *k as i64, *k as i64], &weights(*seed, co * ci * k * k)));
            let mut ins = vec![n(*x), c("w")];
            if *bias {
                g = g.init(tensor_f32(&c("b"), &[*co as i64], &weights(seed + 1, *co)));
                ins.push(c("b"));
            }
            let refs: Vec<&str> = ins.iter().map(String::as_str).collect();
            let p = *pad as i64;
            g.node("Conv", &refs, &[out], vec![attr("strides", A::Is(vec![*stride as i64; 2])), attr("pads", A::Is(vec![p; 4])), attr("group", A::I(*group as i64))])
        }
        BatchNorm { x, seed } => {
            let ch = vals[*x].shape[1];
            let var: Vec<f32> = weights(seed + 3, ch).iter().map(|w| w + 1.0).collect();
            g.init(tensor_f32(&c("s"), &[ch as i64], &weights(*seed, ch)))
                .init(tensor_f32(&c("b"), &[ch as i64], &weights(seed + 1, ch)))
                .init(tensor_f32(&c("m"), &[ch as i64], &weights(seed + 2, ch)))
                .init(tensor_f32(&c("v"), &[ch as i64], &var))
                .node("BatchNormalization", &[&n(*x), &c("s"), &c("b"), &c("m"), &c("v")], &[out], vec![])
        }
        Softmax { x, axis, log } => g.node(if *log { "LogSoftmax" } else { "Softmax" }, &[&n(*x)], &[out], vec![attr("axis", A::I(*axis))]),
        SoftmaxPattern { x } => {
            let (m, d, e, s) = (c("max"), c("sub"), c("exp"), c("sum"));
            g.init(tensor_i64(&c("ax"), &[1], &[-1]))
                .node("ReduceMax", &[&n(*x), &c("ax")], &[&m], vec![attr("keepdims", A::I(1))])
                .node("Sub", &[&n(*x), &m], &[&d], vec![])
                .node("Exp", &[&d], &[&e], vec![])
                .node("ReduceSum", &[&e, &c("ax")], &[&s], vec![attr("keepdims", A::I(1))])
                .node("Div", &[&e, &s], &[out], vec![])
        }
        LayerNorm { x, seed } => {
            let d = *vals[*x].shape.last().unwrap_or(&1);
            g.init(tensor_f32(&c("s"), &[d as i64], &weights(*seed, d)))
                .init(tensor_f32(&c("b"), &[d as i64], &weights(seed + 1, d)))
                .node("LayerNormalization", &[&n(*x), &c("s"), &c("b")], &[out], vec![attr("axis", A::I(-1))])
        }
        LayerNormPattern { x } => {
            let (m, d, p, v, e, s) = (c("mean"), c("d"), c("sq"), c("var"), c("ve"), c("sd"));
            g.init(tensor_i64(&c("ax"), &[1], &[-1]))
                .init(tensor_f32(&c("two"), &[], &[2.0]))
                .init(tensor_f32(&c("eps"), &[], &[1e-5]))
                .node("ReduceMean", &[&n(*x), &c("ax")], &[&m], vec![attr("keepdims", A::I(1))])
                .node("Sub", &[&n(*x), &m], &[&d], vec![])
                .node("Pow", &[&d, &c("two")], &[&p], vec![])
                .node("ReduceMean", &[&p, &c("ax")], &[&v], vec![attr("keepdims", A::I(1))])
                .node("Add", &[&v, &c("eps")], &[&e], vec![])
                .node("Sqrt", &[&e], &[&s], vec![])
                .node("Div", &[&d, &s], &[out], vec![])
        }
        GeluPattern { x, tanh } => {
            let (a, b, e, h) = (c("a"), c("b"), c("e"), c("h"));
            let g = g.init(tensor_f32(&c("half"), &[], &[0.5])).init(tensor_f32(&c("one"), &[], &[1.0]));
            if *tanh {
                // 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
                let (cube, t1, t2, t3) = (c("x3"), c("t1"), c("t2"), c("t3"));
                g.init(tensor_f32(&c("three"), &[], &[3.0]))
                    .init(tensor_f32(&c("k"), &[], &[0.044715]))
                    .init(tensor_f32(&c("r"), &[], &[0.797_884_6]))
                    .node("Pow", &[&n(*x), &c("three")], &[&cube], vec![])
                    .node("Mul", &[&c("k"), &cube], &[&t1], vec![])
                    .node("Add", &[&n(*x), &t1], &[&t2], vec![])
                    .node("Mul", &[&c("r"), &t2], &[&t3], vec![])
                    .node("Tanh", &[&t3], &[&e], vec![])
                    .node("Add", &[&c("one"), &e], &[&a], vec![])
                    .node("Mul", &[&n(*x), &a], &[&b], vec![])
                    .node("Mul", &[&b, &c("half")], &[out], vec![])
            } else {
                g.init(tensor_f32(&c("r2"), &[], &[std::f32::consts::SQRT_2]))
                    .node("Div", &[&n(*x), &c("r2")], &[&h], vec![])
                    .node("Erf", &[&h], &[&e], vec![])
                    .node("Add", &[&e, &c("one")], &[&a], vec![])
                    .node("Mul", &[&n(*x), &a], &[&b], vec![])
                    .node("Mul", &[&b, &c("half")], &[out], vec![])
            }
        }
        Reduce { op, x, axes, keepdims } => {
            g.init(tensor_i64(&c("ax"), &[axes.len() as i64], axes)).node(op, &[&n(*x), &c("ax")], &[out], vec![attr("keepdims", A::I(*keepdims as i64))])
        }
        Transpose { x, perm } => g.node("Transpose", &[&n(*x)], &[out], vec![attr("perm", A::Is(perm.clone()))]),
        Flatten { x, axis } => g.node("Flatten", &[&n(*x)], &[out], vec![attr("axis", A::I(*axis))]),
        Concat { a, b, axis } => g.node("Concat", &[&n(*a), &n(*b)], &[out], vec![attr("axis", A::I(*axis))]),
        Slice { x, axis, start, end, step } => g
            .init(tensor_i64(&c("s"), &[1], &[*start]))
            .init(tensor_i64(&c("e"), &[1], &[*end]))
            .init(tensor_i64(&c("a"), &[1], &[*axis]))
            .init(tensor_i64(&c("st"), &[1], &[*step]))
            .node("Slice", &[&n(*x), &c("s"), &c("e"), &c("a"), &c("st")], &[out], vec![]),
        Pool { op, x, k, stride } => g.node(op, &[&n(*x)], &[out], vec![attr("kernel_shape", A::Is(vec![*k as i64; 2])), attr("strides", A::Is(vec![*stride as i64; 2]))]),
        GlobalPool { x } => g.node("GlobalAveragePool", &[&n(*x)], &[out], vec![]),
        Where { ca, cb, x, y } => {
            let cond = c("cond");
            g.node("Greater", &[&n(*ca), &n(*cb)], &[&cond], vec![]).node("Where", &[&cond, &n(*x), &n(*y)], &[out], vec![])
        }
        CastRoundTrip { x, via } => {
            let t = c("cast");
            g.node("Cast", &[&n(*x)], &[&t], vec![attr("to", A::I(*via as i64))]).node("Cast", &[&t], &[out], vec![attr("to", A::I(dt::FLOAT as i64))])
        }
        IntToFloat { x } => g.node("Cast", &[&n(*x)], &[out], vec![attr("to", A::I(dt::FLOAT as i64))]),
        Identity { x, dropout } => g.node(if *dropout { "Dropout" } else { "Identity" }, &[&n(*x)], &[out], vec![]),
    }
}

impl Recipe {
    /// The types of every value; a step whose operands do not fit (or read a dropped value)
    /// is dropped, marked `None`.
    pub fn types(&self) -> Vec<Option<Val>> {
        let mut tys: Vec<Option<Val>> = self.inputs.iter().cloned().map(Some).collect();
        for s in &self.steps {
            let ok = s.operands().iter().all(|&i| tys.get(i).is_some_and(Option::is_some));
            let vals: Vec<Val> = tys.iter().map(|t| t.clone().unwrap_or(Val { ty: Ty::F32, shape: vec![usize::MAX] })).collect();
            tys.push(if ok { type_of(s, &vals).filter(|t| numel(&t.shape) <= 1 << 16) } else { None });
        }
        tys
    }

    /// The ONNX model (opset 21), encoded by rust-protobuf.
    pub fn build(&self) -> Vec<u8> {
        super::encode(&self.model())
    }

    /// The ONNX model (opset 21) as rust-protobuf's message.
    pub fn model(&self) -> onnx_protobuf::ModelProto {
        let tys = self.types();
        let mut g = G::new("random");
        for (i, v) in self.inputs.iter().enumerate() {
            let dims: Vec<i64> = v.shape.iter().map(|&d| d as i64).collect();
            g = g.input(&format!("v{i}"), if v.ty == Ty::F32 { dt::FLOAT } else { dt::INT32 }, &dims);
        }
        let vals: Vec<Val> = tys.iter().map(|t| t.clone().unwrap_or(Val { ty: Ty::F32, shape: vec![] })).collect();
        for (k, s) in self.steps.iter().enumerate() {
            let idx = self.inputs.len() + k;
            if tys[idx].is_some() {
                g = emit(g, s, &format!("v{idx}"), &vals);
            }
        }
        let mut outs: Vec<usize> = self.outputs.iter().copied().filter(|&o| tys.get(o).is_some_and(Option::is_some)).collect();
        outs.dedup();
        for o in outs {
            g = g.output(&format!("v{o}"));
        }
        g.model(21)
    }

    /// How many steps build into nodes.
    pub fn live_steps(&self) -> usize {
        self.types().iter().skip(self.inputs.len()).filter(|t| t.is_some()).count()
    }

    /// Smaller recipes to try: each step removed (readers of its value read its first
    /// operand instead), each extra output removed, each input shape dim halved.
    pub fn shrinks(&self) -> Vec<Recipe> {
        let mut out = vec![];
        let ni = self.inputs.len();
        for k in (0..self.steps.len()).rev() {
            let idx = ni + k;
            let replacement = self.steps[k].operands()[0];
            let mut r = self.clone();
            r.steps.remove(k);
            let f = |i: usize| if i == idx { replacement } else if i > idx { i - 1 } else { i };
            for s in &mut r.steps {
                s.remap(&f);
            }
            r.outputs = r.outputs.iter().map(|&o| f(o)).collect();
            out.push(r);
        }
        for o in 0..self.outputs.len() {
            if self.outputs.len() > 1 {
                let mut r = self.clone();
                r.outputs.remove(o);
                out.push(r);
            }
        }
        for (i, v) in self.inputs.iter().enumerate() {
            for d in 0..v.shape.len() {
                if v.shape[d] > 1 {
                    let mut r = self.clone();
                    r.inputs[i].shape[d] = v.shape[d] / 2;
                    out.push(r);
                }
            }
        }
        out
    }
}

/// A random recipe of up to `max_steps` steps.
pub fn generate(seed: u64, max_steps: usize) -> Recipe {
    generate_with(&mut Rng::new(seed), max_steps)
}

/// A random recipe whose every choice comes from `r`.
pub fn generate_with(r: &mut Rng, max_steps: usize) -> Recipe {
    let rank = r.below(5);
    let base: Vec<usize> = (0..rank).map(|_| 1 + r.below(5)).collect();
    let mut inputs = vec![Val { ty: Ty::F32, shape: base.clone() }];
    // A second input broadcasting against the first (some dims 1, maybe fewer dims).
    let drop = r.below(rank + 1);
    inputs.push(Val { ty: Ty::F32, shape: base[drop..].iter().map(|&d| if r.chance(0.3) { 1 } else { d }).collect() });
    if r.chance(0.3) {
        inputs.push(Val { ty: Ty::I32, shape: base.clone() });
    }
    if r.chance(0.4) {
        // An NCHW image for convolutions and pools.
        inputs.push(Val { ty: Ty::F32, shape: vec![1 + r.below(2), 1 + r.below(4), 3 + r.below(5), 3 + r.below(5)] });
    }
    let mut rec = Recipe { inputs, steps: vec![], outputs: vec![] };
    let n_steps = 1 + r.below(max_steps);
    let mut tries = 0;
    while rec.steps.len() < n_steps && tries < 200 {
        tries += 1;
        let tys = rec.types();
        let live: Vec<usize> = (0..tys.len()).filter(|&i| tys[i].is_some()).collect();
        // Prefer recent values, so chains form (what the fusion passes look for).
        let pick = |r: &mut Rng| if r.chance(0.6) { live[live.len() - 1 - r.below(live.len().min(3))] } else { *r.pick(&live) };
        let x = pick(r);
        let xv = tys[x].clone().expect("live");
        let rank = xv.shape.len() as i64;
        let step = match r.below(27) {
            0 | 1 => Step::Unary { op: *r.pick(&["Relu", "Neg", "Abs", "Sigmoid", "Tanh", "Softsign"][..if xv.ty == Ty::F32 { 6 } else { 3 }]), x },
            2 => Step::Guarded { op: *r.pick(&["Exp", "Erf", "Log", "Sqrt", "Reciprocal", "Sin", "Cos"]), x },
            3 | 4 => Step::Binary { op: *r.pick(&["Add", "Sub", "Mul", "Div", "Max", "Min", "Mod"][..if xv.ty == Ty::F32 { 6 } else { 7 }]), a: x, b: pick(r) },
            5 | 6 => {
                let op = *r.pick(&["Add", "Mul", "Sub", "Div", "Pow"]);
                let value = *r.pick(&[0.0f32, 1.0, 2.0, 0.5, -1.5, 3.0]);
                let cshape = if r.chance(0.5) || xv.shape.is_empty() { vec![] } else { vec![*xv.shape.last().unwrap_or(&1)] };
                let value = if op == "Div" && value == 0.0 { 2.0 } else { value };
                Step::WithConst { op, x, value, cshape, varied: r.chance(0.3) && op != "Pow" && op != "Div" }
            }
            7 => Step::Act { op: *r.pick(&["LeakyRelu", "Elu", "HardSigmoid", "HardSwish", "Softplus", "Gelu", "Mish", "Celu"]), x, alpha: r.range(0.05, 1.0) as f32 },
            8 => Step::Clip { x, lo: r.range(-1.0, 0.0) as f32, hi: r.range(0.1, 1.5) as f32 },
            9 | 10 => Step::MatMulConst { x, n: 1 + r.below(6), seed: r.next() },
            11 => Step::Gemm { x, n: 1 + r.below(6), trans_b: r.chance(0.5), bias: r.chance(0.7), alpha: *r.pick(&[1.0, 0.5]), seed: r.next() },
            12 | 13 => {
                let group = if r.chance(0.3) { xv.shape.get(1).copied().unwrap_or(1).max(1) } else { 1 };
                let co = if group > 1 { group } else { 1 + r.below(4) };
                Step::Conv { x, co, k: 1 + r.below(3), stride: 1 + r.below(2), pad: r.below(2), group, bias: r.chance(0.6), seed: r.next() }
            }
            14 => Step::BatchNorm { x, seed: r.next() },
            15 => Step::Softmax { x, axis: if rank > 0 { r.below(rank as usize) as i64 - if r.chance(0.5) { rank } else { 0 } } else { 0 }, log: r.chance(0.3) },
            16 => Step::SoftmaxPattern { x },
            17 => if r.chance(0.5) { Step::LayerNorm { x, seed: r.next() } } else { Step::LayerNormPattern { x } },
            18 => Step::GeluPattern { x, tanh: r.chance(0.4) },
            19 => {
                let n = 1 + r.below(rank.max(1) as usize);
                let mut axes: Vec<i64> = (0..rank).collect();
                for i in (1..axes.len()).rev() {
                    axes.swap(i, r.below(i + 1));
                }
                axes.truncate(n);
                Step::Reduce { op: *r.pick(&["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceL2", "ReduceLogSumExp"]), x, axes, keepdims: r.chance(0.5) }
            }
            20 => {
                let mut perm: Vec<i64> = (0..rank).collect();
                for i in (1..perm.len()).rev() {
                    perm.swap(i, r.below(i + 1));
                }
                Step::Transpose { x, perm }
            }
            21 => Step::Flatten { x, axis: r.below(rank as usize + 1) as i64 },
            22 => Step::Concat { a: x, b: pick(r), axis: if rank > 0 { r.below(rank as usize) as i64 } else { 0 } },
            23 => {
                let axis = if rank > 0 { r.below(rank as usize) as i64 } else { 0 };
                Step::Slice { x, axis, start: r.below(3) as i64, end: 1 + r.below(6) as i64, step: 1 + r.below(2) as i64 }
            }
            24 => if r.chance(0.5) { Step::Pool { op: *r.pick(&["MaxPool", "AveragePool"]), x, k: 1 + r.below(3), stride: 1 + r.below(2) } } else { Step::GlobalPool { x } },
            25 => Step::Where { ca: 0, cb: 1, x, y: pick(r) },
            _ => match xv.ty {
                Ty::I32 => Step::IntToFloat { x },
                // Round trips through f16/bf16 only of graph inputs: a computed value a few
                // f32 ulps from a half-precision rounding boundary would round either way.
                Ty::F32 if r.chance(0.5) && x < rec.inputs.len() => Step::CastRoundTrip { x, via: *r.pick(&[10, 16, 11]) },
                Ty::F32 => Step::Identity { x, dropout: r.chance(0.5) },
            },
        };
        let mut trial = rec.clone();
        trial.steps.push(step);
        if trial.types().last().is_some_and(Option::is_some) {
            rec = trial;
        }
    }
    let last = rec.inputs.len() + rec.steps.len() - 1;
    rec.outputs.push(last.max(0));
    if rec.steps.len() > 2 && r.chance(0.3) {
        // An intermediate value as a second output: fusion must keep it.
        rec.outputs.push(rec.inputs.len() + r.below(rec.steps.len() - 1));
    }
    rec
}
