//! LSTM, GRU and RNN (f32), unrolled over the statically known sequence length.
//!
//! Per direction: one batched sgemm computes `X·Wᵀ` for every time step into a
//! `[seq, batch, G·H]` temporary. Then, for each time step (in order, or backwards for the
//! reverse direction), an sgemm computes `h·Rᵀ` into `[batch, G·H]` and elementwise loops
//! over `[batch, H]` apply the gates, with the biases, peepholes, `clip` and the activation
//! functions of the node, updating the state buffers `h` (and `c`) in place (each point is
//! read before it is written, by the same iteration). A last loop writes the step's `Y`.
//!
//! `sequence_lens` (read at run time): entry `b` is updated only at times `t < len[b]`;
//! running the reverse direction over `t = seq-1 .. 0` with that mask visits exactly the
//! steps `len[b]-1 .. 0` the spec asks for. `Y` is zero at masked steps. A length outside
//! `[0, seq]` fails the run with an index error (the reference's error), through a checked
//! load from a `seq + 1` element table.
//!
//! The code grows with `seq · directions` (3 to 5 steps per time step), so sequences above
//! [`MAX_STEPS`] are refused rather than compiled into a huge artifact.
//! The reference computes in f64; here everything is f32 (sgemm), a few ulp of f32 per
//! time step apart.

use anyhow::{Result, bail};
use neoc_runtime::abi::MathOp;

use super::Lw;
use crate::kernel_ir::build::{bin, int, load};
use crate::kernel_ir::{Access, BinOp, Expr, Lit, Loop, Mem, Step};
use super::calls::{self, Matrix};
use crate::ir::ops::rnn::{Act, ActKind, Cell, Direction, Rnn};
use crate::ir::{NodeId, OpImpl, ValueId, ValueType};
use crate::tensor::DType;

/// The longest sequence (times directions) compiled.
pub const MAX_STEPS: usize = 4096;

const F: DType = DType::F32;

fn lit(v: f64) -> Expr {
    Expr::Lit(Lit::F32(v as f32))
}

/// `act(clip(x))`.
fn activate(act: Act, clip: Option<f32>, x: Expr) -> Expr {
    let x = match clip {
        Some(c) => bin(BinOp::Min, bin(BinOp::Max, x, lit(-(c as f64))), lit(c as f64)),
        None => x,
    };
    let (a, b) = (act.alpha as f64, act.beta as f64);
    let neg = |x: &Expr| bin(BinOp::Lt, x.clone(), lit(0.0));
    match act.kind {
        ActKind::Relu => bin(BinOp::Max, x, lit(0.0)),
        ActKind::Tanh => Expr::math(MathOp::Tanh, x),
        ActKind::Sigmoid => Expr::math(MathOp::Sigmoid, x),
        ActKind::Affine => bin(BinOp::Add, bin(BinOp::Mul, lit(a), x), lit(b)),
        ActKind::LeakyRelu => Expr::select(neg(&x), bin(BinOp::Mul, lit(a), x.clone()), x),
        ActKind::ThresholdedRelu => Expr::select(bin(BinOp::Gt, x.clone(), lit(a)), x, lit(0.0)),
        ActKind::ScaledTanh => bin(BinOp::Mul, lit(a), Expr::math(MathOp::Tanh, bin(BinOp::Mul, lit(b), x))),
        ActKind::HardSigmoid => {
            let lin = bin(BinOp::Add, bin(BinOp::Mul, lit(a), x), lit(b));
            bin(BinOp::Max, lit(0.0), bin(BinOp::Min, lit(1.0), lin))
        }
        ActKind::Elu => Expr::select(neg(&x), bin(BinOp::Mul, lit(a), Expr::math(MathOp::Expm1, x.clone())), x),
        ActKind::Softsign => bin(BinOp::Div, x.clone(), bin(BinOp::Add, lit(1.0), Expr::un(crate::kernel_ir::UnOp::Abs, x))),
        ActKind::Softplus => Expr::math(MathOp::Softplus, x),
    }
}

