//! Writing blocks back into place: Col2Im (the adjoint of im2col: every column entry is
//! added into the image pixel its block covers) and TensorScatter (a KV-cache update).

use super::Window;
use crate::ir::ValueType;
use crate::ir::shape::axis as resolve_axis;
use crate::tensor::{ArrayD, DType, IxDyn, Tensor};
use crate::try_map_array;
use anyhow::{Result, bail};

fn prod(v: &[usize]) -> usize {
    v.iter().product()
}

/// Row-major multi-index of flat index `i` in `shape`.
fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for (k, &d) in shape.iter().enumerate().rev() {
        if d > 0 {
            idx[k] = i % d;
            i /= d;
        }
    }
    idx
}

/// Checked sizes of one Col2Im: input (N, C*K, L) with K = prod(block_shape) and L the number
/// of block positions; output (N, C, image_shape...).
pub struct Geometry {
    dtype: DType,
    n: usize,
    c: usize,
    image: Vec<usize>,
    block: Vec<usize>,
    /// Block positions along each axis.
    blocks: Vec<usize>,
    w: Window,
}

impl Geometry {
    pub fn new(w: &Window, x: &ValueType, image: &[i64], block: &[i64]) -> Result<Geometry> {
        if !x.dtype.is_numeric() || x.dtype.is_low() {
            bail!("Col2Im: dtype {} is not supported (numeric types only)", x.dtype);
        }
        let r = w.rank();
        if image.len() != r || block.len() != r || image.iter().any(|&v| v < 0) || block.iter().any(|&v| v < 1) {
            bail!("Col2Im: image_shape {image:?} and block_shape {block:?} must hold {r} sizes (blocks >= 1)");
        }
        let image: Vec<usize> = image.iter().map(|&v| v as usize).collect();
        let block: Vec<usize> = block.iter().map(|&v| v as usize).collect();
        let k = prod(&block);
        if x.rank() != 3 || x.shape[1] % k != 0 {
            bail!("Col2Im: input {x} must be (N, C*{k}, L) for block_shape {block:?}");
        }
        let blocks = w.positions("Col2Im", &image, &block)?;
        if x.shape[2] != prod(&blocks) {
            bail!("Col2Im: input {x} has {} block positions, but the geometry gives {blocks:?}", x.shape[2]);
        }
        Ok(Geometry { dtype: x.dtype, n: x.shape[0], c: x.shape[1] / k, image, block, blocks, w: w.clone() })
    }

    fn out_shape(&self) -> Vec<usize> {
        let mut s = vec![self.n, self.c];
        s.extend(&self.image);
        s
    }

    pub fn output_type(&self) -> ValueType {
        ValueType::new(self.dtype, self.out_shape())
    }

    /// For every (kernel tap, block position) column entry, the image pixel it lands on.
    fn targets(&self) -> Vec<Option<usize>> {
        let (k, l, r) = (prod(&self.block), prod(&self.blocks), self.w.rank());
        let mut out = Vec::with_capacity(k * l);
        for kk in 0..k {
            let tap = unravel(kk, &self.block);
            for col in 0..l {
                let pos = unravel(col, &self.blocks);
                let mut flat = 0;
                let mut inside = true;
                for d in 0..r {
                    let i = (pos[d] * self.w.strides[d] + tap[d] * self.w.dilations[d]) as i64 - self.w.pads[d] as i64;
                    inside &= i >= 0 && (i as usize) < self.image[d];
                    flat = flat * self.image[d] + i.max(0) as usize;
                }
                out.push(inside.then_some(flat));
            }
        }
        out
    }

    /// Accumulates column entries into the image with `add`, starting from `zero`.
    fn fold<T: Copy>(&self, x: &[T], zero: T, add: impl Fn(T, T) -> T) -> Vec<T> {
        let targets = self.targets();
        let (ip, kl) = (prod(&self.image), targets.len());
        let mut out = vec![zero; self.n * self.c * ip];
        for b in 0..self.n {
            for ch in 0..self.c {
                let src = &x[(b * self.c + ch) * kl..][..kl];
                let dst = &mut out[(b * self.c + ch) * ip..][..ip];
                for (&v, t) in src.iter().zip(&targets) {
                    if let Some(t) = *t {
                        dst[t] = add(dst[t], v);
                    }
                }
            }
        }
        out
    }

