//! Data movement: ops that copy, reorder, cut or pad elements without computing on them.
//! They work for every element type (strings and the 8/4/2-bit types included).
//!
//! Specs (<https://onnx.ai/onnx/operators/onnx__OP.html>) and the opset history that matters:
//! - Transpose (1; later versions add types): `perm`, default reversed axes.
//! - Concat: opset 1 `axis` defaults to 1; required from 4; negative from 11.
//! - Split: opset 1 takes `split` as input 1 or attribute; 2 and 11 as attribute; 13 as input 1;
//!   18 adds `num_outputs` (parts of ceil(dim / n); the last ones are smaller, or empty, when
//!   the axis does not divide evenly, as in the reference implementation).
//! - Slice: opset 1 takes `starts`/`ends`/`axes` attributes; 10 takes them (and `steps`) as
//!   inputs 1–4; 11 allows negative axes. Clamping follows the spec (negative steps included).
//! - Tile: opset 6 (`repeats` input; opset 1 had `tiles`/`axis`, not supported).
//! - Pad: opset 1 `paddings`/`value` attributes; 2 `pads`/`value`; 11 `pads` and
//!   `constant_value` as inputs 1 and 2; 18 `axes` as input 3; 19 `wrap` mode. A negative pad
//!   crops. Modes constant/reflect/edge follow numpy.pad.
//! - DepthToSpace: opset 1 (DCR only); 11 adds `mode` (DCR/CRD).
//! - SpaceToDepth: opset 1 (DCR order only); opset 28 adds `mode` (DCR/CRD).
//! - Opset 28 also adds element types to DepthToSpace and ReverseSequence (no semantic change).
//! - Trilu: opset 14; `k` is optional input 1.
//! - ReverseSequence: opset 10; `batch_axis` (default 1) and `time_axis` (default 0).
//! - CenterCropPad: opset 18; `axes` attribute, target `shape` as input 1; pads with zeros.
//!
//! Normal form: every operand that moved from an attribute to an input is an input.

pub mod kernels;

pub use kernels::PadMode;

use crate::ir::shape;
use crate::ir::{Attr, Attrs, EvalInputs, InferCx, Importer, NodeCtx, Op, OpImpl, ValueType};
use crate::tensor::{DType, Tensor};
use anyhow::{Result, anyhow, bail};
use kernels::AxisMap;

/// DepthToSpace / SpaceToDepth element order within a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockMode {
    /// depth, column, row (the default)
    Dcr,
    /// column, row, depth
    Crd,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Movement {
    Transpose { perm: Option<Vec<i64>> },
    Concat { axis: i64 },
    /// Input 1 (optional): the part sizes. Otherwise `num_outputs` (or the node's output
    /// count) parts.
    Split { axis: i64, num_outputs: Option<i64> },
    /// Inputs 1–4: starts, ends, axes (optional), steps (optional).
    Slice,
    /// Input 1: repeats.
    Tile,
    /// Inputs 1–3: pads, constant_value (optional), axes (optional).
    Pad { mode: PadMode },
    DepthToSpace { blocksize: i64, mode: BlockMode },
    SpaceToDepth { blocksize: i64, mode: BlockMode },
    /// Input 1 (optional): the diagonal offset k.
    Trilu { upper: bool },
    ReverseSequence { batch_axis: i64, time_axis: i64 },
    /// Input 1: the target sizes of `axes` (all axes when `None`).
    CenterCropPad { axes: Option<Vec<i64>> },
}

/// How the outputs are made from the inputs; computed identically by `infer` and `eval`.
pub enum Plan {
    /// One output from per-axis index maps over input 0.
    Gather(Vec<AxisMap>),
    /// One output per list of maps.
    Split(Vec<Vec<AxisMap>>),
    /// Input 0 reshaped to `tmp`, permuted, read out as `out`.
    Permute { tmp: Vec<usize>, perm: Vec<usize>, out: Vec<usize> },
    Concat { axis: usize, out: Vec<usize> },
    /// Same shape as input 0 (Trilu, ReverseSequence).
    Same,
}

/// The integer values of input `i` (absent: `None`); from constants in `infer`, from the
/// tensors in `eval`.
pub type Ints<'a> = dyn Fn(usize, &str) -> Result<Option<Vec<i64>>> + 'a;

fn int_values(t: &Tensor, op: &str, what: &str) -> Result<Vec<i64>> {
    if !t.dtype().is_int() {
        bail!("{op}: input '{what}' must be an integer tensor, got {}", t.dtype());
    }
    t.to_i64_vec()
}