/// Buffers and sizes of one direction, for the expressions over loop dims `[batch, H]`.
struct Dir {
    batch: usize,
    hidden: usize,
    gates: usize,
    /// `[seq, batch, G·H]`: `X·Wᵀ`.
    xw: Mem,
    /// `[batch, G·H]`: `h·Rᵀ` of the current step.
    hr: Mem,
    /// B `[dirs, 2·G·H]` and this direction's row offset.
    bias: Option<(Mem, i64)>,
    /// P `[dirs, 3·H]` and this direction's row offset.
    peep: Option<(Mem, i64)>,
    h: Mem,
    c: Option<Mem>,
    /// sequence_lens `[batch]` and its dtype.
    lens: Option<(Mem, DType)>,
}

impl Dir {
    fn gh(&self) -> i64 {
        (self.gates * self.hidden) as i64
    }
    /// `x·W[gate]ᵀ + Wb[gate]` at time `t`.
    fn wx(&self, gate: usize, t: usize) -> Expr {
        let gh = self.gh();
        let e = load(self.xw, F, t as i64 * self.batch as i64 * gh + (gate * self.hidden) as i64, vec![gh, 1]);
        match self.bias {
            Some((b, off)) => bin(BinOp::Add, e, load(b, F, off + (gate * self.hidden) as i64, vec![0, 1])),
            None => e,
        }
    }
    /// `h·R[gate]ᵀ + Rb[gate]`, from `hr` (or another `[batch, H]` product at `mem`).
    fn rh(&self, gate: usize, from: Option<Mem>) -> Expr {
        let e = match from {
            Some(m) => load(m, F, 0, vec![self.hidden as i64, 1]),
            None => load(self.hr, F, (gate * self.hidden) as i64, vec![self.gh(), 1]),
        };
        match self.bias {
            Some((b, off)) => bin(BinOp::Add, e, load(b, F, off + ((self.gates + gate) * self.hidden) as i64, vec![0, 1])),
            None => e,
        }
    }
    fn pre(&self, gate: usize, t: usize) -> Expr {
        bin(BinOp::Add, self.wx(gate, t), self.rh(gate, None))
    }
    fn state(&self, m: Mem) -> Expr {
        load(m, F, 0, vec![self.hidden as i64, 1])
    }
    fn state_access(&self, m: Mem) -> Access {
        Access::dense(m, F, &[self.batch, self.hidden])
    }
    /// Peephole `P[k] ⊙ c` (k: 0 = i, 1 = o, 2 = f), if P is given.
    fn peephole(&self, k: usize, c: Mem, e: Expr) -> Expr {
        match self.peep {
            Some((p, off)) => {
                let pv = load(p, F, off + (k * self.hidden) as i64, vec![0, 1]);
                bin(BinOp::Add, e, bin(BinOp::Mul, pv, self.state(c)))
            }
            None => e,
        }
    }
    /// Whether batch entry `b` runs at time `t` (`None`: always).
    fn active(&self, t: usize) -> Option<Expr> {
        let (m, dt) = self.lens?;
        let len = Expr::cast(DType::I64, Expr::Load(Access { mem: m, dtype: dt, offset: 0, strides: vec![1, 0] }));
        Some(bin(BinOp::Lt, int(t as i64), len))
    }
    fn masked(&self, t: usize, new: Expr, old: Expr) -> Expr {
        match self.active(t) {
            Some(a) => Expr::select(a, new, old),
            None => new,
        }
    }
    fn dims(&self) -> Vec<usize> {
        vec![self.batch, self.hidden]
    }
}

