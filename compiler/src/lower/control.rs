//! Control flow: Scan (unrolled) and If (both branches computed, then selected).
//!
//! Bodies are lowered with the same machinery as the graph ([`super::lower_node`]), their
//! inputs bound to buffers of the enclosing graph.
//! - Scan: shapes are static, so the trip count is known: the body is lowered once per
//!   iteration (at most [`MAX_ITERATIONS`], to keep the artifact bounded). Iteration `t`
//!   reads the states the previous iteration produced (no copies), its scan-input slices
//!   copied into temporaries, and the captured outer values; its scan outputs are copied
//!   into their place in the stacked outputs. Constants of the body become one weights blob,
//!   shared by all iterations.
//! - If (a run-time condition; the importer inlines constant ones): both branches are
//!   computed and every output selects elementwise on the condition. That is only sound when
//!   the branch not taken cannot fail, so a branch whose code can report a run-time error
//!   (a checked data-dependent load) is refused rather than compiled.
//! - Loop: unrolled like Scan, when its trip count is a constant (at most
//!   [`MAX_ITERATIONS`]) and nothing can end it early: the initial condition is absent or
//!   a constant true, and the body's condition output is a constant true (or the incoming
//!   condition passed through). A loop that a run-time condition can stop is refused.

use std::collections::HashMap;

use anyhow::{Context, Result, anyhow, bail};

use super::Lw;
use crate::kernel_ir::{Access, Expr, Loop, Mem, Step, dense_strides};
use crate::ir::ops::control::{If, Scan};
use crate::ir::{Graph, NodeId, NodeKind, OpImpl, ValueId, shape};
use crate::tensor::DType;

/// The most iterations a Scan is unrolled to.
pub const MAX_ITERATIONS: usize = 4096;

/// The most body ops one unrolled Loop or Scan may produce, nested loops multiplied in: a
/// 6 KB model (a 300-op body, 4096 iterations) took 200 s and 5 GB to compile.
pub const MAX_UNROLLED_OPS: u64 = 1 << 17;

/// The ops lowering `g` once produces, with Loops and Scans inside counted as their
/// iterations times their bodies (If: both branches). Saturates.
fn unrolled_ops(g: &Graph) -> u64 {
    g.node_ids()
        .map(|n| match g.node(n).op() {
            Some(crate::ir::Op::If(If::Loop { body, .. })) => {
                let trip = g.node(n).inputs.first().copied().flatten().and_then(|v| g.konst(v)).and_then(|c| c.tensor().ok()).and_then(|t| t.scalar_i64().ok());
                (trip.unwrap_or(1).max(1) as u64).saturating_mul(unrolled_ops(body))
            }
            Some(crate::ir::Op::If(If::Scan(s))) => {
                let len = g.node(n).inputs.iter().flatten().map(|&v| g.ty(v).shape.iter().copied().max().unwrap_or(1)).max().unwrap_or(1);
                (len as u64).saturating_mul(unrolled_ops(&s.body))
            }
            Some(crate::ir::Op::If(If::If { then_branch, else_branch, .. })) => 1 + unrolled_ops(then_branch).saturating_add(unrolled_ops(else_branch)),
            Some(_) => 1,
            None => 0,
        })
        .fold(0u64, u64::saturating_add)
}

fn check_unrolled(lw: &Lw, what: &str, iterations: usize, body: &Graph) -> Result<()> {
    let ops = (iterations as u64).saturating_mul(unrolled_ops(body));
    if ops > MAX_UNROLLED_OPS {
        bail!("{what} unrolls to {ops} ops ({iterations} iterations of its body), more than the {backend} backend unrolls ({MAX_UNROLLED_OPS})", backend = lw.caps.backend);
    }
    Ok(())
}

pub(super) fn lower(lw: &mut Lw, id: NodeId, op: &If) -> Result<()> {
    match op {
        If::Scan(s) => scan(lw, id, s),
        If::If { then_branch, else_branch, .. } => if_else(lw, id, then_branch, else_branch),
        If::Loop { body, captures } => loop_(lw, id, body, *captures),
    }
}

