//! Control flow: If, Loop, Scan.
//!
//! Specs: https://onnx.ai/onnx/operators/onnx__If.html (opsets 1, 11, 13, 16, 19, 21, 23, 24),
//! https://onnx.ai/onnx/operators/onnx__Loop.html (1, 11, 13, 16, 19, 21, 23, 24),
//! https://onnx.ai/onnx/operators/onnx__Scan.html (8, 9, 11, 16, 19, 21, 23, 24).
//!
//! Bodies are IR graphs. Outer values a body reads become trailing operands of the node (the
//! import driver records how many in `_captures`) and trailing inputs of every body.
//! - If: with a constant condition the importer inlines the chosen branch, so an `If` in the
//!   IR has a run-time condition; static shapes need both branches to produce equal types.
//! - Loop: loop-carried values keep their types. Scan outputs stack along a new axis 0, whose
//!   length must be known statically: the trip count must be a constant, and a run that ends
//!   early (the condition turned false) is an error rather than a silently short output.
//! - Scan (opset 9 form): states keep their types; scan inputs are sliced along their axes.
//!   The opset 8 form (batch axis, sequence_lens) is not supported.
//! Sequence and optional values are not supported.

use crate::ir::{Attr, Attrs, EvalInputs, Graph, Importer, InferCx, NodeCtx, OpImpl, ValueType, shape};
use crate::tensor::{ArrayD, Axis, Elem, Tensor};
use crate::{map_array, try_map_array};
use anyhow::{Context, Result, anyhow, bail};

