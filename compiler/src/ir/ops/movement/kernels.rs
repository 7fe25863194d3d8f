//! Element-type-generic kernels of the movement family, and the index arithmetic that both
//! shape inference and evaluation use (so the two always agree).
//!
//! Most ops here are *axis-separable*: output element `o` reads input element
//! `(map[0][o0], map[1][o1], …)`, or a fill value where a map entry is `None`. Slice, Pad,
//! Tile, Split and CenterCropPad are all expressed as such per-axis maps ([`AxisMap`]).

use crate::ir::{limits, shape};
use crate::tensor::{ArrayD, ArrayViewD, Axis, Elem, IxDyn, Tensor};
use crate::{try_map_array, with_array};
use anyhow::{Result, anyhow, bail};
use std::any::Any;

/// For one axis: output index → input index, `None` for a padded (fill) position.
pub type AxisMap = Vec<Option<usize>>;

/// Refuses output dims that cannot be real (a typo'd pad of 10^12, say) before allocating.
fn dim_len(v: i128, what: &str) -> Result<usize> {
    limits::dim(v, what)
}

fn identity(d: usize) -> AxisMap {
    (0..d).map(Some).collect()
}

/// The identity maps of `x`, once their size is checked against [`limits::index_maps`].
fn identities(x: &[usize], op: &str) -> Result<Vec<AxisMap>> {
    limits::index_maps(x, op)?;
    Ok(x.iter().map(|&d| identity(d)).collect())
}

/// Checks that replacing map `axis` by one of `len` entries keeps the maps in bounds.
fn room(maps: &[AxisMap], axis: usize, len: usize, op: &str) -> Result<()> {
    let lens: Vec<usize> = maps.iter().enumerate().map(|(i, m)| if i == axis { len } else { m.len() }).collect();
    limits::index_maps(&lens, op)
}

/// The array inside `t` if it holds elements of type `T` (Low tensors hold `u8` codes;
/// callers compare dtypes first so a `U8` tensor never stands in for a Low one).
fn array_of<T: Elem>(t: &Tensor) -> Option<&ArrayD<T>> {
    with_array!(t, b => (b as &dyn Any).downcast_ref::<ArrayD<T>>())
}

/// Builds the output from per-axis maps. Checks every index, so a bad map is an error, not a
/// panic.
fn gather<T: Elem>(a: &ArrayD<T>, maps: &[AxisMap], fill: &T) -> Result<ArrayD<T>> {
    if maps.len() != a.ndim() {
        bail!("index maps for rank {} applied to rank {}", maps.len(), a.ndim());
    }
    for (m, &d) in maps.iter().zip(a.shape()) {
        if m.iter().flatten().any(|&i| i >= d) {
            bail!("index map reads past dim {d}");
        }
    }
    let shape: Vec<usize> = maps.iter().map(|m| m.len()).collect();
    let mut src = vec![0usize; maps.len()];
    Ok(ArrayD::from_shape_fn(IxDyn(&shape), |idx| {
        for (d, m) in maps.iter().enumerate() {
            match m[idx[d]] {
                Some(i) => src[d] = i,
                None => return fill.clone(),
            }
        }
        a[IxDyn(&src)].clone()
    }))
}

/// [`gather`] on a tensor of any type. `fill` (same dtype as `t`; its first element is used)
/// defaults to zero / false / "" (code 0 for Low types).
pub fn gather_tensor(t: &Tensor, maps: &[AxisMap], fill: Option<&Tensor>) -> Result<Tensor> {
    if let Some(f) = fill {
        if f.dtype() != t.dtype() {
            bail!("the pad value is {} but the data is {}", f.dtype(), t.dtype());
        }
    }
    try_map_array!(t, a => {
        let v = fill.and_then(|f| array_of(f)).and_then(|f| f.iter().next().cloned()).unwrap_or_default();
        gather(a, maps, &v)
    })
}