/// Lowers `body` with its inputs in `inputs` and returns its outputs' buffers. `consts`
/// keeps the body's constants' blobs from one lowering of the same body to the next.
fn lower_body(lw: &mut Lw, body: &Graph, inputs: &[Mem], consts: &mut HashMap<ValueId, Mem>) -> Result<Vec<Mem>> {
    if inputs.len() != body.inputs.len() {
        bail!("the body takes {} inputs, {} given", body.inputs.len(), inputs.len());
    }
    let outer = lw.current.clone();
    let mut sub = Lw {
        g: body,
        caps: lw.caps,
        vals: consts.clone(),
        steps: std::mem::take(&mut lw.steps),
        step_nodes: std::mem::take(&mut lw.step_nodes),
        temps: std::mem::take(&mut lw.temps),
        blobs: std::mem::take(&mut lw.blobs),
        current: outer.clone(),
        runtime_features: std::mem::take(&mut lw.runtime_features),
    };
    for (&n, &m) in body.inputs.iter().zip(inputs) {
        sub.vals.insert(ValueId { node: n, slot: 0 }, m);
    }
    let mut run = || -> Result<Vec<Mem>> {
        for nid in body.topo_order()? {
            let node = body.node(nid);
            let NodeKind::Op(op) = &node.kind else { continue };
            sub.current = format!("{outer}/{}", node.name);
            super::lower_node(&mut sub, nid, op).with_context(|| format!("body node '{}' ({})", node.name, op.name()))?;
        }
        body.outputs.iter().map(|(_, v)| sub.mem(*v)).collect()
    };
    let res = run();
    for (v, m) in &sub.vals {
        if matches!(body.node(v.node).kind, NodeKind::Const(_)) {
            consts.insert(*v, *m);
        }
    }
    lw.steps = sub.steps;
    lw.step_nodes = sub.step_nodes;
    lw.temps = sub.temps;
    lw.blobs = sub.blobs;
    lw.runtime_features = sub.runtime_features;
    res
}

/// Output `slot` of `id` is the buffer `src` (a copy when it must land in a graph output).
fn bind(lw: &mut Lw, id: NodeId, slot: usize, src: Mem) {
    let v = ValueId { node: id, slot };
    match lw.vals.get(&v) {
        Some(&dst) if dst != src => {
            let bytes = lw.ty(v).bytes() as u64;
            lw.push(Step::Call(crate::kernel_ir::Call::copy(dst, src, bytes)));
        }
        Some(_) => {}
        None => {
            lw.vals.insert(v, src);
        }
    }
}

/// `shape` without `axis`, with the strides of the full dense tensor, and the stride of `axis`.
fn along(shape: &[usize], axis: usize) -> (Vec<usize>, Vec<i64>, i64) {
    let strides = dense_strides(shape);
    let mut dims = shape.to_vec();
    let mut st = strides.clone();
    dims.remove(axis);
    st.remove(axis);
    (dims, st, strides[axis])
}

fn scan(lw: &mut Lw, id: NodeId, s: &Scan) -> Result<()> {
    let node = lw.g.node(id);
    let n_in = node.inputs.len();
    let n_state = n_in - s.captures - s.num_scan_inputs;
    let mut ins = Vec::with_capacity(n_in);
    for i in 0..n_in {
        let v = lw.input(id, i)?;
        ins.push((lw.mem(v)?, lw.ty(v).clone()));
    }
    let mut len = None;
    let mut axes = vec![];
    for (j, a) in s.input_axes.iter().enumerate() {
        let t = &ins[n_state + j].1;
        let ax = shape::axis(*a, t.rank())?;
        axes.push(ax);
        len = Some(t.shape[ax]);
    }
    let len = len.ok_or_else(|| anyhow!("Scan without scan inputs"))?;
    if len > MAX_ITERATIONS {
        bail!("Scan over {len} iterations is more than the {backend} backend unrolls ({MAX_ITERATIONS})", backend = lw.caps.backend);
    }
    check_unrolled(lw, "Scan", len, &s.body)?;
    let body_tys = s.body.output_types();
    let n_scan_out = body_tys.len() - n_state;
    let mut outs = Vec::with_capacity(n_scan_out);
    for j in 0..n_scan_out {
        let t = &body_tys[n_state + j].1;
        let ax = shape::insert_axis(s.output_axes[j], t.rank())?;
        let mut full = t.shape.clone();
        full.insert(ax, len);
        outs.push((lw.out(id, n_state + j), ax, full, t.dtype));
    }
    let mut states: Vec<Mem> = ins[..n_state].iter().map(|(m, _)| *m).collect();
    let captures: Vec<Mem> = ins[n_state + s.num_scan_inputs..].iter().map(|(m, _)| *m).collect();
    let mut consts = HashMap::new();
    for t in 0..len {
        let mut args = states.clone();
        for j in 0..s.num_scan_inputs {
            let (m, ty) = &ins[n_state + j];
            let idx = if s.input_reverse[j] { len - 1 - t } else { t };
            let (dims, strides, step) = along(&ty.shape, axes[j]);
            let slice = lw.temp(&crate::ir::ValueType::new(ty.dtype, dims.clone()));
            let value = Expr::Load(Access { mem: *m, dtype: ty.dtype, offset: idx as i64 * step, strides });
            lw.push(Step::Loop(Loop { out: Access::dense(slice, ty.dtype, &dims), dims, value }));
            args.push(slice);
        }
        args.extend(&captures);
        let res = lower_body(lw, &s.body, &args, &mut consts).with_context(|| format!("Scan iteration {t}"))?;
        states = res[..n_state].to_vec();
        for (j, (out, ax, full, dtype)) in outs.iter().enumerate() {
            let pos = if s.output_reverse[j] { len - 1 - t } else { t };
            let (dims, strides, step) = along(full, *ax);
            let value = Expr::Load(Access::dense(res[n_state + j], *dtype, &dims));
            lw.push(Step::Loop(Loop { dims, out: Access { mem: *out, dtype: *dtype, offset: pos as i64 * step, strides }, value }));
        }
    }
    for (k, m) in states.into_iter().enumerate() {
        bind(lw, id, k, m);
    }
    Ok(())
}

