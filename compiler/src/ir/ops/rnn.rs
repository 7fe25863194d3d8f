//! Recurrent layers: LSTM, GRU and RNN (one layer; forward, reverse or bidirectional).
//!
//! Specs: <https://onnx.ai/onnx/operators/onnx__LSTM.html>,
//! <https://onnx.ai/onnx/operators/onnx__GRU.html>, <https://onnx.ai/onnx/operators/onnx__RNN.html>.
//!
//! Opset history that matters here:
//! - 7: the current form (opset 1's `output_sequence` is gone); GRU has had
//!   `linear_before_reset` since 3. We import from 7.
//! - 14: `layout` (0: `[seq, batch, ...]`, 1: `[batch, seq, ...]` for X, initial_h/c, Y,
//!   Y_h, Y_c).
//! - 22: bf16 added to the element types; no semantic change.
//!
//! The ONNX reference implementation ignores `sequence_lens`, `clip`, `input_forget` and
//! custom activations. Here they follow the spec text and ONNX Runtime:
//! - `sequence_lens[b] = L`: batch entry `b` runs `L` steps (the reverse direction starts at
//!   `L - 1`), `Y` is zero at steps `>= L`, and `Y_h`/`Y_c` hold the state after the last step
//!   run (the initial state when `L = 0`).
//! - `clip`: every activation input is clamped to `[-clip, clip]` (the cell state fed to the
//!   LSTM's `h` is not, as in ONNX Runtime).
//! - `input_forget`: the LSTM's forget gate is `1 - i`.
//! - `activation_alpha`/`activation_beta` are consumed in order by the activations that take
//!   them; missing ones get the defaults of the corresponding ONNX operators.
//! - A list of activations for one direction is used for both directions when bidirectional.
//!
//! The reference evaluation computes in `f64` and rounds once to the input type.

use crate::ir::{Attr, Attrs, EvalInputs, InferCx, Importer, NodeCtx, Op, OpImpl, ValueType};
use crate::tensor::{ArrayD, Axis, DType, IxDyn, Tensor};
use anyhow::{Result, bail};
use ndarray::{Array2, Array3, ArrayView1, ArrayView2, Ix2, Ix3, s};

/// The cell kind, with its kind-specific attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cell {
    /// Gates i, o, f, c; activations f, g, h.
    Lstm { input_forget: bool },
    /// Gates z, r, h; activations f, g.
    Gru { linear_before_reset: bool },
    /// One gate; activation f.
    Rnn,
}

impl Cell {
    fn gates(self) -> usize {
        match self {
            Cell::Lstm { .. } => 4,
            Cell::Gru { .. } => 3,
            Cell::Rnn => 1,
        }
    }
    fn n_acts(self) -> usize {
        match self {
            Cell::Lstm { .. } => 3,
            Cell::Gru { .. } => 2,
            Cell::Rnn => 1,
        }
    }
    fn default_acts(self) -> &'static [ActKind] {
        match self {
            Cell::Lstm { .. } => &[ActKind::Sigmoid, ActKind::Tanh, ActKind::Tanh],
            Cell::Gru { .. } => &[ActKind::Sigmoid, ActKind::Tanh],
            Cell::Rnn => &[ActKind::Tanh],
        }
    }
    fn n_outputs(self) -> usize {
        match self {
            Cell::Lstm { .. } => 3,
            _ => 2,
        }
    }
    /// Inputs the op accepts: X, W, R, B, sequence_lens, initial_h (, initial_c, P for LSTM).
    fn max_inputs(self) -> usize {
        match self {
            Cell::Lstm { .. } => 8,
            _ => 6,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Forward,
    Reverse,
    Bidirectional,
}

impl Direction {
    fn name(self) -> &'static str {
        match self {
            Direction::Forward => "forward",
            Direction::Reverse => "reverse",
            Direction::Bidirectional => "bidirectional",
        }
    }
    fn count(self) -> usize {
        if self == Direction::Bidirectional { 2 } else { 1 }
    }
}

/// The activation functions the spec allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActKind {
    Relu,
    Tanh,
    Sigmoid,
    Affine,
    LeakyRelu,
    ThresholdedRelu,
    ScaledTanh,
    HardSigmoid,
    Elu,
    Softsign,
    Softplus,
}

const ACT_KINDS: [ActKind; 11] = [
    ActKind::Relu,
    ActKind::Tanh,
    ActKind::Sigmoid,
    ActKind::Affine,
    ActKind::LeakyRelu,
    ActKind::ThresholdedRelu,
    ActKind::ScaledTanh,
    ActKind::HardSigmoid,
    ActKind::Elu,
    ActKind::Softsign,
    ActKind::Softplus,
];

impl ActKind {
    fn name(self) -> &'static str {
        match self {
            ActKind::Relu => "Relu",
            ActKind::Tanh => "Tanh",
            ActKind::Sigmoid => "Sigmoid",
            ActKind::Affine => "Affine",
            ActKind::LeakyRelu => "LeakyRelu",
            ActKind::ThresholdedRelu => "ThresholdedRelu",
            ActKind::ScaledTanh => "ScaledTanh",
            ActKind::HardSigmoid => "HardSigmoid",
            ActKind::Elu => "Elu",
            ActKind::Softsign => "Softsign",
            ActKind::Softplus => "Softplus",
        }
    }
    /// Default alpha and beta, `None` where the function takes no such parameter.
    fn defaults(self) -> (Option<f32>, Option<f32>) {
        match self {
            ActKind::Affine => (Some(1.0), Some(0.0)),
            ActKind::LeakyRelu => (Some(0.01), None),
            ActKind::ThresholdedRelu => (Some(1.0), None),
            ActKind::ScaledTanh => (Some(1.0), Some(1.0)),
            ActKind::HardSigmoid => (Some(0.2), Some(0.5)),
            ActKind::Elu => (Some(1.0), None),
            _ => (None, None),
        }
    }
}

