//! Sliding-window geometry shared by Conv, ConvTranspose and the pooling ops: the `auto_pad`
//! modes, the normalised window attributes, output sizes, and the runs in which a kernel tap
//! meets a row-major plane.

use crate::ir::{Attr, Attrs, NodeCtx};
use crate::tensor::{Scalar, Tensor};
use anyhow::{Result, bail};

/// The elements of a numeric tensor as `f64`, row-major (fast for standard-layout arrays,
/// which is what the evaluator hands over).
pub fn load_f64(t: &Tensor) -> Result<Vec<f64>> {
    crate::with_scalar_array!(t, a, T => match a.as_slice() {
        Some(s) => s.iter().map(|v: &T| v.to_f64()).collect(),
        None => a.iter().map(|v: &T| v.to_f64()).collect(),
    })
}

/// Like [`load_f64`], as `i64` (exact for every integer type).
pub fn load_i64(t: &Tensor) -> Result<Vec<i64>> {
    crate::with_scalar_array!(t, a, T => match a.as_slice() {
        Some(s) => s.iter().map(|v: &T| v.to_i64()).collect(),
        None => a.iter().map(|v: &T| v.to_i64()).collect(),
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoPad {
    NotSet,
    SameUpper,
    SameLower,
    Valid,
}

impl AutoPad {
    pub fn as_str(self) -> &'static str {
        match self {
            AutoPad::NotSet => "NOTSET",
            AutoPad::SameUpper => "SAME_UPPER",
            AutoPad::SameLower => "SAME_LOWER",
            AutoPad::Valid => "VALID",
        }
    }
}

/// Kernel, strides, dilations and pads, one entry per spatial dimension (pads hold all begins,
/// then all ends, as in ONNX).
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    pub kernel: Vec<usize>,
    pub strides: Vec<usize>,
    pub dilations: Vec<usize>,
    pub pads: Vec<usize>,
    pub auto_pad: AutoPad,
}

/// The largest kernel, stride, dilation or pad accepted (keeps all size arithmetic exact).
const MAX_DIM: i64 = i32::MAX as i64;

/// Reads a list attribute of `n` positive (or, with `zero_ok`, non-negative) values.
pub fn read_dims(ctx: &NodeCtx, name: &str, n: usize, default: usize, zero_ok: bool) -> Result<Vec<usize>> {
    match ctx.opt_ints(name)? {
        None => Ok(vec![default; n]),
        Some(v) => {
            if v.len() != n {
                bail!("{}: '{name}' has {} values, expected {n}", ctx.op_type, v.len());
            }
            if v.iter().any(|&x| x < 0 || (x == 0 && !zero_ok) || x > MAX_DIM) {
                bail!("{}: '{name}' = {v:?} has a value out of range", ctx.op_type);
            }
            Ok(v.iter().map(|&x| x as usize).collect())
        }
    }
}

impl Window {
    /// Reads `kernel_shape` (or uses `kernel` when the attribute is absent), `strides`,
    /// `dilations`, `pads` and `auto_pad`.
    pub fn import(ctx: &NodeCtx, kernel: Option<Vec<usize>>) -> Result<Window> {
        let kernel = match (ctx.opt_ints("kernel_shape")?, kernel) {
            (Some(k), _) => {
                if k.iter().any(|&x| x <= 0 || x > MAX_DIM) {
                    bail!("{}: kernel_shape {k:?} must be positive", ctx.op_type);
                }
                k.iter().map(|&x| x as usize).collect()
            }
            (None, Some(k)) => {
                if k.iter().any(|&x| x == 0 || x as i64 > MAX_DIM) {
                    bail!("{}: W's spatial shape {k:?} is not a valid kernel", ctx.op_type);
                }
                k
            }
            (None, None) => bail!("{}: 'kernel_shape' is required", ctx.op_type),
        };
        let r = kernel.len();
        if r == 0 {
            bail!("{}: the kernel needs at least one spatial dimension", ctx.op_type);
        }
        let auto_pad = match ctx.string("auto_pad", "NOTSET")?.as_str() {
            "NOTSET" | "" => AutoPad::NotSet,
            "SAME_UPPER" => AutoPad::SameUpper,
            "SAME_LOWER" => AutoPad::SameLower,
            "VALID" => AutoPad::Valid,
            other => return Err(ctx.unsupported(format!("{} auto_pad '{other}'", ctx.op_type))),
        };
        Ok(Window {
            strides: read_dims(ctx, "strides", r, 1, false)?,
            dilations: read_dims(ctx, "dilations", r, 1, false)?,
            pads: read_dims(ctx, "pads", 2 * r, 0, true)?,
            kernel,
            auto_pad,
        })
    }

    pub fn write_attrs(&self, a: &mut Attrs) {
        let ints = |v: &[usize]| Attr::Ints(v.iter().map(|&x| x as i64).collect());
        a.insert("kernel_shape".into(), ints(&self.kernel));
        a.insert("strides".into(), ints(&self.strides));
        a.insert("dilations".into(), ints(&self.dilations));
        a.insert("pads".into(), ints(&self.pads));
        a.insert("auto_pad".into(), Attr::Str(self.auto_pad.as_str().into()));
    }

    pub fn rank(&self) -> usize {
        self.kernel.len()
    }

    /// The dilated extent of the kernel along `i`.
    pub fn extent(&self, i: usize) -> usize {
        (self.kernel[i] - 1) * self.dilations[i] + 1
    }

    /// Output sizes and (begin, end) pads of a forward window (Conv and the pools) over the
    /// spatial `input`, following ONNX's reference (`op_pool_common.py`): with `ceil_mode` the
    /// last window must start inside the input or its begin padding.
    pub fn forward(&self, input: &[usize], ceil_mode: bool, op: &str) -> Result<(Vec<usize>, Vec<usize>, Vec<usize>)> {
        let r = self.rank();
        if input.len() != r {
            bail!("{op}: input has {} spatial dimensions, the kernel has {r}", input.len());
        }
        let (mut out, mut pb, mut pe) = (vec![0; r], vec![0; r], vec![0; r]);
        for i in 0..r {
            let (x, s, eff) = (input[i], self.strides[i], self.extent(i));
            match self.auto_pad {
                AutoPad::NotSet | AutoPad::Valid => {
                    if self.auto_pad == AutoPad::NotSet {
                        (pb[i], pe[i]) = (self.pads[i], self.pads[r + i]);
                    }
                    let span = x + pb[i] + pe[i];
                    if span < eff {
                        bail!("{op}: spatial size {x} (padded {span}) is smaller than the kernel extent {eff}");
                    }
                    let num = span - eff;
                    out[i] = if ceil_mode && self.auto_pad == AutoPad::NotSet {
                        let mut o = num.div_ceil(s) + 1;
                        if (o - 1) * s >= x + pb[i] {
                            o -= 1;
                        }
                        o
                    } else {
                        num / s + 1
                    };
                }
                AutoPad::SameUpper | AutoPad::SameLower => {
                    out[i] = x.div_ceil(s);
                    let total = if x == 0 { 0 } else { ((out[i] - 1) * s + eff).saturating_sub(x) };
                    pb[i] = if self.auto_pad == AutoPad::SameUpper { total / 2 } else { total - total / 2 };
                    pe[i] = total - pb[i];
                }
            }
        }
        Ok((out, pb, pe))
    }
}

/// A stretch along the last spatial axis where a kernel tap meets the other plane: positions
/// `t + j` of the iterated plane and `b + j * stride` of the other plane, for `j < len`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Run {
    pub t: usize,
    pub b: usize,
    pub len: usize,
}

