//! The convolution attributes and the plain convolution loop of ConvInteger and QLinearConv
//! (written here rather than shared with the float Conv family, on purpose: it is small).

use crate::ir::{Attr, Attrs, NodeCtx};
use crate::tensor::{ArrayD, IxDyn};
use anyhow::{Result, bail};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoPad {
    NotSet,
    SameUpper,
    SameLower,
    Valid,
}

impl AutoPad {
    fn name(self) -> &'static str {
        match self {
            AutoPad::NotSet => "NOTSET",
            AutoPad::SameUpper => "SAME_UPPER",
            AutoPad::SameLower => "SAME_LOWER",
            AutoPad::Valid => "VALID",
        }
    }
}

/// The attributes as given (absent lists default from the weight's rank at inference).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvAttrs {
    pub auto_pad: AutoPad,
    pub group: usize,
    pub kernel_shape: Option<Vec<usize>>,
    pub strides: Option<Vec<usize>>,
    pub dilations: Option<Vec<usize>>,
    /// `[x1_begin, x2_begin, ..., x1_end, x2_end, ...]`.
    pub pads: Option<Vec<usize>>,
}

/// The sizes of one convolution.
#[derive(Clone, Debug)]
pub struct Geom {
    pub batch: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    pub group: usize,
    pub in_spatial: Vec<usize>,
    pub kernel: Vec<usize>,
    pub strides: Vec<usize>,
    pub dilations: Vec<usize>,
    pub pad_begin: Vec<usize>,
    pub out_spatial: Vec<usize>,
}

impl Geom {
    /// `[N, M, out...]`.
    pub fn out_shape(&self) -> Vec<usize> {
        [vec![self.batch, self.out_channels], self.out_spatial.clone()].concat()
    }
}

fn list(ctx: &NodeCtx, name: &str, min: i64) -> Result<Option<Vec<usize>>> {
    match ctx.opt_ints(name)? {
        None => Ok(None),
        Some(v) => {
            if let Some(bad) = v.iter().find(|&&x| x < min) {
                bail!("{}: {name} values must be at least {min}, got {bad}", ctx.op_type);
            }
            Ok(Some(v.into_iter().map(|x| x as usize).collect()))
        }
    }
}

impl ConvAttrs {
    pub fn import(ctx: &NodeCtx) -> Result<ConvAttrs> {
        let auto_pad = match ctx.string("auto_pad", "NOTSET")?.as_str() {
            "NOTSET" => AutoPad::NotSet,
            "SAME_UPPER" => AutoPad::SameUpper,
            "SAME_LOWER" => AutoPad::SameLower,
            "VALID" => AutoPad::Valid,
            other => return Err(ctx.unsupported(format!("{} auto_pad '{other}'", ctx.op_type))),
        };
        let group = ctx.int("group", 1)?;
        if group < 1 {
            bail!("{}: group must be positive, got {group}", ctx.op_type);
        }
        let pads = list(ctx, "pads", 0)?;
        if pads.is_some() && auto_pad != AutoPad::NotSet {
            bail!("{}: pads cannot be given together with auto_pad {}", ctx.op_type, auto_pad.name());
        }
        Ok(ConvAttrs {
            auto_pad,
            group: group as usize,
            kernel_shape: list(ctx, "kernel_shape", 1)?,
            strides: list(ctx, "strides", 1)?,
            dilations: list(ctx, "dilations", 1)?,
            pads,
        })
    }

    pub fn print(&self, a: &mut Attrs) {
        let ints = |v: &[usize]| Attr::Ints(v.iter().map(|&x| x as i64).collect());
        a.insert("auto_pad".into(), Attr::Str(self.auto_pad.name().into()));
        a.insert("group".into(), Attr::Int(self.group as i64));
        for (name, v) in [("kernel_shape", &self.kernel_shape), ("strides", &self.strides), ("dilations", &self.dilations), ("pads", &self.pads)] {
            if let Some(v) = v {
                a.insert(name.into(), ints(v));
            }
        }
    }