/// The control-flow family (the variant name in `Op` is `If`, for historical reasons).
#[derive(Clone, Debug, PartialEq)]
pub enum If {
    If { then_branch: Graph, else_branch: Graph, captures: usize },
    Loop { body: Graph, captures: usize },
    Scan(Scan),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Scan {
    pub body: Graph,
    pub captures: usize,
    pub num_scan_inputs: usize,
    pub input_axes: Vec<i64>,
    pub input_reverse: Vec<bool>,
    pub output_axes: Vec<i64>,
    pub output_reverse: Vec<bool>,
}

fn captures(cx: &NodeCtx) -> Result<usize> {
    usize::try_from(cx.int("_captures", 0)?).map_err(|_| anyhow!("negative _captures"))
}

fn graph_attr(cx: &NodeCtx, name: &str) -> Result<Graph> {
    Ok(cx.opt_graph(name)?.ok_or_else(|| anyhow!("{} needs a '{name}' graph", cx.op_type))?.clone())
}

fn import_if(cx: &mut NodeCtx) -> Result<crate::ir::Op> {
    let then_branch = graph_attr(cx, "then_branch")?;
    let else_branch = graph_attr(cx, "else_branch")?;
    let captures = captures(cx)?;
    for (name, g) in [("then_branch", &then_branch), ("else_branch", &else_branch)] {
        if g.inputs.len() + 1 != cx.inputs.len() || g.inputs.len() != captures {
            bail!("{name} takes {} values, the If node passes {}", g.inputs.len(), cx.inputs.len() - 1);
        }
    }
    Ok(If::If { then_branch, else_branch, captures }.into())
}

fn import_loop(cx: &mut NodeCtx) -> Result<crate::ir::Op> {
    let body = graph_attr(cx, "body")?;
    let captures = captures(cx)?;
    if body.inputs.len() != cx.inputs.len() {
        bail!("the Loop body takes {} values, the node passes {}", body.inputs.len(), cx.inputs.len());
    }
    Ok(If::Loop { body, captures }.into())
}

fn import_scan(cx: &mut NodeCtx) -> Result<crate::ir::Op> {
    if cx.opset < 9 {
        return Err(cx.unsupported("Scan opset 8 (batched, with sequence_lens)"));
    }
    let body = graph_attr(cx, "body")?;
    let captures = captures(cx)?;
    let m = usize::try_from(cx.req_int("num_scan_inputs")?).map_err(|_| anyhow!("negative num_scan_inputs"))?;
    let n_in = cx.inputs.len().checked_sub(captures + m).ok_or_else(|| anyhow!("Scan has fewer inputs than num_scan_inputs"))?;
    let k = body.outputs.len().checked_sub(n_in).ok_or_else(|| anyhow!("the Scan body returns fewer values than there are states"))?;
    let dirs = |name: &str, n: usize| -> Result<Vec<bool>> {
        let v = cx.opt_ints(name)?.unwrap_or_else(|| vec![0; n]);
        if v.len() != n {
            bail!("{name} has {} entries, expected {n}", v.len());
        }
        Ok(v.into_iter().map(|d| d == 1).collect())
    };
    let axes = |name: &str, n: usize| -> Result<Vec<i64>> {
        let v = cx.opt_ints(name)?.unwrap_or_else(|| vec![0; n]);
        if v.len() != n {
            bail!("{name} has {} entries, expected {n}", v.len());
        }
        Ok(v)
    };
    Ok(If::Scan(Scan {
        captures,
        num_scan_inputs: m,
        input_axes: axes("scan_input_axes", m)?,
        input_reverse: dirs("scan_input_directions", m)?,
        output_axes: axes("scan_output_axes", k)?,
        output_reverse: dirs("scan_output_directions", k)?,
        body,
    })
    .into())
}

pub const IMPORTERS: &[Importer] = &[
    Importer { op_type: "If", domain: "", since: 1, build: import_if },
    Importer { op_type: "Loop", domain: "", since: 1, build: import_loop },
    Importer { op_type: "Scan", domain: "", since: 8, build: import_scan },
];

/// Checks that a body's input `k` accepts `given`.
fn check_input(body: &Graph, k: usize, given: &ValueType, what: &str) -> Result<()> {
    let (name, ty) = body.input_types().get(k).cloned().ok_or_else(|| anyhow!("the body has no input {k}"))?;
    if &ty != given {
        bail!("{what}: body input '{name}' is {ty}, but receives {given}");
    }
    Ok(())
}

/// Stacks equal-typed tensors along a new axis `axis` (in order).
fn stack(parts: &[Tensor], axis: usize) -> Result<Tensor> {
    fn go<T: Elem>(parts: &[Tensor], axis: usize) -> Result<ArrayD<T>> {
        let views: Vec<_> = parts.iter().map(|p| p.as_array::<T>().map(|a| a.view())).collect::<Result<_>>()?;
        Ok(ndarray::stack(Axis(axis), &views)?)
    }
    let first = parts.first().ok_or_else(|| anyhow!("nothing to stack"))?;
    try_map_array!(first, _a => go(parts, axis))
}

fn slice_axis(t: &Tensor, axis: usize, i: usize) -> Tensor {
    map_array!(t, a => a.index_axis(Axis(axis), i).to_owned())
}

impl If {
    fn loop_infer(body: &Graph, captures: usize, cx: &InferCx) -> Result<Vec<ValueType>> {
        let n_carried = cx.n_inputs() - 2 - captures;
        for k in 0..cx.n_inputs() {
            if k >= 2 {
                check_input(body, k, cx.ty(k)?, "Loop")?;
            }
        }
        let outs: Vec<ValueType> = body.output_types().into_iter().map(|(_, t)| t).collect();
        if outs.len() < 1 + n_carried {
            bail!("the Loop body returns {} values, it needs at least {}", outs.len(), 1 + n_carried);
        }
        let mut tys = vec![];
        for k in 0..n_carried {
            let want = cx.ty(2 + k)?;
            if &outs[1 + k] != want {
                return Err(anyhow::Error::new(crate::ir::Unsupported(format!(
                    "Loop-carried value {k} changes type from {want} to {} (static shapes need it constant)",
                    outs[1 + k]
                ))));
            }
            tys.push(want.clone());
        }
        let scans = &outs[1 + n_carried..];
        if !scans.is_empty() {
            let trip = cx.const_i64s(0, "trip count")?.ok_or_else(|| {
                anyhow::Error::new(crate::ir::Unsupported("Loop with scan outputs and no trip count (their length is not static)".into()))
            })?;
            let m = usize::try_from(*trip.first().ok_or_else(|| anyhow!("empty trip count"))?).unwrap_or(0);
            for t in scans {
                let mut shape = vec![m];
                shape.extend(&t.shape);
                tys.push(ValueType::new(t.dtype, shape));
            }
        }
        Ok(tys)
    }

