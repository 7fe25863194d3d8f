//! Box ops: RoiAlign and NonMaxSuppression, following the ONNX reference implementation
//! (itself a port of onnxruntime's CPU kernels) step by step.

use super::{Spatial, need_float};
use crate::ir::ValueType;
use crate::tensor::{ArrayD, DType, IxDyn, Tensor};
use anyhow::{Result, bail};
use num_traits::Float;

/// Y's type: (num_rois, C, output_height, output_width).
pub fn roi_align_type(x: &ValueType, rois: &ValueType, bi: &ValueType, oh: usize, ow: usize) -> Result<ValueType> {
    need_float("RoiAlign", "X", x.dtype)?;
    if rois.dtype != x.dtype {
        bail!("RoiAlign: rois has dtype {}, X has {}", rois.dtype, x.dtype);
    }
    if !bi.dtype.is_int() || bi.dtype.is_low() {
        bail!("RoiAlign: batch_indices has dtype {} (int64 expected)", bi.dtype);
    }
    let r = rois.shape.first().copied().unwrap_or(0);
    if x.rank() != 4 || rois.shape != [r, 4] || bi.shape != [r] {
        bail!("RoiAlign: X {x} must be (N, C, H, W), rois {rois} (R, 4) and batch_indices {bi} (R)");
    }
    Ok(ValueType::new(x.dtype, vec![r, x.shape[1], oh, ow]))
}

/// One bilinear sample: four flat offsets in an (H, W) plane and their weights (all zero
/// for a sample outside the feature map).
#[derive(Clone, Copy, Default)]
struct Sample {
    pos: [usize; 4],
    w: [f64; 4],
}

fn bilinear_sample(y: f64, x: f64, height: usize, width: usize) -> Sample {
    let (h, w) = (height as f64, width as f64);
    if y < -1.0 || y > h || x < -1.0 || x > w || height == 0 || width == 0 {
        return Sample::default();
    }
    let (mut y, mut x) = (y.max(0.0), x.max(0.0));
    let (mut y_low, mut x_low) = (y as usize, x as usize);
    let y_high = if y_low >= height - 1 {
        y_low = height - 1;
        y = y_low as f64;
        y_low
    } else {
        y_low + 1
    };
    let x_high = if x_low >= width - 1 {
        x_low = width - 1;
        x = x_low as f64;
        x_low
    } else {
        x_low + 1
    };
    let (ly, lx) = (y - y_low as f64, x - x_low as f64);
    let (hy, hx) = (1.0 - ly, 1.0 - lx);
    Sample {
        pos: [y_low * width + x_low, y_low * width + x_high, y_high * width + x_low, y_high * width + x_high],
        w: [hy * hx, hy * lx, ly * hx, ly * lx],
    }
}