/// For one kernel tap, every pair of row-major positions `t` (in the `iter` plane) and
/// `b = t * strides + start` (in the `other` plane, per dimension) with `b` inside `other`,
/// grouped in runs along the last axis. `start[i]` is `tap[i] * dilation[i] - pad_begin[i]`.
pub fn runs(iter: &[usize], other: &[usize], strides: &[usize], start: &[i64]) -> Vec<Run> {
    let r = iter.len();
    if r == 0 {
        return vec![Run { t: 0, b: 0, len: 1 }];
    }
    let (mut lo, mut hi) = (vec![0usize; r], vec![0usize; r]);
    for i in 0..r {
        let (s, st, n) = (strides[i] as i64, start[i], iter[i] as i64);
        let l = if st >= 0 { 0 } else { (-st + s - 1) / s };
        let m = other[i] as i64 - 1 - st;
        let h = if m < 0 { 0 } else { (m / s + 1).min(n) };
        if l >= h {
            return vec![];
        }
        (lo[i], hi[i]) = (l as usize, h as usize);
    }
    let stride_of = |shape: &[usize]| {
        let mut s = vec![1usize; r];
        for i in (0..r - 1).rev() {
            s[i] = s[i + 1] * shape[i + 1];
        }
        s
    };
    let (ts, bs) = (stride_of(iter), stride_of(other));
    let mut out = vec![];
    let mut idx = lo.clone();
    loop {
        let mut t = 0;
        let mut b = 0;
        for i in 0..r {
            t += idx[i] * ts[i];
            b += (idx[i] as i64 * strides[i] as i64 + start[i]) as usize * bs[i];
        }
        out.push(Run { t, b, len: hi[r - 1] - lo[r - 1] });
        // Next position of the outer dimensions.
        let mut d = r - 1;
        loop {
            if d == 0 {
                return out;
            }
            d -= 1;
            idx[d] += 1;
            if idx[d] < hi[d] {
                break;
            }
            idx[d] = lo[d];
        }
    }
}

/// Every multi-index of `shape` in row-major order, as a flat list of coordinate vectors.
pub fn multi_indices(shape: &[usize]) -> Vec<Vec<usize>> {
    let n: usize = shape.iter().product();
    let mut out = Vec::with_capacity(n);
    if n == 0 {
        return out;
    }
    let mut idx = vec![0; shape.len()];
    for _ in 0..n {
        out.push(idx.clone());
        for d in (0..shape.len()).rev() {
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_cover_valid_taps() {
        // 1-D: out 3, input 5, stride 2, tap start -1: b = 2t - 1 -> t=1 (b=1), t=2 (b=3).
        assert_eq!(runs(&[3], &[5], &[2], &[-1]), vec![Run { t: 1, b: 1, len: 2 }]);
        // 2-D: 2x2 over 3x3, stride 1, start (1, 0).
        assert_eq!(
            runs(&[2, 2], &[3, 3], &[1, 1], &[1, 0]),
            vec![Run { t: 0, b: 3, len: 2 }, Run { t: 2, b: 6, len: 2 }]
        );
        assert!(runs(&[2], &[3], &[1], &[5]).is_empty());
    }

    #[test]
    fn multi_index_order() {
        assert_eq!(multi_indices(&[2, 2]), vec![vec![0, 0], vec![0, 1], vec![1, 0], vec![1, 1]]);
        assert!(multi_indices(&[0, 3]).is_empty());
    }
}