/// An activation with its parameters (0 where the function takes none).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Act {
    pub kind: ActKind,
    pub alpha: f32,
    pub beta: f32,
}

impl Act {
    fn apply(self, x: f64) -> f64 {
        let (a, b) = (self.alpha as f64, self.beta as f64);
        match self.kind {
            ActKind::Relu => x.max(0.0),
            ActKind::Tanh => x.tanh(),
            ActKind::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            ActKind::Affine => a * x + b,
            ActKind::LeakyRelu => {
                if x >= 0.0 {
                    x
                } else {
                    a * x
                }
            }
            ActKind::ThresholdedRelu => {
                if x > a {
                    x
                } else {
                    0.0
                }
            }
            ActKind::ScaledTanh => a * (b * x).tanh(),
            ActKind::HardSigmoid => (a * x + b).clamp(0.0, 1.0),
            ActKind::Elu => {
                if x >= 0.0 {
                    x
                } else {
                    a * (x.exp() - 1.0)
                }
            }
            ActKind::Softsign => x / (1.0 + x.abs()),
            ActKind::Softplus => {
                if x > 0.0 {
                    x + (-x).exp().ln_1p()
                } else {
                    x.exp().ln_1p()
                }
            }
        }
    }
}

/// LSTM, GRU or RNN with normalised attributes.
#[derive(Clone, Debug, PartialEq)]
pub struct Rnn {
    pub cell: Cell,
    pub direction: Direction,
    /// The `hidden_size` attribute when given (it must then agree with R).
    pub hidden_size: Option<usize>,
    /// `num_directions * n` activations (n = 3 for LSTM, 2 for GRU, 1 for RNN), forward first.
    pub activations: Vec<Act>,
    pub clip: Option<f32>,
    /// 0: sequence-major, 1: batch-major.
    pub layout: usize,
}

fn import(ctx: &mut NodeCtx, cell: Cell) -> Result<Op> {
    let hidden_size = match ctx.opt_int("hidden_size")? {
        None => None,
        Some(h) if h > 0 => Some(h as usize),
        Some(h) => bail!("{}: hidden_size must be positive, got {h}", ctx.op_type),
    };
    let direction = match ctx.string("direction", "forward")?.as_str() {
        "forward" => Direction::Forward,
        "reverse" => Direction::Reverse,
        "bidirectional" => Direction::Bidirectional,
        other => return Err(ctx.unsupported(format!("{} direction '{other}'", ctx.op_type))),
    };
    let n = cell.n_acts();
    let dirs = direction.count();
    let mut kinds = match ctx.opt_strings("activations")? {
        None => cell.default_acts().to_vec(),
        Some(names) => {
            let mut v = Vec::with_capacity(names.len());
            for name in &names {
                match ACT_KINDS.iter().find(|k| k.name().eq_ignore_ascii_case(name)) {
                    Some(k) => v.push(*k),
                    None => return Err(ctx.unsupported(format!("{} activation '{name}'", ctx.op_type))),
                }
            }
            v
        }
    };
    if kinds.len() == n && dirs == 2 {
        kinds.extend_from_within(..);
    }
    if kinds.len() != n * dirs {
        bail!("{}: expected {} activations for direction {}, got {}", ctx.op_type, n * dirs, direction.name(), kinds.len());
    }
    let alphas = ctx.opt_floats("activation_alpha")?.unwrap_or_default();
    let betas = ctx.opt_floats("activation_beta")?.unwrap_or_default();
    let (mut ai, mut bi) = (alphas.iter(), betas.iter());
    let activations = kinds
        .into_iter()
        .map(|kind| {
            let (da, db) = kind.defaults();
            let alpha = da.map(|d| ai.next().copied().unwrap_or(d)).unwrap_or(0.0);
            let beta = db.map(|d| bi.next().copied().unwrap_or(d)).unwrap_or(0.0);
            Act { kind, alpha, beta }
        })
        .collect();
    let clip = ctx.opt_float("clip")?;
    if let Some(c) = clip {
        if !(c >= 0.0) {
            bail!("{}: clip must be non-negative, got {c}", ctx.op_type);
        }
    }
    let layout = if ctx.opset >= 14 { ctx.int("layout", 0)? } else { 0 };
    if layout != 0 && layout != 1 {
        return Err(ctx.unsupported(format!("{} layout {layout}", ctx.op_type)));
    }
    let flag = |ctx: &NodeCtx, name: &str| -> Result<bool> {
        match ctx.int(name, 0)? {
            0 => Ok(false),
            1 => Ok(true),
            v => bail!("{}: {name} must be 0 or 1, got {v}", ctx.op_type),
        }
    };
    let cell = match cell {
        Cell::Lstm { .. } => Cell::Lstm { input_forget: flag(ctx, "input_forget")? },
        Cell::Gru { .. } => Cell::Gru { linear_before_reset: flag(ctx, "linear_before_reset")? },
        Cell::Rnn => Cell::Rnn,
    };
    Ok(Op::Rnn(Rnn { cell, direction, hidden_size, activations, clip, layout: layout as usize }))
}

pub const IMPORTERS: &[Importer] = &[
    Importer { op_type: "LSTM", domain: "", since: 7, build: |c| import(c, Cell::Lstm { input_forget: false }) },
    Importer { op_type: "GRU", domain: "", since: 7, build: |c| import(c, Cell::Gru { linear_before_reset: false }) },
    Importer { op_type: "RNN", domain: "", since: 7, build: |c| import(c, Cell::Rnn) },
];

/// The sizes of one evaluation, checked against every input's shape.
#[derive(Clone, Copy, Debug)]
struct Dims {
    seq: usize,
    batch: usize,
    input: usize,
    hidden: usize,
    dirs: usize,
}