pub(super) fn lower(lw: &mut Lw, id: NodeId, r: &Rnn) -> Result<()> {
    let name = r.name();
    let x = lw.input(id, 0)?;
    let xt = lw.ty(x).clone();
    if xt.dtype != F {
        bail!("{name} on {} is not supported by the {backend} backend yet (f32 is)", xt.dtype.name(), backend = lw.caps.backend);
    }
    let wt = lw.ty(lw.input(id, 1)?).clone();
    let rt = lw.ty(lw.input(id, 2)?).clone();
    let [a0, a1, input] = xt.shape[..] else { bail!("{name}: X must have rank 3") };
    let (seq, batch) = if r.layout == 0 { (a0, a1) } else { (a1, a0) };
    let dirs = wt.shape[0];
    let hidden = rt.shape[2];
    let gates = wt.shape[1] / hidden.max(1);
    if seq * dirs > MAX_STEPS {
        bail!("{name} over {seq} time steps and {dirs} direction(s) is more than the {backend} backend unrolls ({MAX_STEPS})", backend = lw.caps.backend);
    }
    let is_lstm = matches!(r.cell, Cell::Lstm { .. });
    let n_acts = r.activations.len() / dirs;
    let (gh, hh) = (gates * hidden, hidden);
    let xm = lw.mem(x)?;
    // Constant W and R (trained weights) are packed for the GEMM at compile time, where the
    // backend packs weights; they become weights of their own only where a product reads
    // them in place.
    let (wv, rv) = (lw.input(id, 1)?, lw.input(id, 2)?);
    let constant = |lw: &Lw, v: ValueId| -> Result<Option<Vec<f32>>> {
        match lw.konst(v).filter(|_| lw.caps.packs_gemm_weights()) {
            Some(t) => Ok(Some(t.as_array::<f32>()?.iter().copied().collect())),
            None => Ok(None),
        }
    };
    let (w_const, r_const) = (constant(lw, wv)?, constant(lw, rv)?);
    let bias = match lw.opt_input(id, 3) {
        Some(v) => Some(lw.mem(v)?),
        None => None,
    };
    let peep = match (is_lstm, lw.opt_input(id, 7)) {
        (true, Some(v)) => Some(lw.mem(v)?),
        _ => None,
    };
    let lens = match lw.opt_input(id, 4) {
        Some(v) => {
            let dt = lw.ty(v).dtype;
            let m = lw.mem(v)?;
            check_lens(lw, m, dt, seq, batch);
            Some((m, dt))
        }
        None => None,
    };
    let init = |lw: &mut Lw, i: usize| -> Result<Option<Mem>> {
        match lw.opt_input(id, i) {
            Some(v) if i != 6 || is_lstm => Ok(Some(lw.mem(v)?)),
            _ => Ok(None),
        }
    };
    let (h0, c0) = (init(lw, 5)?, init(lw, 6)?);
    let n_out = lw.g.node(id).outputs.len();
    let outs: Vec<Mem> = (0..n_out).map(|s| lw.out(id, s)).collect();
    // Where direction `dir`'s state `[batch, H]` sits in a `[dirs, batch, H]` (layout 0) or
    // `[batch, dirs, H]` (layout 1) tensor.
    let state_view = |dir: usize| -> (i64, Vec<i64>) {
        if r.layout == 0 { ((dir * batch * hh) as i64, vec![hh as i64, 1]) } else { ((dir * hh) as i64, vec![(dirs * hh) as i64, 1]) }
    };
    for dir in 0..dirs {
        let reverse = r.direction == Direction::Reverse || dir == 1;
        let acts = &r.activations[dir * n_acts..(dir + 1) * n_acts];
        // X·W[dir]ᵀ for all steps, as [seq, batch, G·H].
        let xw = lw.temp(&ValueType::new(F, vec![seq, batch, gh]));
        let (x_seq, x_row) = if r.layout == 0 { ((batch * input) as i64, input as i64) } else { (input as i64, (seq * input) as i64) };
        let (xa, xc) = (Matrix { mem: xm, offset: 0, batch_strides: vec![x_seq], rs: x_row, cs: 1 }, Matrix { mem: xw, offset: 0, batch_strides: vec![(batch * gh) as i64], rs: gh as i64, cs: 1 });
        let w_packed = match &w_const {
            Some(w) => calls::pack_constant_b(lw, input, gh, &w[dir * gh * input..(dir + 1) * gh * input], [1, input as isize])?,
            None => None,
        };
        match w_packed {
            Some(wp) => calls::sgemm_packed(lw, vec![seq], batch, &xa, wp, &xc)?,
            None => {
                let wm = lw.mem(wv)?;
                calls::sgemm(lw, vec![seq], [batch, gh, input], 1.0, 0.0, &xa, &Matrix { mem: wm, offset: (dir * gh * input) as i64, batch_strides: vec![0], rs: 1, cs: input as i64 }, &xc)?
            }
        }
        // R[dir]ᵀ packed once for every step's h·R[dir]ᵀ.
        let r_packed = match &r_const {
            Some(rv) => calls::pack_constant_b(lw, hh, gh, &rv[dir * gh * hh..(dir + 1) * gh * hh], [1, hh as isize])?,
            None => None,
        };
        let hr = lw.temp(&ValueType::new(F, vec![batch, gh]));
        let state_ty = ValueType::new(F, vec![batch, hh]);
        let h = lw.temp(&state_ty);
        let c = is_lstm.then(|| lw.temp(&state_ty));
        let d = Dir {
            batch,
            hidden: hh,
            gates,
            xw,
            hr,
            bias: bias.map(|b| (b, (dir * 2 * gh) as i64)),
            peep: peep.map(|p| (p, (dir * 3 * hh) as i64)),
            h,
            c,
            lens,
        };
        // Initial states.
        let (off, strides) = state_view(dir);
        for (dst, src) in [(Some(h), h0), (c, c0)] {
            let Some(dst) = dst else { continue };
            let value = match src {
                Some(m) => load(m, F, off, strides.clone()),
                None => lit(0.0),
            };
            lw.push(Step::Loop(Loop { dims: d.dims(), out: d.state_access(dst), value }));
        }
        for k in 0..seq {
            let t = if reverse { seq - 1 - k } else { k };
            step(lw, r, acts, &d, t, (rv, r_packed), dir)?;
            // Y[t, dir] (layout 0: [seq, dirs, batch, H]; 1: [batch, seq, dirs, H]).
            if let Some(&y) = outs.first() {
                let (off, strides) = if r.layout == 0 {
                    (((t * dirs + dir) * batch * hh) as i64, vec![hh as i64, 1])
                } else {
                    (((t * dirs + dir) * hh) as i64, vec![(seq * dirs * hh) as i64, 1])
                };
                let value = d.masked(t, d.state(h), lit(0.0));
                lw.push(Step::Loop(Loop { dims: d.dims(), out: Access { mem: y, dtype: F, offset: off, strides }, value }));
            }
        }
        // Y_h, Y_c.
        let (off, strides) = state_view(dir);
        for (slot, src) in [(1, Some(h)), (2, c)] {
            let (Some(&dst), Some(src)) = (outs.get(slot), src) else { continue };
            let out = Access { mem: dst, dtype: F, offset: off, strides: strides.clone() };
            lw.push(Step::Loop(Loop { dims: d.dims(), out, value: d.state(src) }));
        }
    }
    Ok(())
}