    /// Checks `x` `[N, C, D...]` against `w` `[M, C/group, k...]` and works out the output size.
    pub fn geometry(&self, op: &str, x: &[usize], w: &[usize]) -> Result<Geom> {
        if x.len() < 3 || w.len() != x.len() {
            bail!("{op}: x must have rank >= 3 and w the same rank, got {x:?} and {w:?}");
        }
        let n = x.len() - 2;
        let (m, cg) = (w[0], w[1]);
        if x[1] != cg * self.group || m % self.group != 0 {
            bail!("{op}: x {x:?} and w {w:?} do not fit group {}", self.group);
        }
        let kernel = w[2..].to_vec();
        if let Some(k) = &self.kernel_shape {
            if *k != kernel {
                bail!("{op}: kernel_shape {k:?} does not match w {w:?}");
            }
        }
        let per_axis = |v: &Option<Vec<usize>>, what: &str, len: usize| -> Result<Vec<usize>> {
            match v {
                None => Ok(vec![if what == "pads" { 0 } else { 1 }; len]),
                Some(v) if v.len() == len => Ok(v.clone()),
                Some(v) => bail!("{op}: {what} {v:?} should have {len} values"),
            }
        };
        let strides = per_axis(&self.strides, "strides", n)?;
        let dilations = per_axis(&self.dilations, "dilations", n)?;
        let pads = per_axis(&self.pads, "pads", 2 * n)?;
        let in_spatial = x[2..].to_vec();
        let mut pad_begin = vec![0; n];
        let mut out_spatial = vec![0; n];
        for i in 0..n {
            let ek = (kernel[i].saturating_sub(1)) * dilations[i] + 1;
            let (pb, pe) = match self.auto_pad {
                AutoPad::NotSet => (pads[i], pads[n + i]),
                AutoPad::Valid => (0, 0),
                AutoPad::SameUpper | AutoPad::SameLower => {
                    let out = in_spatial[i].div_ceil(strides[i]);
                    let total = ((out.max(1) - 1) * strides[i] + ek).saturating_sub(in_spatial[i]);
                    let small = total / 2;
                    if self.auto_pad == AutoPad::SameUpper { (small, total - small) } else { (total - small, small) }
                }
            };
            let padded = in_spatial[i] + pb + pe;
            if kernel[i] == 0 || padded < ek {
                bail!("{op}: kernel {kernel:?} (dilations {dilations:?}) does not fit the padded input {x:?}");
            }
            pad_begin[i] = pb;
            out_spatial[i] = (padded - ek) / strides[i] + 1;
        }
        Ok(Geom {
            batch: x[0],
            in_channels: x[1],
            out_channels: m,
            group: self.group,
            in_spatial,
            kernel,
            strides,
            dilations,
            pad_begin,
            out_spatial,
        })
    }
}

/// The convolution of `x` `[N, C, D...]` with `w` `[M, C/group, k...]`, zero padding, as
/// plain sums (exact for the integer values the callers pass, far below 2^53).
pub fn conv(x: &ArrayD<f64>, w: &ArrayD<f64>, g: &Geom) -> ArrayD<f64> {
    let n = g.in_spatial.len();
    let cg = g.in_channels / g.group;
    let mg = g.out_channels / g.group;
    let mut out = ArrayD::<f64>::zeros(IxDyn(&g.out_shape()));
    let mut xi = vec![0usize; n + 2];
    let mut wi = vec![0usize; n + 2];
    for (oi, o) in out.indexed_iter_mut() {
        let (b, m) = (oi[0], oi[1]);
        let group = m / mg;
        let mut acc = 0.0;
        for c in 0..cg {
            for k in ndarray::indices(IxDyn(&g.kernel)) {
                let mut inside = true;
                for i in 0..n {
                    let p = (oi[2 + i] * g.strides[i] + k[i] * g.dilations[i]) as isize - g.pad_begin[i] as isize;
                    if p < 0 || p as usize >= g.in_spatial[i] {
                        inside = false;
                        break;
                    }
                    xi[2 + i] = p as usize;
                    wi[2 + i] = k[i];
                }
                if inside {
                    (xi[0], xi[1]) = (b, group * cg + c);
                    (wi[0], wi[1]) = (m, c);
                    acc += x[&xi[..]] * w[&wi[..]];
                }
            }
        }
        *o = acc;
    }
    out
}