/// Whether `v` of `g` is a constant whose every element is non-zero.
fn const_true(g: &Graph, v: ValueId) -> bool {
    g.konst(v).and_then(|c| c.tensor().ok()).and_then(|t| t.to_i64_vec().ok()).is_some_and(|x| !x.is_empty() && x.iter().all(|&b| b != 0))
}

fn loop_(lw: &mut Lw, id: NodeId, body: &Graph, captures: usize) -> Result<()> {
    let n_in = lw.g.node(id).inputs.len();
    let n_carried = n_in - 2 - captures;
    let trip = lw
        .const_ints(id, 0, "trip count")?
        .and_then(|v| v.first().copied())
        .ok_or_else(|| anyhow!("Loop without a constant trip count is not supported by the {backend} backend", backend = lw.caps.backend))?;
    let trip = usize::try_from(trip).unwrap_or(0);
    if trip > MAX_ITERATIONS {
        bail!("Loop over {trip} iterations is more than the {backend} backend unrolls ({MAX_ITERATIONS})", backend = lw.caps.backend);
    }
    check_unrolled(lw, "Loop", trip, body)?;
    if let Some(c) = lw.opt_input(id, 1)
        && !const_true(lw.g, c)
    {
        bail!("Loop with a run-time initial condition is not supported by the {backend} backend", backend = lw.caps.backend);
    }
    let (_, cond_out) = body.outputs.first().ok_or_else(|| anyhow!("the Loop body has no outputs"))?;
    let passes_cond = body.inputs.get(1).is_some_and(|&n| *cond_out == ValueId { node: n, slot: 0 });
    if !passes_cond && !const_true(body, *cond_out) {
        bail!("Loop whose body computes its condition at run time (it can stop early) is not supported by the {backend} backend", backend = lw.caps.backend);
    }
    let mut carried = Vec::with_capacity(n_carried);
    for k in 0..n_carried {
        let v = lw.input(id, 2 + k)?;
        carried.push(lw.mem(v)?);
    }
    let mut outer = Vec::with_capacity(captures);
    for k in 0..captures {
        let v = lw.input(id, 2 + n_carried + k)?;
        outer.push(lw.mem(v)?);
    }
    let body_tys = body.output_types();
    let scans: Vec<(Mem, crate::ir::ValueType)> =
        (1 + n_carried..body_tys.len()).map(|k| (lw.out(id, k - 1), body_tys[k].1.clone())).collect();
    let cond = lw.blob(vec![1u8]);
    let mut consts = HashMap::new();
    for i in 0..trip {
        let iter = lw.blob((i as i64).to_le_bytes().to_vec());
        let mut args = vec![iter, cond];
        args.extend(&carried);
        args.extend(&outer);
        let res = lower_body(lw, body, &args, &mut consts).with_context(|| format!("Loop iteration {i}"))?;
        carried = res[1..1 + n_carried].to_vec();
        for (j, (out, ty)) in scans.iter().enumerate() {
            let n = ty.len();
            let value = Expr::Load(Access::dense(res[1 + n_carried + j], ty.dtype, &[n]));
            lw.push(Step::Loop(Loop { dims: vec![n], out: Access { mem: *out, dtype: ty.dtype, offset: (i * n) as i64, strides: vec![1] }, value }));
        }
    }
    for (k, m) in carried.into_iter().enumerate() {
        bind(lw, id, k, m);
    }
    Ok(())
}