    fn loop_eval(body: &Graph, captures: usize, inputs: &EvalInputs) -> Result<Vec<Tensor>> {
        let n_carried = inputs.len() - 2 - captures;
        let trip = inputs.opt(0).map(|t| t.scalar_i64()).transpose()?;
        let mut cond = inputs.opt(1).map(|t| t.scalar_i64().map(|v| v != 0)).transpose()?.unwrap_or(true);
        let mut carried: Vec<Tensor> = (0..n_carried).map(|k| inputs.req(2 + k).cloned()).collect::<Result<_>>()?;
        let outer: Vec<Tensor> = (0..captures).map(|k| inputs.req(2 + n_carried + k).cloned()).collect::<Result<_>>()?;
        let mut scans: Vec<Vec<Tensor>> = vec![];
        let mut i: i64 = 0;
        while cond && trip.is_none_or(|m| i < m) {
            if i == i64::from(i32::MAX) {
                bail!("Loop ran 2^31 iterations without stopping");
            }
            let mut args = vec![Tensor::scalar(i), Tensor::scalar(cond)];
            args.extend(carried.iter().cloned());
            args.extend(outer.iter().cloned());
            let mut out = crate::eval::run(body, &args).with_context(|| format!("Loop iteration {i}"))?;
            let rest = out.split_off(1 + n_carried);
            cond = out[0].scalar_i64()? != 0;
            carried = out.split_off(1);
            for (k, t) in rest.into_iter().enumerate() {
                if scans.len() <= k {
                    scans.push(vec![]);
                }
                scans[k].push(t);
            }
            i += 1;
        }
        let n_scans = body.outputs.len() - 1 - n_carried;
        if n_scans > 0 && trip != Some(i) {
            bail!("Loop stopped after {i} iterations, but its scan outputs were sized statically for {:?}", trip);
        }
        let mut outs = carried;
        for k in 0..n_scans {
            let parts = scans.get(k).cloned().unwrap_or_default();
            if parts.is_empty() {
                let (_, t) = &body.output_types()[1 + n_carried + k];
                let mut shape = vec![0];
                shape.extend(&t.shape);
                outs.push(Tensor::zeros(t.dtype, &shape)?);
            } else {
                outs.push(stack(&parts, 0)?);
            }
        }
        Ok(outs)
    }
}

impl Scan {
    fn n_states(&self, n_inputs: usize) -> usize {
        n_inputs - self.captures - self.num_scan_inputs
    }

    /// The scan length and each scan input's resolved axis.
    fn length(&self, tys: &[&ValueType], n_state: usize) -> Result<(usize, Vec<usize>)> {
        let mut len = None;
        let mut axes = vec![];
        for (j, a) in self.input_axes.iter().enumerate() {
            let t = tys[n_state + j];
            let ax = shape::axis(*a, t.rank())?;
            axes.push(ax);
            match len {
                None => len = Some(t.shape[ax]),
                Some(l) if l != t.shape[ax] => bail!("scan inputs have different lengths ({l} and {})", t.shape[ax]),
                _ => {}
            }
        }
        Ok((len.unwrap_or(0), axes))
    }

    fn infer(&self, cx: &InferCx) -> Result<Vec<ValueType>> {
        let tys: Vec<&ValueType> = (0..cx.n_inputs()).map(|i| cx.ty(i)).collect::<Result<_>>()?;
        let n_state = self.n_states(tys.len());
        let (len, axes) = self.length(&tys, n_state)?;
        for (k, t) in tys.iter().enumerate() {
            let given = if k >= n_state && k < n_state + self.num_scan_inputs {
                let mut s = t.shape.clone();
                s.remove(axes[k - n_state]);
                ValueType::new(t.dtype, s)
            } else {
                (*t).clone()
            };
            check_input(&self.body, k, &given, "Scan")?;
        }
        let outs: Vec<ValueType> = self.body.output_types().into_iter().map(|(_, t)| t).collect();
        let mut res = vec![];
        for k in 0..n_state {
            if &outs[k] != tys[k] {
                return Err(anyhow::Error::new(crate::ir::Unsupported(format!("Scan state {k} changes type from {} to {}", tys[k], outs[k]))));
            }
            res.push(outs[k].clone());
        }
        for (j, t) in outs[n_state..].iter().enumerate() {
            let ax = shape::insert_axis(self.output_axes[j], t.rank())?;
            let mut s = t.shape.clone();
            s.insert(ax, len);
            res.push(ValueType::new(t.dtype, s));
        }
        Ok(res)
    }