fn req(v: Option<Vec<i64>>, op: &str, what: &str) -> Result<Vec<i64>> {
    v.ok_or_else(|| anyhow!("{op}: input '{what}' is required"))
}

impl Movement {
    pub fn plan(&self, shapes: &[Option<&[usize]>], ints: &Ints, n_outputs: usize) -> Result<Plan> {
        let name = self.name();
        let x = shapes.first().copied().flatten().ok_or_else(|| anyhow!("{name}: input 0 is missing"))?;
        let r = x.len();
        let ax = |a: i64| shape::axis(a, r).map_err(|e| anyhow!("{name}: {e}"));
        Ok(match self {
            Movement::Transpose { perm } => {
                let perm = match perm {
                    None => (0..r).rev().collect(),
                    Some(p) if p.len() == r => shape::axes(p, r).map_err(|e| anyhow!("Transpose: {e}"))?,
                    Some(p) => bail!("Transpose: perm {p:?} does not match rank {r}"),
                };
                Plan::Permute { tmp: x.to_vec(), out: perm.iter().map(|&p| x[p]).collect(), perm }
            }
            Movement::Concat { axis } => {
                let a = ax(*axis)?;
                let mut out = x.to_vec();
                out[a] = 0;
                for (i, s) in shapes.iter().enumerate() {
                    let s = s.ok_or_else(|| anyhow!("Concat: input {i} is missing"))?;
                    let same = s.len() == r && (0..r).all(|d| d == a || s[d] == x[d]);
                    if !same {
                        bail!("Concat: input {i} has shape {s:?}, incompatible with {x:?} on axis {a}");
                    }
                    out[a] += s[a];
                }
                Plan::Concat { axis: a, out }
            }
            Movement::Split { axis, num_outputs } => {
                let a = ax(*axis)?;
                // An empty `split` (e.g. an empty old-opset attribute) means "not given".
                let split = ints(1, "split")?.filter(|s| !s.is_empty());
                let n = num_outputs.map_or(Ok(n_outputs), |n| usize::try_from(n).map_err(|_| anyhow!("Split: num_outputs {n}")))?;
                let parts = kernels::split_maps(x, a, split.as_deref(), n)?;
                if parts.len() < n_outputs {
                    bail!("Split: {} parts for {n_outputs} outputs", parts.len());
                }
                Plan::Split(parts)
            }
            Movement::Slice => Plan::Gather(kernels::slice_maps(
                x,
                &req(ints(1, "starts")?, name, "starts")?,
                &req(ints(2, "ends")?, name, "ends")?,
                ints(3, "axes")?.as_deref(),
                ints(4, "steps")?.as_deref(),
            )?),
            Movement::Tile => Plan::Gather(kernels::tile_maps(x, &req(ints(1, "repeats")?, name, "repeats")?)?),
            Movement::Pad { mode } => {
                Plan::Gather(kernels::pad_maps(x, &req(ints(1, "pads")?, name, "pads")?, ints(3, "axes")?.as_deref(), *mode)?)
            }
            Movement::CenterCropPad { axes } => {
                Plan::Gather(kernels::center_crop_pad_maps(x, &req(ints(1, "shape")?, name, "shape")?, axes.as_deref())?)
            }
            Movement::DepthToSpace { blocksize, mode } | Movement::SpaceToDepth { blocksize, mode } => {
                let &[b, c, h, w] = x else { bail!("{name}: input must have rank 4, got shape {x:?}") };
                let bs = usize::try_from(*blocksize).ok().filter(|&b| b > 0).ok_or_else(|| anyhow!("{name}: blocksize {blocksize}"))?;
                let bb = bs.checked_mul(bs).ok_or_else(|| anyhow!("{name}: blocksize {blocksize} is too large"))?;
                if let Movement::DepthToSpace { .. } = self {
                    if c % bb != 0 {
                        bail!("DepthToSpace: channels {c} are not a multiple of blocksize² {bb}");
                    }
                    let (tmp, perm) = match mode {
                        BlockMode::Dcr => (vec![b, bs, bs, c / bb, h, w], vec![0, 3, 4, 1, 5, 2]),
                        BlockMode::Crd => (vec![b, c / bb, bs, bs, h, w], vec![0, 1, 4, 2, 5, 3]),
                    };
                    Plan::Permute { tmp, perm, out: vec![b, c / bb, h * bs, w * bs] }
                } else {
                    if h % bs != 0 || w % bs != 0 {
                        bail!("SpaceToDepth: spatial dims {h}x{w} are not multiples of blocksize {bs}");
                    }
                    let perm = match mode {
                        BlockMode::Dcr => vec![0, 3, 5, 1, 2, 4],
                        BlockMode::Crd => vec![0, 1, 3, 5, 2, 4],
                    };
                    Plan::Permute { tmp: vec![b, c, h / bs, bs, w / bs, bs], perm, out: vec![b, c * bb, h / bs, w / bs] }
                }
            }
            Movement::Trilu { .. } => {
                if r < 2 {
                    bail!("Trilu: input must have rank >= 2, got shape {x:?}");
                }
                Plan::Same
            }
            Movement::ReverseSequence { batch_axis, time_axis } => {
                let (b, t) = (ax(*batch_axis)?, ax(*time_axis)?);
                if b == t {
                    bail!("ReverseSequence: batch_axis and time_axis are both {b}");
                }
                match shapes.get(1).copied().flatten() {
                    Some(l) if l == [x[b]] => {}
                    l => bail!("ReverseSequence: sequence_lens has shape {l:?}, expected [{}]", x[b]),
                }
                Plan::Same
            }
        })
    }