fn if_else(lw: &mut Lw, id: NodeId, then_branch: &Graph, else_branch: &Graph) -> Result<()> {
    let cond = lw.input(id, 0)?;
    let ct = lw.ty(cond).clone();
    if ct.dtype != DType::Bool || ct.len() != 1 {
        bail!("If with a {ct} condition is not supported by the {backend} backend (bool with one element is)", backend = lw.caps.backend);
    }
    let cm = lw.mem(cond)?;
    let n = lw.g.node(id).inputs.len();
    let mut args = Vec::with_capacity(n - 1);
    for i in 1..n {
        let v = lw.input(id, i)?;
        args.push(lw.mem(v)?);
    }
    let first = lw.steps.len();
    let then_outs = lower_body(lw, then_branch, &args, &mut HashMap::new()).context("then branch")?;
    let else_outs = lower_body(lw, else_branch, &args, &mut HashMap::new()).context("else branch")?;
    // Both branches run: neither may be able to fail.
    let mut fallible = false;
    for step in &lw.steps[first..] {
        let mut check = |e: &Expr| e.visit(&mut |x| fallible |= matches!(x, Expr::LoadAt { .. }));
        match step {
            Step::Loop(l) => check(&l.value),
            Step::Reduce(r) => {
                check(&r.value);
                check(&r.finish);
            }
            Step::Call(_) => {}
        }
    }
    if fallible {
        bail!("If whose branches read data-dependent indices (which can fail) needs conditional execution, which the {backend} backend does not have yet", backend = lw.caps.backend);
    }
    for (k, (t, e)) in then_outs.into_iter().zip(else_outs).enumerate() {
        let ty = lw.g.node(id).outputs[k].ty.clone();
        let c = Expr::Load(Access { mem: cm, dtype: DType::Bool, offset: 0, strides: vec![0; ty.rank()] });
        let value = Expr::select(c, Expr::Load(Access::dense(t, ty.dtype, &ty.shape)), Expr::Load(Access::dense(e, ty.dtype, &ty.shape)));
        let out = lw.out(id, k);
        lw.push(Step::Loop(Loop { dims: ty.shape.clone(), out: Access::dense(out, ty.dtype, &ty.shape), value }));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::lower::test_util::{Tolerance, same_as_reference};
    use crate::ir::parse::parse_graph;
    use crate::tensor::Tensor;

    /// The bodies here add, multiply and negate f32 values of order 1, in the same order
    /// as the reference (which computes in f64 and rounds each op to f32): 1e-6 relative.
    const TOL: Tolerance = Tolerance::Rel(1e-6);

    fn t(shape: &[usize], v: Vec<f32>) -> Tensor {
        Tensor::from_vec(shape, v).unwrap()
    }

    #[test]
    fn scan_with_reversed_axes_states_and_captures_matches_the_reference() {
        let text = "graph(%init: f32[2], %cnt: f32[], %x: f32[2,3], %w: f32[2]) {
  %s, %c, %ys, %zs = Scan{num_scan_inputs=1, scan_input_axes=[1], scan_input_directions=[1], scan_output_axes=[1, 0], scan_output_directions=[0, 1], _captures=1, body=graph(%acc: f32[2], %k: f32[], %col: f32[2], %win: f32[2]) {
    %one = const f32[]{1.0}
    %m = Mul(%col, %win) : f32[2]
    %n = Add(%acc, %m) : f32[2]
    %k2 = Add(%k, %one) : f32[]
    %neg = Neg(%n) : f32[2]
    return %n, %k2, %m, %neg
  }}(%init, %cnt, %x, %w) : f32[2], f32[], f32[2,3], f32[3,2]
  return %s, %c, %ys, %zs
}";
        let ins = [t(&[2], vec![0.5, -1.0]), t(&[], vec![0.0]), t(&[2, 3], vec![1.0, 2.0, 3.0, -4.0, 5.0, -6.5]), t(&[2], vec![2.0, -0.5])];
        same_as_reference(text, &ins, TOL);
    }

    #[test]
    fn a_state_passed_through_unchanged_and_an_identity_output_work() {
        let text = "graph(%a: f32[2], %b: f32[2], %x: f32[4,2]) {
  %sa, %sb, %ys = Scan{num_scan_inputs=1, body=graph(%p: f32[2], %q: f32[2], %r: f32[2]) {
    %n = Add(%q, %r) : f32[2]
    %i = Identity(%n) : f32[2]
    return %p, %n, %i
  }}(%a, %b, %x) : f32[2], f32[2], f32[4,2]
  return %sa, %sb, %ys
}";
        let ins = [t(&[2], vec![3.0, 4.0]), t(&[2], vec![0.25, 0.5]), t(&[4, 2], (0..8).map(|v| v as f32 * 0.5 - 1.0).collect())];
        same_as_reference(text, &ins, TOL);
    }

    #[test]
    fn loop_with_a_constant_trip_count_matches_the_reference() {
        let text = "graph(%x: f32[2], %y: f32[]) {
  %m = const i64[]{3}
  %t = const bool[]{true}
  %a, %ys = Loop{_captures=1, body=graph(%i: i64[], %c: bool[], %acc: f32[2], %w: f32[]) {
    %fi = Cast{to=1}(%i) : f32[]
    %s = Mul(%fi, %w) : f32[]
    %n = Add(%acc, %s) : f32[2]
    %d = Neg(%n) : f32[2]
    return %c, %n, %d
  }}(%m, %t, %x, %y) : f32[2], f32[3,2]
  return %a, %ys
}";
        same_as_reference(text, &[t(&[2], vec![1.0, -2.0]), t(&[], vec![0.5])], TOL);
        // A condition computed at run time can end the loop early: refused.
        let stops = text.replace("return %c, %n, %d", "%z = const f32[]{0.0}\n    %c2 = Less(%w, %z) : bool[]\n    return %c2, %n, %d");
        let g = parse_graph(&stops).expect("parses");
        let e = crate::driver::compile_and_run(&g, &[t(&[2], vec![1.0, -2.0]), t(&[], vec![0.5])], &Default::default());
        assert!(format!("{:#}", e.expect_err("refused")).contains("can stop early"));
    }

    #[test]
    fn if_selects_the_branch_at_run_time() {
        let text = "graph(%c: bool[], %x: f32[3]) {
  %y, %z = If{_captures=1, then_branch=graph(%a: f32[3]) {
    %r = Neg(%a) : f32[3]
    %k = const f32[]{2.0}
    return %r, %k
  }, else_branch=graph(%a: f32[3]) {
    %r = Exp(%a) : f32[3]
    %k = const f32[]{-3.0}
    return %r, %k
  }}(%c, %x) : f32[3], f32[]
  return %y, %z
}";
        for c in [true, false] {
            same_as_reference(text, &[Tensor::from_vec(&[], vec![c]).unwrap(), t(&[3], vec![0.5, -1.0, 2.0])], TOL);
        }
    }

    #[test]
    fn if_with_a_branch_that_can_fail_is_refused() {
        let text = "graph(%c: bool[], %x: f32[3], %i: i64[2]) {
  %y = If{_captures=2, then_branch=graph(%a: f32[3], %j: i64[2]) {
    %r = Gather{axis=0}(%a, %j) : f32[2]
    return %r
  }, else_branch=graph(%a: f32[3], %j: i64[2]) {
    %k = const f32[2]{1.0, 2.0}
    return %k
  }}(%c, %x, %i) : f32[2]
  return %y
}";
        let g = parse_graph(text).expect("parses");
        let e = crate::driver::compile_and_run(&g, &[Tensor::from_vec(&[], vec![false]).unwrap(), t(&[3], vec![1.0; 3]), Tensor::from_vec(&[2], vec![7i64, 0]).unwrap()], &Default::default());
        let msg = format!("{:#}", e.expect_err("refused"));
        assert!(msg.contains("conditional execution"), "{msg}");
    }
}