/// Data reshaped to `tmp`, axes permuted by `perm`, then read out row-major as `out`.
pub fn permute(t: &Tensor, tmp: &[usize], perm: &[usize], out: &[usize]) -> Result<Tensor> {
    let mut sorted = perm.to_vec();
    sorted.sort_unstable();
    if sorted != (0..tmp.len()).collect::<Vec<_>>() {
        bail!("{perm:?} is not a permutation of {} axes", tmp.len());
    }
    try_map_array!(t, a => {
        let x = ArrayD::from_shape_vec(IxDyn(tmp), a.iter().cloned().collect())?;
        let y = x.permuted_axes(IxDyn(perm));
        ArrayD::from_shape_vec(IxDyn(out), y.iter().cloned().collect()).map_err(anyhow::Error::from)
    })
}

fn views_like<'a, T: Elem>(_like: &ArrayD<T>, ts: &[&'a Tensor]) -> Result<Vec<ArrayViewD<'a, T>>> {
    ts.iter().map(|t| array_of::<T>(t).map(|a| a.view()).ok_or_else(|| anyhow!("mixed element types"))).collect()
}

/// Concatenation along `axis` (shapes already checked by the caller's plan).
pub fn concat(ts: &[&Tensor], axis: usize) -> Result<Tensor> {
    let Some(first) = ts.first() else { bail!("Concat needs at least one input") };
    if let Some(t) = ts.iter().find(|t| t.dtype() != first.dtype()) {
        bail!("Concat: inputs mix {} and {}", first.dtype(), t.dtype());
    }
    try_map_array!(*first, a => {
        let views = views_like(a, ts)?;
        ndarray::concatenate(Axis(axis), &views).map_err(anyhow::Error::from)
    })
}

/// Zeroes everything outside the triangle: kept where `j - i >= k` (upper) or `<= k` (lower).
pub fn trilu(t: &Tensor, upper: bool, k: i64) -> Result<Tensor> {
    let r = t.rank();
    if r < 2 {
        bail!("Trilu: input must have rank >= 2, got shape {:?}", t.shape());
    }
    try_map_array!(t, a => {
        let mut out = a.clone();
        for (idx, v) in out.indexed_iter_mut() {
            let d = idx[r - 1] as i64 - idx[r - 2] as i64;
            if (upper && d < k) || (!upper && d > k) {
                *v = Default::default();
            }
        }
        Ok::<_, anyhow::Error>(out)
    })
}

/// Reverses the first `lens[b]` elements along `time` of each batch entry `b`.
pub fn reverse_sequence(t: &Tensor, lens: &[usize], batch: usize, time: usize) -> Result<Tensor> {
    let shape = t.shape();
    if batch >= shape.len() || time >= shape.len() || lens.len() != shape[batch] || lens.iter().any(|&l| l > shape[time]) {
        bail!("ReverseSequence: sequence_lens {lens:?} do not fit shape {shape:?}");
    }
    try_map_array!(t, a => Ok::<_, anyhow::Error>(ArrayD::from_shape_fn(a.raw_dim(), |idx| {
        let mut src = idx.clone();
        let l = lens[idx[batch]];
        if idx[time] < l {
            src[time] = l - 1 - idx[time];
        }
        a[src].clone()
    })))
}

/// Slice's per-axis maps (ONNX clamping rules, negative steps included).
pub fn slice_maps(
    x: &[usize],
    starts: &[i64],
    ends: &[i64],
    axes: Option<&[i64]>,
    steps: Option<&[i64]>,
) -> Result<Vec<AxisMap>> {
    let n = starts.len();
    let default_axes: Vec<i64> = (0..n as i64).collect();
    let axes = axes.unwrap_or(&default_axes);
    let ones = vec![1; n];
    let steps = steps.unwrap_or(&ones);
    if ends.len() != n || axes.len() != n || steps.len() != n {
        bail!("Slice: starts, ends, axes and steps have lengths {n}, {}, {}, {}", ends.len(), axes.len(), steps.len());
    }
    let axes = shape::axes(axes, x.len()).map_err(|e| anyhow!("Slice: {e}"))?;
    // Each output axis is at most as long as the input's.
    let mut maps = identities(x, "Slice")?;
    for i in 0..n {
        let (a, step) = (axes[i], steps[i] as i128);
        let dim = x[a] as i128;
        if step == 0 {
            bail!("Slice: step 0 on axis {a}");
        }
        let resolve = |v: i64| if v < 0 { v as i128 + dim } else { v as i128 };
        let (start, end) = (resolve(starts[i]), resolve(ends[i]));
        let (start, end) = if step > 0 {
            (start.clamp(0, dim), end.clamp(0, dim))
        } else {
            (start.clamp(0, (dim - 1).max(0)), end.clamp(-1, dim - 1))
        };
        let len = if dim == 0 {
            0
        } else if step > 0 {
            if end > start { (end - start + step - 1) / step } else { 0 }
        } else if start > end {
            (start - end + (-step) - 1) / (-step)
        } else {
            0
        };
        maps[a] = (0..len).map(|k| Some((start + k * step) as usize)).collect();
    }
    Ok(maps)
}