pub fn roi_align(op: &Spatial, x: &Tensor, rois: &Tensor, bi: &Tensor) -> Result<Tensor> {
    let &Spatial::RoiAlign { half_pixel, max, output_height: oh, output_width: ow, sampling_ratio, spatial_scale } = op else {
        bail!("roi_align called for {op:?}");
    };
    let ty = roi_align_type(&ValueType::of(x), &ValueType::of(rois), &ValueType::of(bi), oh, ow)?;
    let (n, c, height, width) = (x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]);
    let (xv, rv, bv) = (x.to_f64_vec()?, rois.to_f64_vec()?, bi.to_i64_vec()?);
    let scale = spatial_scale as f64;
    let offset = if half_pixel { 0.5 } else { 0.0 };
    let plane = height * width;
    let mut out = Vec::with_capacity(ty.len());
    for (roi, &b) in rv.chunks(4).zip(&bv) {
        if b < 0 || b as usize >= n {
            bail!("RoiAlign: batch index {b} is out of range for {n} images");
        }
        let [start_w, start_h, end_w, end_h] = [0, 1, 2, 3].map(|i| roi[i] * scale - offset);
        let (mut roi_w, mut roi_h) = (end_w - start_w, end_h - start_h);
        if !half_pixel {
            // Malformed ROIs are forced to 1x1.
            roi_w = roi_w.max(1.0);
            roi_h = roi_h.max(1.0);
        }
        let (bin_h, bin_w) = (roi_h / oh as f64, roi_w / ow as f64);
        let grid = |size: f64, out: usize| if sampling_ratio > 0 { sampling_ratio } else { (size / out as f64).ceil() as i64 };
        let (gh, gw) = (grid(roi_h, oh), grid(roi_w, ow));
        // Sample points per ROI and channel (bounded: absurd ROIs would run for ever).
        if gh.max(0) as u128 * gw.max(0) as u128 * oh as u128 * ow as u128 > 1 << 28 {
            bail!("RoiAlign: ROI {roi:?} needs {gh}x{gw} samples per bin, too many to compute");
        }
        let count = gh.saturating_mul(gw).max(1) as f64;
        // Samples per output bin, shared by all channels.
        let mut bins: Vec<Vec<Sample>> = Vec::with_capacity(oh * ow);
        for ph in 0..oh {
            for pw in 0..ow {
                let mut s = Vec::new();
                for iy in 0..gh.max(0) {
                    let y = start_h + ph as f64 * bin_h + (iy as f64 + 0.5) * bin_h / gh as f64;
                    for ix in 0..gw.max(0) {
                        let x = start_w + pw as f64 * bin_w + (ix as f64 + 0.5) * bin_w / gw as f64;
                        s.push(bilinear_sample(y, x, height, width));
                    }
                }
                bins.push(s);
            }
        }
        for ch in 0..c {
            let data = &xv[(b as usize * c + ch) * plane..][..plane];
            for samples in &bins {
                let terms = samples.iter().map(|s| [0, 1, 2, 3].map(|i| s.w[i] * data.get(s.pos[i]).copied().unwrap_or(0.0)));
                out.push(if max {
                    // The reference takes the largest weighted corner, not the interpolated value.
                    terms.map(|t| t.into_iter().fold(f64::NEG_INFINITY, f64::max)).reduce(f64::max).unwrap_or(0.0)
                } else {
                    terms.map(|t| t.iter().sum::<f64>()).sum::<f64>() / count
                });
            }
        }
    }
    Tensor::from_f64_array(x.dtype(), ArrayD::from_shape_vec(IxDyn(&ty.shape), out)?)
}

/// NonMaxSuppression over constant inputs (boxes, scores, max_output_boxes_per_class,
/// iou_threshold, score_threshold): the selected (batch, class, box) triples, in order.
/// Computes in the boxes' precision (f32 unless they are f64), as the reference does.
pub fn nms(center_point_box: bool, ins: [Option<&Tensor>; 5]) -> Result<Vec<[i64; 3]>> {
    let [Some(boxes), Some(scores), max_out, iou, score_thr] = ins else {
        bail!("NonMaxSuppression: boxes and scores are required");
    };
    need_float("NonMaxSuppression", "boxes", boxes.dtype())?;
    if scores.dtype() != boxes.dtype() {
        bail!("NonMaxSuppression: scores has dtype {}, boxes has {}", scores.dtype(), boxes.dtype());
    }
    let (bs, ss) = (boxes.shape(), scores.shape());
    if bs.len() != 3 || bs[2] != 4 || ss.len() != 3 || ss[0] != bs[0] || ss[2] != bs[1] {
        bail!("NonMaxSuppression: boxes {bs:?} must be (B, n, 4) and scores {ss:?} (B, classes, n)");
    }
    let first = |t: Option<&Tensor>| -> Result<Option<f64>> { Ok(t.map(|t| t.to_f64_vec()).transpose()?.and_then(|v| v.first().copied())) };
    let max_out = match max_out {
        Some(t) => t.to_i64_vec()?.first().copied().unwrap_or(0).max(0) as usize,
        None => 0,
    };
    let iou = first(iou)?.unwrap_or(0.0);
    let score_thr = first(score_thr)?;
    let dims = (bs[0], ss[1], bs[1]);
    if boxes.dtype() == DType::F64 {
        nms_in::<f64>(center_point_box, &boxes.to_f64_vec()?, &scores.to_f64_vec()?, dims, max_out, iou, score_thr)
    } else {
        let f = |t: &Tensor| -> Result<Vec<f32>> { Ok(t.to_f64_vec()?.iter().map(|&v| v as f32).collect()) };
        nms_in::<f32>(center_point_box, &f(boxes)?, &f(scores)?, dims, max_out, iou, score_thr)
    }
}