    /// The constant fill of Pad: input 2, when present.
    fn pad_value<'a>(&self, inputs: &EvalInputs<'a>) -> Option<&'a Tensor> {
        match self {
            Movement::Pad { mode: PadMode::Constant } => inputs.opt(2).filter(|t| !t.is_empty()),
            _ => None,
        }
    }

    fn check_types(&self, dtypes: &[Option<DType>]) -> Result<()> {
        let name = self.name();
        let Some(Some(x)) = dtypes.first() else { bail!("{name}: input 0 is missing") };
        match self {
            Movement::Concat { .. } => {
                if let Some(d) = dtypes.iter().flatten().find(|d| *d != x) {
                    bail!("Concat: inputs mix {x} and {d}");
                }
            }
            Movement::Pad { .. } => {
                if let Some(Some(d)) = dtypes.get(2) {
                    if d != x {
                        bail!("Pad: constant_value is {d} but the data is {x}");
                    }
                }
            }
            Movement::Trilu { .. } | Movement::ReverseSequence { .. } => {
                if let Some(Some(d)) = dtypes.get(1) {
                    if !d.is_int() {
                        bail!("{name}: input 1 must be an integer tensor, got {d}");
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

impl OpImpl for Movement {
    fn name(&self) -> &'static str {
        match self {
            Movement::Transpose { .. } => "Transpose",
            Movement::Concat { .. } => "Concat",
            Movement::Split { .. } => "Split",
            Movement::Slice => "Slice",
            Movement::Tile => "Tile",
            Movement::Pad { .. } => "Pad",
            Movement::DepthToSpace { .. } => "DepthToSpace",
            Movement::SpaceToDepth { .. } => "SpaceToDepth",
            Movement::Trilu { .. } => "Trilu",
            Movement::ReverseSequence { .. } => "ReverseSequence",
            Movement::CenterCropPad { .. } => "CenterCropPad",
        }
    }

    fn attrs(&self) -> Attrs {
        let mut a = Attrs::new();
        let mut put = |k: &str, v: Attr| {
            a.insert(k.to_string(), v);
        };
        match self {
            Movement::Transpose { perm: Some(p) } => put("perm", Attr::Ints(p.clone())),
            Movement::Concat { axis } => put("axis", Attr::Int(*axis)),
            Movement::Split { axis, num_outputs } => {
                put("axis", Attr::Int(*axis));
                if let Some(n) = num_outputs {
                    put("num_outputs", Attr::Int(*n));
                }
            }
            Movement::Pad { mode } => put("mode", Attr::Str(mode.as_str().into())),
            Movement::DepthToSpace { blocksize, mode } | Movement::SpaceToDepth { blocksize, mode } => {
                put("blocksize", Attr::Int(*blocksize));
                put("mode", Attr::Str(if *mode == BlockMode::Dcr { "DCR" } else { "CRD" }.into()));
            }
            Movement::Trilu { upper } => put("upper", Attr::Int(*upper as i64)),
            Movement::ReverseSequence { batch_axis, time_axis } => {
                put("batch_axis", Attr::Int(*batch_axis));
                put("time_axis", Attr::Int(*time_axis));
            }
            Movement::CenterCropPad { axes: Some(ax) } => put("axes", Attr::Ints(ax.clone())),
            Movement::Transpose { perm: None } | Movement::Slice | Movement::Tile | Movement::CenterCropPad { axes: None } => {}
        }
        a
    }

    fn infer(&self, cx: &InferCx) -> Result<Vec<ValueType>> {
        let n = cx.n_inputs();
        self.check_types(&(0..n).map(|i| cx.opt_ty(i).map(|t| t.dtype)).collect::<Vec<_>>())?;
        let shapes: Vec<Option<&[usize]>> = (0..n).map(|i| cx.opt_ty(i).map(|t| t.shape.as_slice())).collect();
        let ints = |i: usize, what: &str| -> Result<Option<Vec<i64>>> {
            cx.const_input(i, what)?.map(|t| int_values(t, self.name(), what)).transpose()
        };
        let dtype = cx.ty(0)?.dtype;
        let ty = |maps: &[AxisMap]| ValueType::new(dtype, maps.iter().map(|m| m.len()).collect::<Vec<_>>());
        Ok(match self.plan(&shapes, &ints, cx.n_outputs)? {
            Plan::Gather(maps) => vec![ty(&maps)],
            Plan::Split(parts) => parts.iter().map(|m| ty(m)).collect(),
            Plan::Permute { out, .. } | Plan::Concat { out, .. } => vec![ValueType::new(dtype, out)],
            Plan::Same => vec![ValueType::new(dtype, shapes[0].unwrap_or_default())],
        })
    }

    fn eval(&self, inputs: &EvalInputs) -> Result<Vec<Tensor>> {
        let n = inputs.len();
        self.check_types(&(0..n).map(|i| inputs.opt(i).map(|t| t.dtype())).collect::<Vec<_>>())?;
        let shapes: Vec<Option<&[usize]>> = (0..n).map(|i| inputs.opt(i).map(|t| t.shape())).collect();
        let ints = |i: usize, what: &str| -> Result<Option<Vec<i64>>> {
            inputs.opt(i).map(|t| int_values(t, self.name(), what)).transpose()
        };
        let x = inputs.req(0)?;
        Ok(match self.plan(&shapes, &ints, inputs.n_outputs)? {
            Plan::Gather(maps) => {
                let fill = self.pad_value(inputs);
                if fill.is_none() && x.dtype() == DType::F8E8M0 && matches!(self, Movement::Pad { .. } | Movement::CenterCropPad { .. }) {
                    bail!("{}: f8e8m0 has no zero to pad with; give a constant_value", self.name());
                }
                vec![kernels::gather_tensor(x, &maps, fill)?]
            }
            Plan::Split(parts) => parts.iter().map(|m| kernels::gather_tensor(x, m, None)).collect::<Result<_>>()?,
            Plan::Permute { tmp, perm, out } => vec![kernels::permute(x, &tmp, &perm, &out)?],
            Plan::Concat { axis, .. } => {
                let all = (0..n).map(|i| inputs.req(i)).collect::<Result<Vec<_>>>()?;
                vec![kernels::concat(&all, axis)?]
            }
            Plan::Same => match self {
                Movement::Trilu { upper } => {
                    let k = match inputs.opt(1) {
                        Some(t) => t.scalar_i64().map_err(|e| anyhow!("Trilu: k: {e}"))?,
                        None => 0,
                    };
                    vec![kernels::trilu(x, *upper, k)?]
                }
                Movement::ReverseSequence { batch_axis, time_axis } => {
                    let r = x.rank();
                    let lens = inputs
                        .req(1)?
                        .to_i64_vec()?
                        .into_iter()
                        .map(|l| usize::try_from(l).map_err(|_| anyhow!("ReverseSequence: negative sequence length {l}")))
                        .collect::<Result<Vec<_>>>()?;
                    vec![kernels::reverse_sequence(x, &lens, shape::axis(*batch_axis, r)?, shape::axis(*time_axis, r)?)?]
                }
                _ => bail!("{}: internal error: no kernel for this plan", self.name()),
            },
        })
    }
}

fn import_transpose(ctx: &mut NodeCtx) -> Result<Op> {
    Ok(Movement::Transpose { perm: ctx.opt_ints("perm")? }.into())
}

fn import_concat(ctx: &mut NodeCtx) -> Result<Op> {
    let axis = if ctx.opset < 4 { ctx.int("axis", 1)? } else { ctx.req_int("axis")? };
    Ok(Movement::Concat { axis }.into())
}

fn import_split(ctx: &mut NodeCtx) -> Result<Op> {
    if ctx.opset < 13 {
        ctx.attr_to_input("split", 1, DType::I64)?;
    }
    let num_outputs = if ctx.opset >= 18 { ctx.opt_int("num_outputs")? } else { None };
    if let Some(n) = num_outputs {
        if n < 1 {
            return Err(ctx.unsupported(format!("Split num_outputs={n}")));
        }
        if ctx.input(1).is_some() {
            bail!("Split: both the split input and num_outputs are given");
        }
    }
    Ok(Movement::Split { axis: ctx.int("axis", 0)?, num_outputs }.into())
}

fn import_slice(ctx: &mut NodeCtx) -> Result<Op> {
    if ctx.opset < 10 {
        ctx.attr_to_input("starts", 1, DType::I64)?;
        ctx.attr_to_input("ends", 2, DType::I64)?;
        ctx.attr_to_input("axes", 3, DType::I64)?;
    }
    Ok(Movement::Slice.into())
}

fn import_tile(_ctx: &mut NodeCtx) -> Result<Op> {
    Ok(Movement::Tile.into())
}

fn import_pad(ctx: &mut NodeCtx) -> Result<Op> {
    if ctx.opset < 11 {
        ctx.attr_to_input(if ctx.opset < 2 { "paddings" } else { "pads" }, 1, DType::I64)?;
        let dtype = ctx.input(0).map_or(DType::F32, |i| i.ty().dtype);
        ctx.attr_to_input("value", 2, dtype)?;
    }
    let mode = ctx.string("mode", "constant")?;
    match PadMode::parse(&mode) {
        Some(PadMode::Wrap) if ctx.opset < 19 => Err(ctx.unsupported(format!("Pad mode 'wrap' at opset {}", ctx.opset))),
        Some(mode) => Ok(Movement::Pad { mode }.into()),
        None => Err(ctx.unsupported(format!("Pad mode '{mode}'"))),
    }
}

fn block_attrs(ctx: &NodeCtx, read_mode: bool) -> Result<(i64, BlockMode)> {
    let blocksize = ctx.req_int("blocksize")?;
    if blocksize < 1 {
        return Err(ctx.unsupported(format!("{} blocksize={blocksize}", ctx.op_type)));
    }
    let mode = if read_mode { ctx.string("mode", "DCR")? } else { "DCR".into() };
    let mode = match mode.as_str() {
        "DCR" => BlockMode::Dcr,
        "CRD" => BlockMode::Crd,
        m => return Err(ctx.unsupported(format!("{} mode '{m}'", ctx.op_type))),
    };
    Ok((blocksize, mode))
}

fn import_depth_to_space(ctx: &mut NodeCtx) -> Result<Op> {
    let (blocksize, mode) = block_attrs(ctx, ctx.opset >= 11)?;
    Ok(Movement::DepthToSpace { blocksize, mode }.into())
}

fn import_space_to_depth(ctx: &mut NodeCtx) -> Result<Op> {
    let (blocksize, mode) = block_attrs(ctx, ctx.opset >= 28)?;
    Ok(Movement::SpaceToDepth { blocksize, mode }.into())
}

fn import_trilu(ctx: &mut NodeCtx) -> Result<Op> {
    Ok(Movement::Trilu { upper: ctx.int("upper", 1)? != 0 }.into())
}

fn import_reverse_sequence(ctx: &mut NodeCtx) -> Result<Op> {
    Ok(Movement::ReverseSequence { batch_axis: ctx.int("batch_axis", 1)?, time_axis: ctx.int("time_axis", 0)? }.into())
}

fn import_center_crop_pad(ctx: &mut NodeCtx) -> Result<Op> {
    Ok(Movement::CenterCropPad { axes: ctx.opt_ints("axes")? }.into())
}

pub const IMPORTERS: &[Importer] = &[
    Importer { op_type: "Transpose", domain: "", since: 1, build: import_transpose },
    Importer { op_type: "Concat", domain: "", since: 1, build: import_concat },
    Importer { op_type: "Split", domain: "", since: 1, build: import_split },
    Importer { op_type: "Slice", domain: "", since: 1, build: import_slice },
    Importer { op_type: "Tile", domain: "", since: 6, build: import_tile },
    Importer { op_type: "Pad", domain: "", since: 1, build: import_pad },
    Importer { op_type: "DepthToSpace", domain: "", since: 1, build: import_depth_to_space },
    // Opset 28 adds types (DepthToSpace, ReverseSequence) and SpaceToDepth's `mode`.
    Importer { op_type: "DepthToSpace", domain: "", since: 28, build: import_depth_to_space },
    Importer { op_type: "SpaceToDepth", domain: "", since: 1, build: import_space_to_depth },
    Importer { op_type: "SpaceToDepth", domain: "", since: 28, build: import_space_to_depth },
    Importer { op_type: "Trilu", domain: "", since: 14, build: import_trilu },
    Importer { op_type: "ReverseSequence", domain: "", since: 10, build: import_reverse_sequence },
    Importer { op_type: "ReverseSequence", domain: "", since: 28, build: import_reverse_sequence },
    Importer { op_type: "CenterCropPad", domain: "", since: 18, build: import_center_crop_pad },
];

#[cfg(test)]
mod tests;