impl Rnn {
    /// Checks input shapes (`None` for absent inputs) and returns the sizes.
    fn dims(&self, shapes: &[Option<&[usize]>]) -> Result<Dims> {
        let name = self.name();
        if shapes.len() > self.cell.max_inputs() && shapes[self.cell.max_inputs()..].iter().any(|s| s.is_some()) {
            bail!("{name} takes at most {} inputs", self.cell.max_inputs());
        }
        let get = |i: usize| shapes.get(i).copied().flatten();
        let req = |i: usize, what: &str| get(i).ok_or_else(|| anyhow::anyhow!("{name}: input {what} is missing"));
        let x = req(0, "X")?;
        let w = req(1, "W")?;
        let r = req(2, "R")?;
        let [a, b, input] = x[..] else { bail!("{name}: X must have rank 3, got shape {x:?}") };
        let (seq, batch) = if self.layout == 0 { (a, b) } else { (b, a) };
        let dirs = self.direction.count();
        let hidden = match (self.hidden_size, r.get(2)) {
            (_, None) => bail!("{name}: R must have rank 3, got shape {r:?}"),
            (Some(h), Some(&rh)) if h != rh => bail!("{name}: hidden_size is {h} but R has shape {r:?}"),
            (_, Some(&rh)) => rh,
        };
        let g = self.cell.gates();
        let state = if self.layout == 0 { [dirs, batch, hidden] } else { [batch, dirs, hidden] };
        let expect = |i: usize, what: &str, want: &[usize]| -> Result<()> {
            match get(i) {
                Some(s) if s != want => bail!("{name}: {what} should have shape {want:?}, got {s:?}"),
                _ => Ok(()),
            }
        };
        if w != [dirs, g * hidden, input] {
            bail!("{name}: W should have shape {:?}, got {w:?}", [dirs, g * hidden, input]);
        }
        expect(2, "R", &[dirs, g * hidden, hidden])?;
        expect(3, "B", &[dirs, 2 * g * hidden])?;
        expect(4, "sequence_lens", &[batch])?;
        expect(5, "initial_h", &state)?;
        if let Cell::Lstm { .. } = self.cell {
            expect(6, "initial_c", &state)?;
            expect(7, "P", &[dirs, 3 * hidden])?;
        }
        Ok(Dims { seq, batch, input, hidden, dirs })
    }

    fn output_types(&self, dtype: DType, d: Dims) -> Vec<ValueType> {
        let (y, state) = if self.layout == 0 {
            (vec![d.seq, d.dirs, d.batch, d.hidden], vec![d.dirs, d.batch, d.hidden])
        } else {
            (vec![d.batch, d.seq, d.dirs, d.hidden], vec![d.batch, d.dirs, d.hidden])
        };
        let mut out = vec![ValueType::new(dtype, y), ValueType::new(dtype, state.clone())];
        if self.cell.n_outputs() == 3 {
            out.push(ValueType::new(dtype, state));
        }
        out
    }
}

fn is_rnn_float(d: DType) -> bool {
    matches!(d, DType::F32 | DType::F64 | DType::F16 | DType::BF16)
}

/// One direction's weights: W `[G*H, I]`, R `[G*H, H]`, B `[2*G*H]`, P `[3*H]`.
struct DirWeights<'a> {
    w: ArrayView2<'a, f64>,
    r: ArrayView2<'a, f64>,
    b: Option<ArrayView1<'a, f64>>,
    p: Option<ArrayView1<'a, f64>>,
    hidden: usize,
    gates: usize,
}

impl DirWeights<'_> {
    /// `W[gate] · x + Wb[gate]`.
    fn wx(&self, gate: usize, x: &[f64]) -> Vec<f64> {
        let h = self.hidden;
        (0..h)
            .map(|j| {
                let row = self.w.row(gate * h + j);
                let bias = self.b.map_or(0.0, |b| b[gate * h + j]);
                row.iter().zip(x).map(|(a, b)| a * b).sum::<f64>() + bias
            })
            .collect()
    }
    /// `R[gate] · h + Rb[gate]`.
    fn rh(&self, gate: usize, hprev: &[f64]) -> Vec<f64> {
        let h = self.hidden;
        (0..h)
            .map(|j| {
                let row = self.r.row(gate * h + j);
                let bias = self.b.map_or(0.0, |b| b[(self.gates + gate) * h + j]);
                row.iter().zip(hprev).map(|(a, b)| a * b).sum::<f64>() + bias
            })
            .collect()
    }
    /// Peephole weights for gate k of (i, o, f), zero when P is absent.
    fn peep(&self, k: usize, j: usize) -> f64 {
        self.p.map_or(0.0, |p| p[k * self.hidden + j])
    }
}