fn nms_in<T: Float>(
    center: bool,
    boxes: &[T],
    scores: &[T],
    (batches, classes, n): (usize, usize, usize),
    max_out: usize,
    iou: f64,
    score_thr: Option<f64>,
) -> Result<Vec<[i64; 3]>> {
    let cv = |v: f64| T::from(v).unwrap_or(T::nan());
    let (iou, score_thr) = (cv(iou), score_thr.map(cv));
    let mut selected = Vec::new();
    if max_out == 0 {
        return Ok(selected);
    }
    for b in 0..batches {
        let bb = &boxes[b * n * 4..(b + 1) * n * 4];
        for c in 0..classes {
            let sc = &scores[(b * classes + c) * n..][..n];
            let mut cand: Vec<usize> = (0..n).filter(|&i| score_thr.is_none_or(|t| sc[i] > t)).collect();
            // Highest score first; equal scores keep the lower index first.
            cand.sort_by(|&i, &j| {
                let (si, sj) = (sc[i].to_f64().unwrap_or(f64::NAN), sc[j].to_f64().unwrap_or(f64::NAN));
                sj.total_cmp(&si).then(i.cmp(&j))
            });
            let mut kept: Vec<usize> = Vec::new();
            for i in cand {
                if kept.len() >= max_out {
                    break;
                }
                if !kept.iter().any(|&k| suppress(&bb[i * 4..i * 4 + 4], &bb[k * 4..k * 4 + 4], center, iou)) {
                    kept.push(i);
                    selected.push([b as i64, c as i64, i as i64]);
                }
            }
        }
    }
    Ok(selected)
}

/// Whether two boxes overlap by more than `thr` (intersection over union).
fn suppress<T: Float>(b1: &[T], b2: &[T], center: bool, thr: T) -> bool {
    let two = T::one() + T::one();
    // (x_min, x_max, y_min, y_max) of a box.
    let extent = |b: &[T]| {
        if center {
            let (hw, hh) = (b[2] / two, b[3] / two);
            (b[0] - hw, b[0] + hw, b[1] - hh, b[1] + hh)
        } else {
            (b[1].min(b[3]), b[1].max(b[3]), b[0].min(b[2]), b[0].max(b[2]))
        }
    };
    let (ax0, ax1, ay0, ay1) = extent(b1);
    let (bx0, bx1, by0, by1) = extent(b2);
    let (ix0, ix1) = (ax0.max(bx0), ax1.min(bx1));
    if ix1 <= ix0 {
        return false;
    }
    let (iy0, iy1) = (ay0.max(by0), ay1.min(by1));
    if iy1 <= iy0 {
        return false;
    }
    let inter = (ix1 - ix0) * (iy1 - iy0);
    if inter <= T::zero() {
        return false;
    }
    let a1 = (ax1 - ax0) * (ay1 - ay0);
    let a2 = (bx1 - bx0) * (by1 - by0);
    let union = a1 + a2 - inter;
    if a1 <= T::zero() || a2 <= T::zero() || union <= T::zero() {
        return false;
    }
    inter / union > thr
}