    /// Integers add with wrap-around (as numpy does), floats in f64 rounded once.
    pub fn eval(&self, x: &Tensor) -> Result<Tensor> {
        let shape = self.out_shape();
        if self.dtype.is_int() {
            let v = self.fold(&x.to_i64_vec()?, 0i64, i64::wrapping_add);
            Tensor::from_vec(&shape, v)?.cast(self.dtype)
        } else {
            let v = self.fold(&x.to_f64_vec()?, 0f64, |a, b| a + b);
            Tensor::from_f64_array(self.dtype, ArrayD::from_shape_vec(IxDyn(&shape), v)?)
        }
    }
}

/// Checks TensorScatter's inputs; returns the resolved sequence axis.
pub fn tensor_scatter_check(axis: i64, past: &ValueType, upd: &ValueType, wi: Option<&ValueType>) -> Result<usize> {
    if past.dtype != upd.dtype {
        bail!("TensorScatter: update has dtype {}, past_cache has {}", upd.dtype, past.dtype);
    }
    let a = resolve_axis(axis, past.rank())?;
    if a == 0 {
        bail!("TensorScatter: axis {axis} is the batch axis");
    }
    let fits = past.rank() == upd.rank() && (0..past.rank()).all(|i| if i == a { upd.shape[i] <= past.shape[i] } else { upd.shape[i] == past.shape[i] });
    if !fits {
        bail!("TensorScatter: update {upd} does not fit past_cache {past} along axis {a}");
    }
    if let Some(w) = wi
        && (w.shape != [past.shape[0]] || !w.dtype.is_int() || w.dtype.is_low())
    {
        bail!("TensorScatter: write_indices {w} must be an int64 tensor of shape [{}]", past.shape[0]);
    }
    Ok(a)
}

/// Borrows `t`'s array as the element type of `like` (the caller checked the dtypes match).
fn same_type<'a, T: 'static>(_like: &ArrayD<T>, t: &'a Tensor) -> Result<&'a ArrayD<T>> {
    crate::with_array!(t, b => (b as &dyn std::any::Any).downcast_ref::<ArrayD<T>>())
        .ok_or_else(|| anyhow::anyhow!("TensorScatter: update's element type differs from past_cache's"))
}

pub fn tensor_scatter(circular: bool, axis: i64, past: &Tensor, upd: &Tensor, wi: Option<&Tensor>) -> Result<Tensor> {
    let a = tensor_scatter_check(axis, &ValueType::of(past), &ValueType::of(upd), wi.map(ValueType::of).as_ref())?;
    let (ps, us) = (past.shape().to_vec(), upd.shape().to_vec());
    let write = match wi {
        Some(w) => w.to_i64_vec()?,
        None => vec![0; ps[0]],
    };
    let max_len = ps[a] as i64;
    // The flat destination in past_cache of every update element.
    let mut dest = Vec::with_capacity(prod(&us));
    for i in 0..prod(&us) {
        let mut idx = unravel(i, &us);
        let mut s = write[idx[0]] + idx[a] as i64;
        if circular {
            s = s.rem_euclid(max_len.max(1));
        }
        if s < 0 || s >= max_len {
            bail!("TensorScatter: write index {} + {} is outside the cache length {max_len}", write[idx[0]], idx[a]);
        }
        idx[a] = s as usize;
        dest.push(idx.iter().zip(&ps).fold(0, |f, (&i, &d)| f * d + i));
    }
    try_map_array!(past, p => {
        let u = same_type(p, upd)?;
        let mut out: Vec<_> = p.iter().cloned().collect();
        for (&d, v) in dest.iter().zip(u.iter()) {
            out[d] = v.clone();
        }
        ArrayD::from_shape_vec(IxDyn(&ps), out).map_err(anyhow::Error::from)
    })
}