/// A step that fails with an index error when a sequence length is outside `[0, seq]`.
fn check_lens(lw: &mut Lw, lens: Mem, dt: DType, seq: usize, batch: usize) {
    let table = lw.blob(vec![0u8; seq + 1]);
    let index = Expr::cast(DType::I64, Expr::Load(Access { mem: lens, dtype: dt, offset: 0, strides: vec![1] }));
    let value = Expr::LoadAt { mem: table, dtype: DType::U8, len: seq as i64 + 1, index: Box::new(index) };
    let sink = lw.temp_bytes(batch as u64);
    lw.push(Step::Loop(Loop { dims: vec![batch], out: Access { mem: sink, dtype: DType::U8, offset: 0, strides: vec![1] }, value }));
}

/// One time step `t` of one direction: updates `d.h` (and `d.c`).
/// `(rv, r_packed)`: R, and R[dir]ᵀ packed when R is a constant.
fn step(lw: &mut Lw, r: &Rnn, acts: &[Act], d: &Dir, t: usize, (rv, r_packed): (ValueId, Option<calls::PackedB>), dir: usize) -> Result<()> {
    let (hh, gh) = (d.hidden, d.gh());
    let h_matrix = Matrix { mem: d.h, offset: 0, batch_strides: vec![], rs: hh as i64, cs: 1 };
    let r_dir = (dir as i64) * gh * hh as i64;
    // h·R[dir]ᵀ: R[dir] is [G·H, H].
    let hr = Matrix { mem: d.hr, offset: 0, batch_strides: vec![], rs: gh, cs: 1 };
    match r_packed {
        Some(rp) => calls::sgemm_packed(lw, vec![], d.batch, &h_matrix, rp, &hr)?,
        None => {
            let rm = lw.mem(rv)?;
            calls::sgemm(lw, vec![], [d.batch, gh as usize, hh], 1.0, 0.0, &h_matrix, &Matrix { mem: rm, offset: r_dir, batch_strides: vec![], rs: 1, cs: hh as i64 }, &hr)?
        }
    }
    let clip = r.clip;
    let dims = d.dims();
    match r.cell {
        Cell::Rnn => {
            let new = activate(acts[0], clip, d.pre(0, t));
            let value = d.masked(t, new, d.state(d.h));
            lw.push(Step::Loop(Loop { dims, out: d.state_access(d.h), value }));
        }
        Cell::Gru { linear_before_reset } => {
            let (f, g) = (acts[0], acts[1]);
            let z = activate(f, clip, d.pre(0, t));
            let rgate = activate(f, clip, d.pre(1, t));
            let pre = if linear_before_reset {
                bin(BinOp::Add, d.wx(2, t), bin(BinOp::Mul, rgate, d.rh(2, None)))
            } else {
                // (r ⊙ h)·R[h]ᵀ.
                let ty = ValueType::new(F, dims.clone());
                let rh = lw.temp(&ty);
                let value = bin(BinOp::Mul, rgate, d.state(d.h));
                lw.push(Step::Loop(Loop { dims: dims.clone(), out: d.state_access(rh), value }));
                let prod = lw.temp(&ty);
                let rm = lw.mem(rv)?;
                calls::sgemm(lw, vec![], [d.batch, hh, hh], 1.0, 0.0, &Matrix { mem: rh, offset: 0, batch_strides: vec![], rs: hh as i64, cs: 1 }, &Matrix { mem: rm, offset: r_dir + 2 * (hh * hh) as i64, batch_strides: vec![], rs: 1, cs: hh as i64 }, &Matrix { mem: prod, offset: 0, batch_strides: vec![], rs: hh as i64, cs: 1 })?;
                bin(BinOp::Add, d.wx(2, t), d.rh(2, Some(prod)))
            };
            let cand = activate(g, clip, pre);
            let hold = d.state(d.h);
            // (1 - z) ⊙ h̃ + z ⊙ h.
            let new = bin(BinOp::Add, bin(BinOp::Mul, bin(BinOp::Sub, lit(1.0), z.clone()), cand), bin(BinOp::Mul, z, hold.clone()));
            let value = d.masked(t, new, hold);
            lw.push(Step::Loop(Loop { dims, out: d.state_access(d.h), value }));
        }
        Cell::Lstm { input_forget } => {
            let c = d.c.ok_or_else(|| anyhow::anyhow!("LSTM without a cell state"))?;
            let (f, g, hact) = (acts[0], acts[1], acts[2]);
            // Gates i, o, f, c; peepholes i, o, f.
            let i = activate(f, clip, d.peephole(0, c, d.pre(0, t)));
            let fg = if input_forget { bin(BinOp::Sub, lit(1.0), i.clone()) } else { activate(f, clip, d.peephole(2, c, d.pre(2, t))) };
            let cand = activate(g, clip, d.pre(3, t));
            let cold = d.state(c);
            let cnew = bin(BinOp::Add, bin(BinOp::Mul, fg, cold.clone()), bin(BinOp::Mul, i, cand));
            let value = d.masked(t, cnew, cold);
            lw.push(Step::Loop(Loop { dims: dims.clone(), out: d.state_access(c), value }));
            // c now holds the new cell state wherever the entry is active.
            let o = activate(f, clip, d.peephole(1, c, d.pre(1, t)));
            let new = bin(BinOp::Mul, o, activate(hact, None, d.state(c)));
            let value = d.masked(t, new, d.state(d.h));
            lw.push(Step::Loop(Loop { dims, out: d.state_access(d.h), value }));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::lower::test_util::{Tolerance, same_as_reference, ty};
    use crate::ir::parse::parse_graph;
    use crate::tensor::{DType, Tensor};

    /// Compiled (f32, sgemm) against the reference (f64, rounded once). Values stay in
    /// [-3, 3] and each time step adds a few f32 roundings (about 6e-8 relative each) to
    /// the state, so over these few steps 2e-5 of max(|want|, 1) is a safe, tight bound.
    const TOL: Tolerance = Tolerance::Rel(2e-5);

    /// Deterministic values in [-scale, scale].
    fn data(shape: &[usize], seed: usize, scale: f32) -> Tensor {
        let n: usize = shape.iter().product();
        let v = (0..n).map(|i| (((i * 37 + seed * 11) % 23) as f32 / 11.0 - 1.0) * scale).collect();
        Tensor::from_vec(shape, v).unwrap()
    }

    /// One node with every input given at run time. `attrs` without braces.
    fn case(op: &str, attrs: &str, gates: usize, layout: usize, dirs: usize, lens: Option<Vec<i32>>, all_inputs: bool) {
        let (seq, batch, input, hidden) = (4, 3, 2, 5);
        let lstm = op == "LSTM";
        let xs = if layout == 0 { [seq, batch, input] } else { [batch, seq, input] };
        let ss = if layout == 0 { [dirs, batch, hidden] } else { [batch, dirs, hidden] };
        let ys = if layout == 0 { vec![seq, dirs, batch, hidden] } else { vec![batch, seq, dirs, hidden] };
        let mut ins = vec![("x", ty(DType::F32, &xs)), ("w", ty(DType::F32, &[dirs, gates * hidden, input])), ("r", ty(DType::F32, &[dirs, gates * hidden, hidden]))];
        let mut vals = vec![data(&xs, 1, 1.5), data(&[dirs, gates * hidden, input], 2, 0.8), data(&[dirs, gates * hidden, hidden], 3, 0.6)];
        let mut args = vec!["%x", "%w", "%r"];
        if all_inputs {
            ins.push(("b", ty(DType::F32, &[dirs, 2 * gates * hidden])));
            vals.push(data(&[dirs, 2 * gates * hidden], 4, 0.5));
            args.push("%b");
        } else {
            args.push("_");
        }
        match &lens {
            Some(l) => {
                ins.push(("lens", format!("i32[{batch}]")));
                vals.push(Tensor::from_vec(&[batch], l.clone()).unwrap());
                args.push("%lens");
            }
            None => args.push("_"),
        }
        if all_inputs {
            ins.push(("h0", ty(DType::F32, &ss)));
            vals.push(data(&ss, 5, 0.7));
            args.push("%h0");
            if lstm {
                ins.push(("c0", ty(DType::F32, &ss)));
                vals.push(data(&ss, 6, 0.9));
                ins.push(("p", ty(DType::F32, &[dirs, 3 * hidden])));
                vals.push(data(&[dirs, 3 * hidden], 7, 0.4));
                args.extend(["%c0", "%p"]);
            }
        }
        let params = ins.iter().map(|(n, t)| format!("%{n}: {t}")).collect::<Vec<_>>().join(", ");
        let (outs, tys) = if lstm {
            ("%y, %yh, %yc", format!("{}, {}, {}", ty(DType::F32, &ys), ty(DType::F32, &ss), ty(DType::F32, &ss)))
        } else {
            ("%y, %yh", format!("{}, {}", ty(DType::F32, &ys), ty(DType::F32, &ss)))
        };
        let text = format!(
            "graph({params}) {{\n  {outs} = {op}{{hidden_size={hidden}, layout={layout}{attrs}}}({}) : {tys}\n  return {outs}\n}}",
            args.join(", ")
        );
        same_as_reference(&text, &vals, TOL);
    }

    #[test]
    fn defaults_match_the_reference() {
        for (op, gates) in [("RNN", 1), ("GRU", 3), ("LSTM", 4)] {
            case(op, "", gates, 0, 1, None, false);
            case(op, ", direction=\"reverse\"", gates, 1, 1, None, false);
            case(op, ", direction=\"bidirectional\"", gates, 0, 2, None, true);
        }
    }

    #[test]
    fn sequence_lens_and_every_input_match_the_reference() {
        for (op, gates) in [("RNN", 1), ("GRU", 3), ("LSTM", 4)] {
            for layout in [0, 1] {
                case(op, ", direction=\"bidirectional\"", gates, layout, 2, Some(vec![4, 0, 2]), true);
                case(op, ", direction=\"reverse\"", gates, layout, 1, Some(vec![1, 3, 4]), true);
            }
        }
    }

    #[test]
    fn attributes_match_the_reference() {
        case("GRU", ", direction=\"bidirectional\", linear_before_reset=1, clip=0.7f", 3, 0, 2, None, true);
        case("LSTM", ", input_forget=1, clip=1.1f", 4, 1, 1, Some(vec![2, 4, 3]), true);
        let acts = ", direction=\"bidirectional\", activations=s[\"HardSigmoid\", \"ScaledTanh\", \"Elu\", \"LeakyRelu\", \"Softsign\", \"Softplus\"], activation_alpha=f[0.3, 0.8, 1.2, 0.05], activation_beta=f[0.4, 1.5]";
        case("LSTM", acts, 4, 0, 2, None, true);
        let acts = ", activations=s[\"Affine\", \"ThresholdedRelu\"], activation_alpha=f[0.5, 0.2], activation_beta=f[0.1]";
        case("GRU", acts, 3, 0, 1, None, true);
        case("RNN", ", activations=s[\"Relu\"]", 1, 0, 1, None, true);
    }

    /// Constant W and R (trained weights) are packed at compile time and multiplied by
    /// `sgemm_packed_b` (one call per direction for X·Wᵀ, one per step for h·Rᵀ, with one
    /// or two batch rows: the kernel's few-row path); GRU's third-gate product still reads
    /// R in place. Layouts 0 and 1 (time steps whose rows fold into one product, and not).
    #[test]
    fn constant_weights_are_packed_and_match_the_reference() {
        let konst = |t: &Tensor| {
            let v: Vec<String> = t.to_f64_vec().unwrap().iter().map(|x| format!("{x:?}")).collect();
            format!("const {}{{{}}}", ty(DType::F32, t.shape()), v.join(","))
        };
        for (op, gates, extra) in [("LSTM", 4, ""), ("GRU", 3, ""), ("GRU", 3, ", linear_before_reset=1")] {
            for (layout, batch) in [(0, 1), (1, 2)] {
                let (seq, input, hidden, dirs) = (5, 3, 7, 2);
                let xs = if layout == 0 { [seq, batch, input] } else { [batch, seq, input] };
                let ys = if layout == 0 { [seq, dirs, batch, hidden] } else { [batch, seq, dirs, hidden] };
                let (w, r) = (data(&[dirs, gates * hidden, input], 2, 0.8), data(&[dirs, gates * hidden, hidden], 3, 0.6));
                let text = format!(
                    "graph(%x: {}) {{\n  %w = {}\n  %r = {}\n  %y = {op}{{hidden_size={hidden}, layout={layout}, direction=\"bidirectional\"{extra}}}(%x, %w, %r) : {}\n  return %y\n}}",
                    ty(DType::F32, &xs),
                    konst(&w),
                    konst(&r),
                    ty(DType::F32, &ys)
                );
                let g = parse_graph(&text).expect("parses");
                let lowered = crate::lower::lower(&g, &crate::lower::Caps::CPU).expect("lowers");
                let packed = lowered.steps.iter().filter(|s| matches!(s, crate::kernel_ir::Step::Call(c) if c.kernel == neoc_runtime::abi::Kernel::SgemmPackedB)).count();
                assert_eq!(packed, dirs * (1 + seq), "{op}{extra} layout {layout}: every product with W or R reads packed weights");
                same_as_reference(&text, &[data(&xs, 1, 1.5)], TOL);
            }
        }
    }

    #[test]
    fn a_sequence_length_out_of_range_is_an_error() {
        let text = "graph(%x: f32[2,1,2], %w: f32[1,4,2], %r: f32[1,4,4], %lens: i32[1]) {\n  %y, %yh = RNN{hidden_size=4}(%x, %w, %r, _, %lens) : f32[2,1,1,4], f32[1,1,4]\n  return %y, %yh\n}";
        let g = parse_graph(text).expect("parses");
        let ins = |l: i32| vec![data(&[2, 1, 2], 1, 1.0), data(&[1, 4, 2], 2, 1.0), data(&[1, 4, 4], 3, 1.0), Tensor::from_vec(&[1], vec![l]).unwrap()];
        for bad in [3, -1] {
            assert!(crate::driver::compile_and_run(&g, &ins(bad), &Default::default()).is_err(), "length {bad}");
        }
        same_as_reference(text, &ins(2), TOL);
    }
}