fn add(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

impl Rnn {
    fn clip(&self, v: f64) -> f64 {
        match self.clip {
            Some(c) => v.clamp(-(c as f64), c as f64),
            None => v,
        }
    }

    /// Applies activation `act` to `v` after clipping.
    fn act(&self, act: Act, v: f64) -> f64 {
        act.apply(self.clip(v))
    }

    /// One time step of one batch entry: updates `h` (and `c` for LSTM) in place.
    fn step(&self, acts: &[Act], wt: &DirWeights, x: &[f64], h: &mut Vec<f64>, c: &mut [f64]) {
        let n = wt.hidden;
        match self.cell {
            Cell::Rnn => {
                let pre = add(&wt.wx(0, x), &wt.rh(0, h));
                *h = pre.iter().map(|&v| self.act(acts[0], v)).collect();
            }
            Cell::Gru { linear_before_reset } => {
                let (f, g) = (acts[0], acts[1]);
                let z: Vec<f64> = add(&wt.wx(0, x), &wt.rh(0, h)).iter().map(|&v| self.act(f, v)).collect();
                let r: Vec<f64> = add(&wt.wx(1, x), &wt.rh(1, h)).iter().map(|&v| self.act(f, v)).collect();
                let wxh = wt.wx(2, x);
                let pre: Vec<f64> = if linear_before_reset {
                    let rh = wt.rh(2, h);
                    (0..n).map(|j| wxh[j] + r[j] * rh[j]).collect()
                } else {
                    let reset: Vec<f64> = (0..n).map(|j| r[j] * h[j]).collect();
                    add(&wxh, &wt.rh(2, &reset))
                };
                *h = (0..n).map(|j| (1.0 - z[j]) * self.act(g, pre[j]) + z[j] * h[j]).collect();
            }
            Cell::Lstm { input_forget } => {
                let (f, g, hh) = (acts[0], acts[1], acts[2]);
                let pre = |gate: usize| add(&wt.wx(gate, x), &wt.rh(gate, h));
                let (pi, po, pf, pc) = (pre(0), pre(1), pre(2), pre(3));
                let mut hn = vec![0.0; n];
                for j in 0..n {
                    let i = self.act(f, pi[j] + wt.peep(0, j) * c[j]);
                    let fg = if input_forget { 1.0 - i } else { self.act(f, pf[j] + wt.peep(2, j) * c[j]) };
                    let cand = self.act(g, pc[j]);
                    let cn = fg * c[j] + i * cand;
                    let o = self.act(f, po[j] + wt.peep(1, j) * cn);
                    hn[j] = o * hh.apply(cn);
                    c[j] = cn;
                }
                *h = hn;
            }
        }
    }
}

/// An f64 copy of input `i` as a rank-3 array.
fn arr3(inputs: &EvalInputs, i: usize) -> Result<Option<Array3<f64>>> {
    inputs.opt(i).map(|t| Ok(t.to_f64_array()?.into_dimensionality::<Ix3>()?)).transpose()
}

fn req3(inputs: &EvalInputs, i: usize) -> Result<Array3<f64>> {
    Ok(inputs.req(i)?.to_f64_array()?.into_dimensionality::<Ix3>()?)
}

impl OpImpl for Rnn {
    fn name(&self) -> &'static str {
        match self.cell {
            Cell::Lstm { .. } => "LSTM",
            Cell::Gru { .. } => "GRU",
            Cell::Rnn => "RNN",
        }
    }

    fn attrs(&self) -> Attrs {
        let mut a = Attrs::new();
        if let Some(h) = self.hidden_size {
            a.insert("hidden_size".into(), Attr::Int(h as i64));
        }
        a.insert("direction".into(), Attr::Str(self.direction.name().into()));
        a.insert("activations".into(), Attr::Strs(self.activations.iter().map(|x| x.kind.name().to_string()).collect()));
        let alphas: Vec<f32> = self.activations.iter().filter(|x| x.kind.defaults().0.is_some()).map(|x| x.alpha).collect();
        let betas: Vec<f32> = self.activations.iter().filter(|x| x.kind.defaults().1.is_some()).map(|x| x.beta).collect();
        if !alphas.is_empty() {
            a.insert("activation_alpha".into(), Attr::Floats(alphas));
        }
        if !betas.is_empty() {
            a.insert("activation_beta".into(), Attr::Floats(betas));
        }
        if let Some(c) = self.clip {
            a.insert("clip".into(), Attr::Float(c));
        }
        a.insert("layout".into(), Attr::Int(self.layout as i64));
        match self.cell {
            Cell::Lstm { input_forget } => {
                a.insert("input_forget".into(), Attr::Int(input_forget as i64));
            }
            Cell::Gru { linear_before_reset } => {
                a.insert("linear_before_reset".into(), Attr::Int(linear_before_reset as i64));
            }
            Cell::Rnn => {}
        }
        a
    }

    fn infer(&self, cx: &InferCx) -> Result<Vec<ValueType>> {
        let shapes: Vec<Option<&[usize]>> = (0..cx.n_inputs()).map(|i| cx.opt_ty(i).map(|t| &t.shape[..])).collect();
        let d = self.dims(&shapes)?;
        let dtype = cx.ty(0)?.dtype;
        if !is_rnn_float(dtype) {
            bail!("{}: X of type {dtype} is not supported (f16, bf16, f32, f64 are)", self.name());
        }
        for i in [1, 2, 3, 5, 6, 7] {
            if let Some(t) = cx.opt_ty(i) {
                if t.dtype != dtype {
                    bail!("{}: input {i} has type {} but X has type {dtype}", self.name(), t.dtype);
                }
            }
        }
        if let Some(t) = cx.opt_ty(4) {
            if !t.dtype.is_int() {
                bail!("{}: sequence_lens must be an integer tensor, got {}", self.name(), t.dtype);
            }
        }
        if cx.n_outputs > self.cell.n_outputs() {
            bail!("{} has {} outputs, {} requested", self.name(), self.cell.n_outputs(), cx.n_outputs);
        }
        Ok(self.output_types(dtype, d))
    }

    fn eval(&self, inputs: &EvalInputs) -> Result<Vec<Tensor>> {
        let shapes: Vec<Option<&[usize]>> = (0..inputs.len()).map(|i| inputs.opt(i).map(|t| t.shape())).collect();
        let d = self.dims(&shapes)?;
        let dtype = inputs.req(0)?.dtype();
        if !is_rnn_float(dtype) {
            bail!("{}: X of type {dtype} is not supported (f16, bf16, f32, f64 are)", self.name());
        }
        // Everything in layout 0: X [seq, batch, input], states [dirs, batch, hidden].
        let to_layout0 = |a: Array3<f64>| if self.layout == 0 { a } else { a.permuted_axes([1, 0, 2]) };
        let x = to_layout0(req3(inputs, 0)?);
        let w = req3(inputs, 1)?;
        let r = req3(inputs, 2)?;
        let arr2 = |i: usize| -> Result<Option<Array2<f64>>> {
            inputs.opt(i).map(|t| Ok(t.to_f64_array()?.into_dimensionality::<Ix2>()?)).transpose()
        };
        let b = arr2(3)?;
        let is_lstm = matches!(self.cell, Cell::Lstm { .. });
        let p = if is_lstm { arr2(7)? } else { None };
        let h0 = arr3(inputs, 5)?.map(to_layout0);
        let c0 = if is_lstm { arr3(inputs, 6)?.map(to_layout0) } else { None };
        let lens: Vec<usize> = match inputs.opt(4) {
            None => vec![d.seq; d.batch],
            Some(t) => t
                .to_i64_vec()?
                .into_iter()
                .map(|l| match usize::try_from(l) {
                    Ok(l) if l <= d.seq => Ok(l),
                    _ => bail!("{}: sequence_lens value {l} is outside [0, {}]", self.name(), d.seq),
                })
                .collect::<Result<_>>()?,
        };

        let n_acts = self.cell.n_acts();
        if self.activations.len() != n_acts * d.dirs {
            bail!("{}: {} activations for {} directions", self.name(), self.activations.len(), d.dirs);
        }
        let mut y = ArrayD::<f64>::zeros(IxDyn(&[d.seq, d.dirs, d.batch, d.hidden]));
        let mut yh = Array3::<f64>::zeros((d.dirs, d.batch, d.hidden));
        let mut yc = Array3::<f64>::zeros((d.dirs, d.batch, d.hidden));
        for dir in 0..d.dirs {
            let reverse = self.direction == Direction::Reverse || dir == 1;
            let acts = &self.activations[dir * n_acts..(dir + 1) * n_acts];
            let wt = DirWeights {
                w: w.index_axis(Axis(0), dir),
                r: r.index_axis(Axis(0), dir),
                b: b.as_ref().map(|b| b.row(dir)),
                p: p.as_ref().map(|p| p.row(dir)),
                hidden: d.hidden,
                gates: self.cell.gates(),
            };
            for bi in 0..d.batch {
                let init = |s: &Option<Array3<f64>>| match s {
                    Some(s) => s.slice(s![dir, bi, ..]).to_vec(),
                    None => vec![0.0; d.hidden],
                };
                let (mut h, mut c) = (init(&h0), init(&c0));
                let len = lens[bi];
                for k in 0..len {
                    let t = if reverse { len - 1 - k } else { k };
                    let xt = x.slice(s![t, bi, ..]).to_vec();
                    debug_assert_eq!(xt.len(), d.input);
                    self.step(acts, &wt, &xt, &mut h, &mut c);
                    for (j, v) in h.iter().enumerate() {
                        y[[t, dir, bi, j]] = *v;
                    }
                }
                for j in 0..d.hidden {
                    yh[[dir, bi, j]] = h[j];
                    yc[[dir, bi, j]] = c[j];
                }
            }
        }
        let (y, yh, yc) = if self.layout == 0 {
            (y, yh.into_dyn(), yc.into_dyn())
        } else {
            (y.permuted_axes(IxDyn(&[2, 0, 1, 3])), yh.permuted_axes([1, 0, 2]).into_dyn(), yc.permuted_axes([1, 0, 2]).into_dyn())
        };
        let out = |a: ArrayD<f64>| Tensor::from_f64_array(dtype, a.as_standard_layout().into_owned());
        let mut outs = vec![out(y)?, out(yh)?];
        if is_lstm {
            outs.push(out(yc)?);
        }
        Ok(outs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::ops::{build, rebuild};

    fn t(shape: &[usize], v: Vec<f32>) -> Tensor {
        Tensor::from_vec(shape, v).unwrap()
    }
    fn make(op: &str, attrs: &[(&str, Attr)], n_out: usize) -> Op {
        let attrs: Attrs = attrs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        build(op, "", 22, "n", &attrs, vec![], n_out).unwrap().0
    }
    fn run(op: &Op, ins: &[Option<Tensor>]) -> Vec<Tensor> {
        let refs: Vec<Option<&Tensor>> = ins.iter().map(|t| t.as_ref()).collect();
        let n = op.infer(&InferCx { inputs: &ins.iter().map(|t| t.as_ref().map(|t| (ValueType::of(t), None))).collect::<Vec<_>>(), n_outputs: 1 }).unwrap();
        let out = op.eval(&EvalInputs { inputs: &refs, n_outputs: n.len() }).unwrap();
        assert_eq!(n, out.iter().map(ValueType::of).collect::<Vec<_>>(), "infer disagrees with eval");
        out
    }
    fn close(a: &Tensor, b: &[f64]) {
        let a = a.to_f64_vec().unwrap();
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-5, "{a:?} vs {b:?}");
        }
    }

    #[test]
    #[allow(irrefutable_let_patterns)]
    fn round_trip() {
        let s = |v: &[&str]| Attr::Strs(v.iter().map(|x| x.to_string()).collect());
        let ops = [
            make("LSTM", &[("hidden_size", Attr::Int(3))], 3),
            make(
                "LSTM",
                &[
                    ("direction", Attr::Str("bidirectional".into())),
                    ("activations", s(&["HardSigmoid", "Tanh", "affine"])),
                    ("activation_alpha", Attr::Floats(vec![0.3, 2.0])),
                    ("clip", Attr::Float(5.0)),
                    ("input_forget", Attr::Int(1)),
                    ("layout", Attr::Int(1)),
                ],
                3,
            ),
            make("GRU", &[("linear_before_reset", Attr::Int(1)), ("direction", Attr::Str("reverse".into()))], 2),
            make("RNN", &[("activations", s(&["LeakyRelu", "ScaledTanh"])), ("direction", Attr::Str("bidirectional".into())), ("activation_beta", Attr::Floats(vec![0.5]))], 2),
        ];
        for op in ops {
            assert_eq!(rebuild(&op, vec![], 2).unwrap(), op);
        }
        let Op::Rnn(r) = make("RNN", &[("activations", s(&["LeakyRelu", "ScaledTanh"])), ("direction", Attr::Str("bidirectional".into())), ("activation_alpha", Attr::Floats(vec![0.1, 2.0]))], 2) else { panic!() };
        assert_eq!(r.activations[0], Act { kind: ActKind::LeakyRelu, alpha: 0.1, beta: 0.0 });
        assert_eq!(r.activations[1], Act { kind: ActKind::ScaledTanh, alpha: 2.0, beta: 1.0 });
    }

    #[test]
    fn bad_attributes() {
        let attrs: Attrs = [("activations".to_string(), Attr::Strs(vec!["Gelu".into()]))].into();
        assert!(build("RNN", "", 22, "n", &attrs, vec![], 2).is_err());
        let attrs: Attrs = [("direction".to_string(), Attr::Str("sideways".into()))].into();
        assert!(build("GRU", "", 22, "n", &attrs, vec![], 2).is_err());
        let attrs: Attrs = [("layout".to_string(), Attr::Int(1))].into();
        assert!(build("GRU", "", 13, "n", &attrs, vec![], 2).is_err(), "layout is not an opset-13 attribute");
    }

    #[test]
    fn rnn_by_hand() {
        // X [2,1,1]; W = 1, R = 0.5, Wb = 0.1, H0 = 0: h1 = tanh(1 + 0.1), h2 = tanh(2 + 0.5 h1 + 0.1).
        let op = make("RNN", &[("hidden_size", Attr::Int(1))], 2);
        let x = t(&[2, 1, 1], vec![1.0, 2.0]);
        let ins = [Some(x), Some(t(&[1, 1, 1], vec![1.0])), Some(t(&[1, 1, 1], vec![0.5])), Some(t(&[1, 2], vec![0.1, 0.0]))];
        let out = run(&op, &ins);
        let h1 = (1.1f64).tanh();
        let h2 = (2.1 + 0.5 * h1).tanh();
        close(&out[0], &[h1, h2]);
        close(&out[1], &[h2]);
        // sequence_lens = 1 stops after the first step; Y is zero beyond.
        let mut ins = ins.to_vec();
        ins.push(Some(Tensor::from_vec(&[1], vec![1i32]).unwrap()));
        let out = run(&op, &ins);
        close(&out[0], &[h1, 0.0]);
        close(&out[1], &[h1]);
    }

    #[test]
    fn reverse_and_layout() {
        // A reverse RNN with identity-ish Affine activation: h_t = x_t + h_{t+1}.
        let attrs = [
            ("direction", Attr::Str("bidirectional".into())),
            ("activations", Attr::Strs(vec!["Affine".into()])),
            ("activation_alpha", Attr::Floats(vec![1.0, 1.0])),
            ("activation_beta", Attr::Floats(vec![0.0, 0.0])),
            ("layout", Attr::Int(1)),
        ];
        let op = make("RNN", &attrs, 2);
        // batch 1, seq 3, input 1 (layout 1).
        let x = t(&[1, 3, 1], vec![1.0, 2.0, 3.0]);
        let ones = t(&[2, 1, 1], vec![1.0, 1.0]);
        let out = run(&op, &[Some(x), Some(ones.clone()), Some(ones)]);
        // Y [batch, seq, dirs, hidden]: forward prefix sums 1,3,6; reverse suffix sums 6,5,3.
        close(&out[0], &[1.0, 6.0, 3.0, 5.0, 6.0, 3.0]);
        close(&out[1], &[6.0, 6.0]);
    }

    #[test]
    fn lstm_and_gru_match_numpy() {
        // Values from the ONNX reference implementation (onnx.reference) for the same inputs.
        let x = t(&[1, 2, 2], vec![1.0, 2.0, -1.0, 0.5]);
        let w = |g: usize, i: usize| t(&[1, g, i], (0..g * i).map(|k| 0.1 * ((k % 5) as f32) - 0.2).collect());
        let lstm = make("LSTM", &[("hidden_size", Attr::Int(2))], 3);
        let out = run(&lstm, &[Some(x.clone()), Some(w(8, 2)), Some(w(8, 2))]);
        close(&out[1], &[0.035582885, -0.05134957, 0.011423102, -0.07780061]);
        close(&out[2], &[0.079209156, -0.10852367, 0.026849123, -0.14929697]);
        let gru = make("GRU", &[("hidden_size", Attr::Int(2)), ("linear_before_reset", Attr::Int(1))], 2);
        let out = run(&gru, &[Some(x), Some(w(6, 2)), Some(w(6, 2)), Some(t(&[1, 12], vec![0.1; 12]))]);
        close(&out[1], &[0.3143236, -0.09734599, 0.060536373, 0.13051966]);
    }

    #[test]
    fn shape_errors() {
        let op = make("RNN", &[("hidden_size", Attr::Int(2))], 2);
        let x = t(&[1, 1, 1], vec![1.0]);
        let bad_w = t(&[1, 3, 1], vec![0.0; 3]);
        let r = t(&[1, 2, 2], vec![0.0; 4]);
        let refs = [Some(&x), Some(&bad_w), Some(&r)];
        assert!(op.eval(&EvalInputs { inputs: &refs, n_outputs: 2 }).is_err());
        let w = t(&[1, 2, 1], vec![0.0; 2]);
        let lens = Tensor::from_vec(&[1], vec![5i64]).unwrap();
        let refs = [Some(&x), Some(&w), Some(&r), None, Some(&lens)];
        assert!(op.eval(&EvalInputs { inputs: &refs, n_outputs: 2 }).is_err(), "sequence_lens beyond seq_length");
    }

    #[test]
    fn lstm_options_match_onnxruntime() {
        // Bidirectional, sequence_lens [3, 1], peepholes, initial states; expected values from
        // onnxruntime 1.x (CPU), once plain and once with clip = 0.5 and input_forget = 1.
        let x = t(&[3, 2, 2], vec![0.27, -0.46, -0.92, -0.97, 0.63, 0.83, 0.21, 0.46, 0.09, 0.87, 0.63, -0.99]);
        let w = t(&[2, 8, 2], vec![0.71, -0.93, 0.46, -0.65, 0.73, 0.08, -0.40, -0.15, -0.94, -0.75, 0.34, 0.29, 0.23, -0.23, 0.99, 0.96, 0.37, 0.30, 0.38, -0.22, -0.73, 0.44, 0.05, -0.38, -0.03, 0.78, 0.87, -0.28, 0.14, -0.36, 0.19, -0.32]);
        let r = t(&[2, 8, 2], vec![-0.22, 0.78, -0.55, 0.25, -0.83, 0.67, 0.57, -0.52, 0.75, -0.88, -0.33, -0.70, -0.10, 0.59, -0.54, -0.90, -0.19, -0.60, -0.82, 0.16, -0.40, 0.34, -0.60, 0.88, -0.27, -0.79, 0.26, 0.85, -0.12, 0.91, -0.00, -0.15]);
        let b = t(&[2, 16], vec![0.24, 0.99, 0.90, -0.08, 0.52, -0.01, 0.06, 0.57, -0.17, 0.47, 0.42, 0.86, -0.77, 0.46, 0.85, 0.94, -0.97, 0.73, 0.96, 0.91, -0.70, 0.95, 0.78, 0.64, -0.04, -0.54, 0.60, 0.85, -0.47, 0.08, -0.11, 0.86]);
        let p = t(&[2, 6], vec![-0.92, 0.46, 0.23, -0.94, 0.44, -0.97, 0.52, 0.03, 0.86, -0.87, 0.68, -0.87]);
        let h0 = t(&[2, 2, 2], vec![-0.31, -0.14, 0.93, 0.12, -0.48, -0.52, 0.78, -0.55]);
        let c0 = t(&[2, 2, 2], vec![-0.75, -0.42, 0.17, 0.11, 0.62, 0.12, -0.42, -0.17]);
        let lens = Tensor::from_vec(&[2], vec![3i32, 1]).unwrap();
        let ins = [Some(x), Some(w), Some(r), Some(b), Some(lens), Some(h0), Some(c0), Some(p)];
        let op = make("LSTM", &[("hidden_size", Attr::Int(2)), ("direction", Attr::Str("bidirectional".into()))], 3);
        let out = run(&op, &ins);
        close(&out[0], &[0.2823153, 0.2467945, 0.2375152, -0.44139, 0.1944087, 0.6355574, -0.005121157, 0.1520167, 0.3047511, 0.2859286, 0.0, 0.0, 0.2822652, 0.4946813, 0.0, 0.0, 0.2507765, 0.3205406, 0.0, 0.0, 0.3092234, 0.353332, 0.0, 0.0]);
        close(&out[1], &[0.2507765, 0.3205406, 0.2375152, -0.44139, 0.1944087, 0.6355574, -0.005121157, 0.1520167]);
        close(&out[2], &[0.3189891, 1.136856, 0.51709, -0.532598, 0.2458993, 1.193418, -0.006516654, 0.2143815]);
        let op = make("LSTM", &[("hidden_size", Attr::Int(2)), ("direction", Attr::Str("bidirectional".into())), ("clip", Attr::Float(0.5)), ("input_forget", Attr::Int(1))], 3);
        let out = run(&op, &ins);
        close(&out[0], &[0.002797061, 0.079905, 0.1510264, -0.1501793, 0.2330836, 0.25421, -0.09433597, 0.0426648, 0.129327, 0.1659592, 0.0, 0.0, 0.210503, 0.2345916, 0.0, 0.0, 0.184575, 0.2168435, 0.0, 0.0, 0.1729026, 0.1928954, 0.0, 0.0]);
        close(&out[1], &[0.184575, 0.2168435, 0.1510264, -0.1501793, 0.2330836, 0.25421, -0.09433597, 0.0426648]);
        close(&out[2], &[0.3057057, 0.4146473, 0.3198188, -0.2461196, 0.3935958, 0.4336848, -0.1527302, 0.06864996]);
    }

    #[test]
    fn gru_and_rnn_options_match_onnxruntime() {
        // Bidirectional, sequence_lens [2, 3], initial state; expected values from onnxruntime (CPU).
        let x = t(&[3, 2, 2], vec![0.02, 0.90, -0.71, 0.90, -0.38, -0.15, 0.66, -0.18, 0.10, -0.94, 0.51, 0.08]);
        let w = t(&[2, 6, 2], vec![-0.34, 0.58, -0.39, -0.09, -0.73, -0.19, -0.59, -0.48, 0.50, -0.44, -0.03, 0.96, 0.92, 0.45, 0.08, -0.45, -0.68, 0.94, 0.03, -0.77, 0.25, 0.55, 0.23, 0.83]);
        let r = t(&[2, 6, 2], vec![-0.92, 0.06, -0.08, -0.88, 0.28, 0.71, 0.19, -0.48, 0.68, 0.02, 0.02, 0.51, -0.70, 0.64, 0.37, 0.57, -0.62, 0.60, -0.62, -0.84, 0.71, 0.72, 0.75, -0.06]);
        let b = t(&[2, 12], vec![-0.45, -0.99, 0.29, 0.44, 0.67, -0.44, -0.57, 0.28, 0.61, 0.93, -0.70, -0.04, 0.79, -0.15, 0.18, -0.95, 0.35, 0.84, 0.65, 0.77, 0.32, -0.51, 0.54, -0.58]);
        let h0 = t(&[2, 2, 2], vec![0.66, -0.87, 0.65, -0.67, -0.25, -0.37, 0.38, -0.64]);
        let lens = Tensor::from_vec(&[2], vec![2i32, 3]).unwrap();
        let ins = [Some(x.clone()), Some(w), Some(r), Some(b), Some(lens.clone()), Some(h0.clone())];
        let op = make("GRU", &[("hidden_size", Attr::Int(2)), ("direction", Attr::Str("bidirectional".into())), ("clip", Attr::Float(0.7))], 2);
        let out = run(&op, &ins);
        close(&out[0], &[0.1052859, -0.3671991, -0.09026606, -0.2482333, 0.1933749, 0.1647823, 0.5374323, 0.2539964, -0.03897587, -0.4995707, 0.1896774, -0.486198, -0.01071818, -0.2435182, 0.5041932, 0.00674729, 0.0, 0.0, 0.229645, -0.5098678, 0.0, 0.0, 0.454448, -0.1760889]);
        close(&out[1], &[-0.03897587, -0.4995707, 0.229645, -0.5098678, 0.1933749, 0.1647823, 0.5374323, 0.2539964]);
        let op = make("GRU", &[("hidden_size", Attr::Int(2)), ("direction", Attr::Str("bidirectional".into())), ("linear_before_reset", Attr::Int(1)), ("activations", Attr::Strs(vec!["HardSigmoid".into(), "Softsign".into(), "Sigmoid".into(), "Elu".into()])), ("activation_alpha", Attr::Floats(vec![0.3, 0.5])), ("activation_beta", Attr::Floats(vec![0.4]))], 2);
        let out = run(&op, &ins);
        close(&out[0], &[0.1600782, -0.308614, -0.09760515, -0.2195546, 0.05132578, 0.6766098, 0.7798821, 0.6833695, 0.1118166, -0.3927376, 0.405343, -0.3913174, -0.1162499, -0.04778646, 0.4930527, 0.2306511, 0.0, 0.0, 0.4018355, -0.3663857, 0.0, 0.0, 0.4419149, 0.003674209]);
        close(&out[1], &[0.1118166, -0.3927376, 0.4018355, -0.3663857, 0.05132578, 0.6766098, 0.7798821, 0.6833695]);
        let w = t(&[2, 2, 2], vec![-0.21, -0.99, -0.48, -0.16, -0.79, 0.27, -0.24, 0.45]);
        let r = t(&[2, 2, 2], vec![0.31, -0.14, 0.73, 0.26, 0.62, -0.32, 0.09, -0.61]);
        let b = t(&[2, 4], vec![0.99, -0.51, -0.49, -0.85, -0.48, 0.53, 0.40, -0.74]);
        let ins = [Some(x), Some(w), Some(r), Some(b), Some(lens), Some(h0)];
        let op = make("RNN", &[("hidden_size", Attr::Int(2)), ("direction", Attr::Str("bidirectional".into())), ("activations", Attr::Strs(vec!["Relu".into(), "LeakyRelu".into()])), ("activation_alpha", Attr::Floats(vec![0.2]))], 2);
        let out = run(&op, &ins);
        close(&out[0], &[0.0, 0.0, 0.05340004, 0.0, 0.230514, 0.19277, 0.6716823, 0.4173282, 0.7283, 0.0, 0.556154, 0.0, 0.1431, 0.01689997, -0.1387231, -0.1055956, 0.0, 0.0, 0.4861078, 0.0, 0.0, 0.0, -0.004180002, 0.1282]);
        close(&out[1], &[0.7283, 0.0, 0.4861078, 0.0, 0.230514, 0.19277, 0.6716823, 0.4173282]);
        let op = make("RNN", &[("hidden_size", Attr::Int(2)), ("direction", Attr::Str("bidirectional".into())), ("activations", Attr::Strs(vec!["ThresholdedRelu".into(), "ScaledTanh".into()])), ("activation_alpha", Attr::Floats(vec![0.1, 1.5])), ("activation_beta", Attr::Floats(vec![0.7]))], 2);
        let out = run(&op, &ins);
        close(&out[0], &[0.0, 0.0, 0.0, 0.0, 0.243904, 0.2012755, 0.4758554, 0.6218135, 0.7283, 0.0, 0.5396, 0.0, 0.1497545, 0.01774406, -0.6867841, -0.5352954, 0.0, 0.0, 0.480976, 0.0, 0.0, 0.0, -0.02194351, 0.1342497]);
        close(&out[1], &[0.7283, 0.0, 0.480976, 0.0, 0.243904, 0.2012755, 0.4758554, 0.6218135]);
        let op = make("RNN", &[("hidden_size", Attr::Int(2)), ("direction", Attr::Str("bidirectional".into())), ("activations", Attr::Strs(vec!["Affine".into(), "Softplus".into()])), ("activation_alpha", Attr::Floats(vec![0.8])), ("activation_beta", Attr::Floats(vec![0.1]))], 2);
        let out = run(&op, &ins);
        close(&out[0], &[0.04496, -0.9064, 0.14272, -0.59032, 0.912043, 0.6123307, 1.249148, 0.7938769, 0.7953069, -0.9851545, 0.6331905, -1.257838, 0.7672548, 0.7016329, 0.4856362, 0.3555282, 0.0, 0.0, 0.6488692, -1.085927, 0.0, 0.0, 0.6827518, 0.7593002]);
        close(&out[1], &[0.7953069, -0.9851545, 0.6488692, -1.085927, 0.912043, 0.6123307, 1.249148, 0.7938769]);
    }
}