/// Pad modes (`wrap` from opset 19).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PadMode {
    Constant,
    Reflect,
    Edge,
    Wrap,
}

impl PadMode {
    pub fn parse(s: &str) -> Option<PadMode> {
        Some(match s {
            "constant" => PadMode::Constant,
            "reflect" => PadMode::Reflect,
            "edge" => PadMode::Edge,
            "wrap" => PadMode::Wrap,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            PadMode::Constant => "constant",
            PadMode::Reflect => "reflect",
            PadMode::Edge => "edge",
            PadMode::Wrap => "wrap",
        }
    }
}

/// Pad's per-axis maps. `pads` is `[begin per axis…, end per axis…]`; a negative pad crops,
/// and the non-constant modes then reflect / repeat / wrap the cropped data.
pub fn pad_maps(x: &[usize], pads: &[i64], axes: Option<&[i64]>, mode: PadMode) -> Result<Vec<AxisMap>> {
    let all: Vec<i64> = (0..x.len() as i64).collect();
    let axes = shape::axes(axes.unwrap_or(&all), x.len()).map_err(|e| anyhow!("Pad: {e}"))?;
    if pads.len() != 2 * axes.len() {
        bail!("Pad: {} pads for {} axes (need twice as many)", pads.len(), axes.len());
    }
    let mut maps = identities(x, "Pad")?;
    for (i, &a) in axes.iter().enumerate() {
        let (begin, end, dim) = (pads[i] as i128, pads[axes.len() + i] as i128, x[a] as i128);
        // The kept input range [lo, hi), then the padding around it.
        let (lo, hi) = ((-begin).max(0), dim - (-end).max(0));
        if hi < lo {
            bail!("Pad: pads {begin}, {end} crop more than axis {a} of size {dim}");
        }
        let n = hi - lo;
        let (begin, end) = (begin.max(0), end.max(0));
        let len = dim_len(n + begin + end, "Pad")?;
        if mode != PadMode::Constant && n == 0 && len > 0 {
            bail!("Pad: cannot pad an empty axis {a} in {} mode", mode.as_str());
        }
        room(&maps, a, len, "Pad")?;
        maps[a] = (0..len as i128)
            .map(|o| {
                let j = o - begin;
                let j = if (0..n).contains(&j) {
                    j
                } else {
                    match mode {
                        PadMode::Constant => return None,
                        PadMode::Edge => j.clamp(0, n - 1),
                        PadMode::Wrap => j.rem_euclid(n),
                        PadMode::Reflect if n == 1 => 0,
                        PadMode::Reflect => {
                            let m = j.rem_euclid(2 * (n - 1));
                            if m >= n { 2 * (n - 1) - m } else { m }
                        }
                    }
                };
                Some((lo + j) as usize)
            })
            .collect();
    }
    Ok(maps)
}

/// Tile's per-axis maps: each axis repeated `repeats[d]` times.
pub fn tile_maps(x: &[usize], repeats: &[i64]) -> Result<Vec<AxisMap>> {
    if repeats.len() != x.len() {
        bail!("Tile: {} repeats for rank {}", repeats.len(), x.len());
    }
    let lens = x
        .iter()
        .zip(repeats)
        .map(|(&d, &r)| {
            if r < 0 {
                bail!("Tile: negative repeat {r}");
            }
            dim_len(d as i128 * r as i128, "Tile")
        })
        .collect::<Result<Vec<usize>>>()?;
    limits::index_maps(&lens, "Tile")?;
    Ok(x.iter().zip(lens).map(|(&d, len)| (0..len).map(|o| Some(o % d)).collect()).collect())
}

/// CenterCropPad's per-axis maps: crop centred (rounding the start down), pad centred (the
/// extra element on the right), with zeros.
pub fn center_crop_pad_maps(x: &[usize], target: &[i64], axes: Option<&[i64]>) -> Result<Vec<AxisMap>> {
    let all: Vec<i64> = (0..x.len() as i64).collect();
    let axes = shape::axes(axes.unwrap_or(&all), x.len()).map_err(|e| anyhow!("CenterCropPad: {e}"))?;
    if target.len() != axes.len() {
        bail!("CenterCropPad: shape has {} values for {} axes", target.len(), axes.len());
    }
    let mut maps = identities(x, "CenterCropPad")?;
    for (&a, &t) in axes.iter().zip(target) {
        let (t, dim) = (dim_len(t as i128, "CenterCropPad")?, x[a]);
        room(&maps, a, t, "CenterCropPad")?;
        maps[a] = if t <= dim {
            let off = (dim - t) / 2;
            (0..t).map(|o| Some(o + off)).collect()
        } else {
            let off = (t - dim) / 2;
            (0..t).map(|o| o.checked_sub(off).filter(|&i| i < dim)).collect()
        };
    }
    Ok(maps)
}

/// Split's per-output maps: explicit sizes, or `n` equal parts (the last one smaller when the
/// axis does not divide evenly, as in opset 18).
pub fn split_maps(x: &[usize], axis: usize, split: Option<&[i64]>, n: usize) -> Result<Vec<Vec<AxisMap>>> {
    let dim = x[axis];
    let sizes: Vec<usize> = match split {
        Some(s) => {
            let sizes = s
                .iter()
                .map(|&v| usize::try_from(v).map_err(|_| anyhow!("Split: negative size in {s:?}")))
                .collect::<Result<Vec<_>>>()?;
            if sizes.iter().try_fold(0usize, |a, &s| a.checked_add(s)) != Some(dim) {
                bail!("Split: sizes {s:?} do not add up to dim {dim} of axis {axis}");
            }
            sizes
        }
        None if n == 0 || n > 1 << 16 => bail!("Split: cannot make {n} outputs"),
        // Parts of ceil(dim / n), cut off at the end of the axis. Where that leaves nothing for
        // the last parts (dim 5 into 4: 2, 2, 1, 0) they come out short or empty, as in the
        // ONNX reference implementation (onnxruntime rejects such a node).
        None => {
            let part = dim.div_ceil(n);
            (0..n).map(|i| (part * (i + 1)).min(dim) - (part * i).min(dim)).collect()
        }
    };
    // Every part's maps are at most the input's; all parts together hold n times them.
    limits::index_maps(&x.iter().map(|&d| d.saturating_mul(sizes.len())).collect::<Vec<_>>(), "Split")?;
    let mut offset = 0;
    Ok(sizes
        .iter()
        .map(|&s| {
            let mut maps: Vec<AxisMap> = x.iter().map(|&d| identity(d)).collect();
            maps[axis] = (offset..offset + s).map(Some).collect();
            offset += s;
            maps
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(maps: &[AxisMap]) -> Vec<Vec<Option<usize>>> {
        maps.to_vec()
    }

    #[test]
    fn slice_clamps_like_onnx() {
        let m = |s, e, st| slice_maps(&[5], &[s], &[e], None, Some(&[st])).unwrap()[0].clone();
        let s = |v: &[usize]| v.iter().map(|&i| Some(i)).collect::<AxisMap>();
        assert_eq!(m(1, 3, 1), s(&[1, 2]));
        assert_eq!(m(-4, -1, 2), s(&[1, 3]));
        assert_eq!(m(0, i64::MAX, 3), s(&[0, 3]));
        assert_eq!(m(i64::MAX, i64::MIN, -1), s(&[4, 3, 2, 1, 0]));
        assert_eq!(m(-1, -6, -2), s(&[4, 2, 0]));
        // The spec clamps start to [0, dim-1] for negative steps, so this reads element 0 (numpy
        // would give nothing; onnxruntime follows the spec).
        assert_eq!(m(-100, -200, -1), s(&[0]));
        assert_eq!(m(10, 20, 1), s(&[]));
        assert_eq!(m(3, 1, 1), s(&[]));
        assert!(slice_maps(&[5], &[0], &[1], None, Some(&[0])).is_err());
        assert!(slice_maps(&[5], &[0], &[1, 2], None, None).is_err());
        assert!(slice_maps(&[5, 2], &[0, 0], &[1, 1], Some(&[0, -2]), None).is_err());
        assert_eq!(slice_maps(&[0], &[0], &[-1], None, Some(&[-1])).unwrap()[0], s(&[]));
    }

    #[test]
    fn pad_modes_match_numpy() {
        let m = |mode, b, e| -> Vec<usize> {
            pad_maps(&[3], &[b, e], None, mode).unwrap()[0].iter().map(|o| o.unwrap_or(9)).collect()
        };
        // np.pad([0,1,2], (5,6), mode)
        assert_eq!(m(PadMode::Reflect, 5, 6), vec![1, 0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2, 1, 0]);
        assert_eq!(m(PadMode::Wrap, 5, 6), vec![1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2]);
        assert_eq!(m(PadMode::Edge, 2, 1), vec![0, 0, 0, 1, 2, 2]);
        assert_eq!(m(PadMode::Constant, 1, 2), vec![9, 0, 1, 2, 9, 9]);
        // Negative pads crop first.
        assert_eq!(m(PadMode::Constant, -1, 1), vec![1, 2, 9]);
        assert_eq!(m(PadMode::Reflect, -1, 2), vec![1, 2, 1, 2]);
        assert!(pad_maps(&[3], &[-2, -2], None, PadMode::Constant).is_err());
        assert!(pad_maps(&[0], &[1, 0], None, PadMode::Edge).is_err());
        assert_eq!(pad_maps(&[0], &[1, 0], None, PadMode::Constant).unwrap()[0], vec![None]);
        assert!(pad_maps(&[3], &[1], None, PadMode::Constant).is_err());
        assert!(pad_maps(&[3], &[1, i64::MAX], None, PadMode::Constant).is_err());
        let two = pad_maps(&[2, 2], &[1, 0], Some(&[-1]), PadMode::Edge).unwrap();
        assert_eq!(flat(&two), vec![vec![Some(0), Some(1)], vec![Some(0), Some(0), Some(1)]]);
    }

    #[test]
    fn split_sizes() {
        let lens = |split: Option<&[i64]>, n| -> Vec<usize> {
            split_maps(&[7, 2], 0, split, n).unwrap().iter().map(|m| m[0].len()).collect()
        };
        assert_eq!(lens(None, 3), vec![3, 3, 1]);
        assert_eq!(lens(None, 7), vec![1; 7]);
        assert_eq!(lens(Some(&[2, 0, 5]), 0), vec![2, 0, 5]);
        assert_eq!(lens(None, 6), vec![2, 2, 2, 1, 0, 0]);
        assert!(split_maps(&[5], 0, Some(&[2, 2]), 2).is_err());
        assert!(split_maps(&[5], 0, Some(&[6, -1]), 2).is_err());
        assert!(split_maps(&[5], 0, None, 0).is_err());
    }

    #[test]
    fn center_crop_pad_offsets() {
        let m = |dim: usize, t| center_crop_pad_maps(&[dim], &[t], None).unwrap()[0].clone();
        assert_eq!(m(5, 2), vec![Some(1), Some(2)]);
        assert_eq!(m(2, 5), vec![None, Some(0), Some(1), None, None]);
        assert!(center_crop_pad_maps(&[2], &[-1], None).is_err());
        assert!(center_crop_pad_maps(&[2], &[1, 1], None).is_err());
    }

    #[test]
    fn gather_rejects_bad_maps() {
        let a = ArrayD::from_elem(IxDyn(&[2]), 1.0f32);
        assert!(gather(&a, &[vec![Some(2)]], &0.0).is_err());
        assert!(gather(&a, &[], &0.0).is_err());
    }
}