    fn eval(&self, inputs: &EvalInputs) -> Result<Vec<Tensor>> {
        let all: Vec<&Tensor> = (0..inputs.len()).map(|i| inputs.req(i)).collect::<Result<_>>()?;
        let n_state = self.n_states(all.len());
        let tys: Vec<ValueType> = all.iter().map(|t| ValueType::of(t)).collect();
        let (len, axes) = self.length(&tys.iter().collect::<Vec<_>>(), n_state)?;
        let mut states: Vec<Tensor> = all[..n_state].iter().map(|t| (*t).clone()).collect();
        let outer: Vec<Tensor> = all[n_state + self.num_scan_inputs..].iter().map(|t| (*t).clone()).collect();
        let k = self.output_axes.len();
        let mut scans: Vec<Vec<Tensor>> = vec![vec![]; k];
        for t in 0..len {
            let mut args = states.clone();
            for j in 0..self.num_scan_inputs {
                let idx = if self.input_reverse[j] { len - 1 - t } else { t };
                args.push(slice_axis(all[n_state + j], axes[j], idx));
            }
            args.extend(outer.iter().cloned());
            let mut out = crate::eval::run(&self.body, &args).with_context(|| format!("Scan step {t}"))?;
            let rest = out.split_off(n_state);
            states = out;
            for (j, r) in rest.into_iter().enumerate() {
                scans[j].push(r);
            }
        }
        let mut res = states;
        let body_outs = self.body.output_types();
        for (j, mut parts) in scans.into_iter().enumerate() {
            let t = &body_outs[n_state + j].1;
            let ax = shape::insert_axis(self.output_axes[j], t.rank())?;
            if self.output_reverse[j] {
                parts.reverse();
            }
            if parts.is_empty() {
                let mut s = t.shape.clone();
                s.insert(ax, 0);
                res.push(Tensor::zeros(t.dtype, &s)?);
            } else {
                res.push(stack(&parts, ax)?);
            }
        }
        Ok(res)
    }
}

impl OpImpl for If {
    fn name(&self) -> &'static str {
        match self {
            If::If { .. } => "If",
            If::Loop { .. } => "Loop",
            If::Scan(_) => "Scan",
        }
    }

    fn attrs(&self) -> Attrs {
        let mut a = Attrs::new();
        let g = |g: &Graph| Attr::Graph(Box::new(g.clone()));
        let caps = match self {
            If::If { then_branch, else_branch, captures } => {
                a.insert("then_branch".into(), g(then_branch));
                a.insert("else_branch".into(), g(else_branch));
                *captures
            }
            If::Loop { body, captures } => {
                a.insert("body".into(), g(body));
                *captures
            }
            If::Scan(s) => {
                a.insert("body".into(), g(&s.body));
                a.insert("num_scan_inputs".into(), Attr::Int(s.num_scan_inputs as i64));
                a.insert("scan_input_axes".into(), Attr::Ints(s.input_axes.clone()));
                a.insert("scan_output_axes".into(), Attr::Ints(s.output_axes.clone()));
                let d = |v: &[bool]| Attr::Ints(v.iter().map(|&r| r as i64).collect());
                a.insert("scan_input_directions".into(), d(&s.input_reverse));
                a.insert("scan_output_directions".into(), d(&s.output_reverse));
                s.captures
            }
        };
        if caps > 0 {
            a.insert("_captures".into(), Attr::Int(caps as i64));
        }
        a
    }

    fn infer(&self, cx: &InferCx) -> Result<Vec<ValueType>> {
        let (then_branch, else_branch) = match self {
            If::If { then_branch, else_branch, .. } => (then_branch, else_branch),
            If::Loop { body, captures } => return If::loop_infer(body, *captures, cx),
            If::Scan(s) => return s.infer(cx),
        };
        let cond = cx.ty(0)?;
        if cond.len() != 1 {
            bail!("If condition must hold one value, it is {cond}");
        }
        for (name, g) in [("then", then_branch), ("else", else_branch)] {
            for (k, (n, ty)) in g.input_types().into_iter().enumerate() {
                let given = cx.ty(k + 1)?;
                if &ty != given {
                    bail!("{name} branch input '{n}' is {ty}, the outer value is {given}");
                }
            }
        }
        let t: Vec<_> = then_branch.output_types().into_iter().map(|(_, t)| t).collect();
        let e: Vec<_> = else_branch.output_types().into_iter().map(|(_, t)| t).collect();
        if t.len() != e.len() {
            bail!("the branches produce {} and {} outputs", t.len(), e.len());
        }
        for (k, (a, b)) in t.iter().zip(&e).enumerate() {
            if a != b {
                return Err(anyhow::Error::new(crate::ir::Unsupported(format!(
                    "If whose branches produce different types for output {k} ({a} and {b}); static shapes need them equal"
                ))));
            }
        }
        Ok(t)
    }

    fn eval(&self, inputs: &EvalInputs) -> Result<Vec<Tensor>> {
        match self {
            If::If { then_branch, else_branch, .. } => {
                let cond = inputs.req(0)?.to_i64_vec()?;
                let branch = if cond.first().copied().unwrap_or(0) != 0 { then_branch } else { else_branch };
                let args: Vec<Tensor> = (1..inputs.len()).map(|i| inputs.req(i).cloned()).collect::<Result<_>>()?;
                crate::eval::run(branch, &args)
            }
            If::Loop { body, captures } => If::loop_eval(body, *captures, inputs),
            If::Scan(s) => s.eval(inputs),
        }
    }
}
