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
    if let Some(c) = clip
        && (c.is_nan() || c < 0.0)
    {
        bail!("{}: clip must be non-negative, got {c}", ctx.op_type);
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
            if let Some(t) = cx.opt_ty(i)
                && t.dtype != dtype
            {
                bail!("{}: input {i} has type {} but X has type {dtype}", self.name(), t.dtype);
            }
        }
        if let Some(t) = cx.opt_ty(4)
            && !t.dtype.is_int()
        {
            bail!("{}: sequence_lens must be an integer tensor, got {}", self.name(), t.dtype);
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
mod tests;
