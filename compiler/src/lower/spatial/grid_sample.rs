//! Sampling at run-time positions: GridSample and AffineGrid.
//!
//! GridSample follows the reference evaluation (`ir/ops/spatial/grid.rs`) step by step, in
//! three kinds of loops over the grid points (the grid is data, so nothing is known at
//! compile time):
//! 1. per spatial axis, the denormalised coordinate (computed in f64, rounded to f32 as the
//!    reference's float32 array is; `nearest` rounds half to even), then moved by the
//!    padding mode when outside the valid range (border: clamped, reflection: folded and
//!    rounded to f32 again), into an f64 table `coord[n, p, axis]`;
//! 2. per axis and tap, the tap's source index through the padding mode again (zeros: -1,
//!    read as zero; border: clamped; reflection: folded and clamped) and its weight
//!    (linear: 1-t, t; cubic: Keys' coefficients with a = -0.75), into tables
//!    `idx[n, p, axis, tap]` (i64) and `wt[n, p, axis, tap]` (f64);
//! 3. per output element, the sum over the tensor product of the axes' taps of the weight
//!    product times the data-dependent load, in the reference's order, in f64, rounded once
//!    to the output type. Taps reading outside (zeros padding) contribute exactly 0, so
//!    infinities elsewhere in the image do not leak in. `nearest` picks its one tap in the
//!    input's own dtype (any dtype).
//!
//! AffineGrid is one loop: each grid point is theta times the homogeneous base coordinate,
//! in f64 in the reference's order.

use anyhow::{Result, anyhow, bail};

use crate::lower::Lw;
use crate::kernel_ir::build::{bin, float, int, load};
use crate::kernel_ir::{Access, BinOp, Expr, Lit, Loop, Mem, Step, UnOp, dense_strides};
use crate::ir::ops::spatial::{Interp, Padding};
use crate::ir::{NodeId, ValueType};
use crate::tensor::DType;

const F: DType = DType::F64;

/// `v` rounded to f32 and back (the reference's float32 coordinates).
fn f32r(v: Expr) -> Expr {
    Expr::cast(F, Expr::cast(DType::F32, v))
}

fn clamp(v: Expr, lo: Expr, hi: Expr) -> Expr {
    bin(BinOp::Min, bin(BinOp::Max, v, lo), hi)
}

/// The reference's `reflect(x, lo, hi)` on an f64 expression: folds `x` into `[lo, hi]` at
/// the nearer border, as many times as needed.
fn reflect(x: Expr, lo: f64, hi: f64) -> Expr {
    let range = hi - lo;
    if range <= 0.0 {
        return float(lo);
    }
    // dx ≥ 0 past the border; n = trunc(dx / range) whole folds, r the rest.
    let fold = |dx: Expr, near: f64, far: f64, toward_far: BinOp, back: BinOp| -> Expr {
        let n = Expr::un(UnOp::Trunc, bin(BinOp::Div, dx.clone(), float(range)));
        let r = bin(BinOp::Sub, dx, bin(BinOp::Mul, n.clone(), float(range)));
        // n is a whole number ≥ 0: even when trunc(n / 2) · 2 == n.
        let even = bin(BinOp::Eq, bin(BinOp::Mul, Expr::un(UnOp::Trunc, bin(BinOp::Mul, n.clone(), float(0.5))), float(2.0)), n);
        Expr::select(even, bin(toward_far, float(near), r.clone()), bin(back, float(far), r))
    };
    let below = fold(bin(BinOp::Sub, float(lo), x.clone()), lo, hi, BinOp::Add, BinOp::Sub);
    let above = fold(bin(BinOp::Sub, x.clone(), float(hi)), hi, lo, BinOp::Sub, BinOp::Add);
    Expr::select(bin(BinOp::Lt, x.clone(), float(lo)), below, Expr::select(bin(BinOp::Gt, x.clone(), float(hi)), above, x))
}

/// Keys' cubic convolution weight (a = -0.75) of tap `j` (at -1, 0, 1, 2) around `t`.
fn cubic_weight(t: Expr, j: usize) -> Expr {
    let a = -0.75;
    let x = Expr::un(UnOp::Abs, t);
    let mul = |p: Expr, q: Expr| bin(BinOp::Mul, p, q);
    let far = |x: Expr| {
        let p = bin(BinOp::Sub, mul(float(a), x.clone()), float(5.0 * a));
        let p = bin(BinOp::Add, mul(p, x.clone()), float(8.0 * a));
        bin(BinOp::Sub, mul(p, x), float(4.0 * a))
    };
    let near = |x: Expr| {
        let p = bin(BinOp::Sub, mul(float(a + 2.0), x.clone()), float(a + 3.0));
        bin(BinOp::Add, mul(mul(p, x.clone()), x), float(1.0))
    };
    match j {
        0 => far(bin(BinOp::Add, x, float(1.0))),
        1 => near(x),
        2 => near(bin(BinOp::Sub, float(1.0), x)),
        _ => far(bin(BinOp::Sub, float(2.0), x)),
    }
}

pub(super) fn grid_sample(lw: &mut Lw, id: NodeId, mode: Interp, padding: Padding, align_corners: bool) -> Result<()> {
    let (x, grid) = (lw.input(id, 0)?, lw.input(id, 1)?);
    let (xt, gt) = (lw.ty(x).clone(), lw.ty(grid).clone());
    let out_ty = lw.g.node(id).outputs[0].ty.clone();
    let t = xt.dtype;
    let r = xt.rank().saturating_sub(2);
    if r == 0 || gt.rank() != r + 2 || gt.shape[r + 1] != r {
        bail!("GridSample: X {xt} and grid {gt} do not fit");
    }
    let dims = &xt.shape[2..];
    let (n, c) = (xt.shape[0], xt.shape[1]);
    let p: usize = gt.shape[1..=r].iter().product();
    if n * c * p == 0 {
        // Nothing to write.
        return Ok(());
    }
    if dims.contains(&0) {
        bail!("GridSample on the empty image {xt} is not supported by the {backend} backend", backend = lw.caps.backend);
    }
    let taps = match mode {
        Interp::Nearest => 1,
        Interp::Linear => 2,
        Interp::Cubic => 4,
    };
    let (p_i, r_i, t_i) = (p as i64, r as i64, taps as i64);
    let gm = lw.mem(grid)?;
    let bounds = |d: usize| if align_corners { (0.0, d as f64 - 1.0) } else { (-0.5, d as f64 - 0.5) };
    let np = vec![n, p];

    // 1. coord[n, p, a]: the sampling position along spatial axis a (grid component r-1-a).
    let coord = lw.temp(&ValueType::new(F, vec![n, p, r]));
    for (a, &d) in dims.iter().enumerate() {
        let g = Expr::cast(F, load(gm, gt.dtype, (r - 1 - a) as i64, vec![p_i * r_i, r_i]));
        let df = d as f64;
        let x = if align_corners {
            bin(BinOp::Mul, bin(BinOp::Div, bin(BinOp::Add, g, float(1.0)), float(2.0)), float(df - 1.0))
        } else {
            bin(BinOp::Div, bin(BinOp::Sub, bin(BinOp::Mul, bin(BinOp::Add, g, float(1.0)), float(df)), float(1.0)), float(2.0))
        };
        let mut x = f32r(x);
        if mode == Interp::Nearest {
            x = Expr::un(UnOp::Nearest, x);
        }
        lw.push(Step::Loop(Loop { dims: np.clone(), out: Access { mem: coord, dtype: F, offset: a as i64, strides: vec![p_i * r_i, r_i] }, value: x }));
        if padding != Padding::Zeros {
            let (lo, hi) = bounds(d);
            let xv = load(coord, F, a as i64, vec![p_i * r_i, r_i]);
            let moved = match padding {
                Padding::Border => clamp(xv.clone(), float(0.0), float((df - 1.0).max(0.0))),
                _ => f32r(reflect(xv.clone(), lo, hi)),
            };
            let outside = bin(BinOp::Or, bin(BinOp::Lt, xv.clone(), float(lo)), bin(BinOp::Gt, xv.clone(), float(hi)));
            let value = Expr::select(outside, moved, xv);
            // Through a temporary: the loop does not read the memory it writes.
            let tmp = lw.temp(&ValueType::new(F, np.clone()));
            lw.push(Step::Loop(Loop { dims: np.clone(), out: Access::dense(tmp, F, &np), value }));
            let back = load(tmp, F, 0, dense_strides(&np));
            lw.push(Step::Loop(Loop { dims: np.clone(), out: Access { mem: coord, dtype: F, offset: a as i64, strides: vec![p_i * r_i, r_i] }, value: back }));
        }
    }

    // 2. idx[n, p, a, j] and wt[n, p, a, j].
    let table_ty = |d| ValueType::new(d, vec![n, p, r, taps]);
    let (idx, wt) = (lw.temp(&table_ty(DType::I64)), lw.temp(&table_ty(F)));
    let tab = |a: usize, j: usize| (((a * taps) + j) as i64, vec![p_i * r_i * t_i, r_i * t_i]);
    for (a, &d) in dims.iter().enumerate() {
        let xv = load(coord, F, a as i64, vec![p_i * r_i, r_i]);
        let x0 = Expr::un(UnOp::Floor, xv.clone());
        let last = d as i64 - 1;
        for j in 0..taps {
            // The tap's integer index: trunc(x) for nearest, floor(x) + j (- 1 for cubic).
            let i = match mode {
                Interp::Nearest => Expr::cast(DType::I64, xv.clone()),
                Interp::Linear => bin(BinOp::Add, Expr::cast(DType::I64, x0.clone()), int(j as i64)),
                Interp::Cubic => bin(BinOp::Add, Expr::cast(DType::I64, x0.clone()), int(j as i64 - 1)),
            };
            let pixel = match padding {
                Padding::Zeros => {
                    let inside = bin(BinOp::And, bin(BinOp::Ge, i.clone(), int(0)), bin(BinOp::Le, i.clone(), int(last)));
                    Expr::select(inside, i, int(-1))
                }
                Padding::Border => clamp(i, int(0), int(last)),
                Padding::Reflection => {
                    let (lo, hi) = bounds(d);
                    clamp(Expr::cast(DType::I64, reflect(Expr::cast(F, i), lo, hi)), int(0), int(last))
                }
            };
            let (off, strides) = tab(a, j);
            lw.push(Step::Loop(Loop { dims: np.clone(), out: Access { mem: idx, dtype: DType::I64, offset: off, strides: strides.clone() }, value: pixel }));
            let tt = bin(BinOp::Sub, xv.clone(), x0.clone());
            let w = match mode {
                Interp::Nearest => float(1.0),
                Interp::Linear if j == 0 => bin(BinOp::Sub, float(1.0), tt),
                Interp::Linear => tt,
                Interp::Cubic => cubic_weight(tt, j),
            };
            lw.push(Step::Loop(Loop { dims: np.clone(), out: Access { mem: wt, dtype: F, offset: off, strides }, value: w }));
        }
    }

    // 3. y[n, c, p] = Σ over tap combinations of Π weights · x[n, c, idx...].
    let xm = lw.mem(x)?;
    let plane: usize = dims.iter().product();
    let len = (n * c * plane) as i64;
    let xs = dense_strides(dims);
    let at = |mem: Mem, dtype: DType, a: usize, j: usize| {
        let (off, s) = tab(a, j);
        load(mem, dtype, off, vec![s[0], 0, s[1]])
    };
    let base = bin(BinOp::Add, bin(BinOp::Mul, Expr::Index(0), int(c as i64 * plane as i64)), bin(BinOp::Mul, Expr::Index(1), int(plane as i64)));
    let combos = taps.pow(r as u32);
    let mut total: Option<Expr> = None;
    for k in 0..combos {
        // Tap j[a] of each axis, axis 0 outermost (the reference's order).
        let js: Vec<usize> = (0..r).map(|a| k / taps.pow((r - 1 - a) as u32) % taps).collect();
        let mut flat = base.clone();
        let mut valid: Option<Expr> = None;
        let mut weight: Option<Expr> = None;
        for a in 0..r {
            let i = at(idx, DType::I64, a, js[a]);
            flat = bin(BinOp::Add, flat, bin(BinOp::Mul, i.clone(), int(xs[a])));
            if padding == Padding::Zeros {
                let v = bin(BinOp::Ge, i, int(0));
                valid = Some(match valid {
                    None => v,
                    Some(p) => bin(BinOp::And, p, v),
                });
            }
            let w = at(wt, F, a, js[a]);
            weight = Some(match weight {
                None => w,
                Some(p) => bin(BinOp::Mul, p, w),
            });
        }
        let index = match &valid {
            Some(v) => Expr::select(v.clone(), flat, int(0)),
            None => flat,
        };
        let xv = Expr::LoadAt { mem: xm, dtype: t, len, index: Box::new(index) };
        if mode == Interp::Nearest {
            total = Some(match valid {
                Some(v) => Expr::select(v, xv, Expr::Lit(Lit::of(t, 0.0))),
                None => xv,
            });
            break;
        }
        let term = bin(BinOp::Mul, weight.ok_or_else(|| anyhow!("GridSample needs a spatial axis"))?, Expr::cast(F, xv));
        let term = match valid {
            Some(v) => Expr::select(v, term, float(0.0)),
            None => term,
        };
        total = Some(match total {
            None => term,
            Some(s) => bin(BinOp::Add, s, term),
        });
    }
    let total = total.ok_or_else(|| anyhow!("GridSample needs a spatial axis"))?;
    let value = if mode == Interp::Nearest { total } else { Expr::cast(t, total) };
    let y = lw.out(id, 0);
    let dims3 = vec![n, c, p];
    lw.push(Step::Loop(Loop { out: Access::dense(y, out_ty.dtype, &dims3), dims: dims3, value }));
    Ok(())
}

pub(super) fn affine_grid(lw: &mut Lw, id: NodeId, align_corners: bool) -> Result<()> {
    let theta = lw.input(id, 0)?;
    let tt = lw.ty(theta).clone();
    let out_ty = lw.g.node(id).outputs[0].ty.clone();
    let r = *out_ty.shape.last().unwrap_or(&0);
    if !(r == 2 || r == 3) || out_ty.rank() != r + 2 || tt.shape != [out_ty.shape[0], r, r + 1] {
        bail!("AffineGrid: theta {tt} does not fit the output {out_ty}");
    }
    if out_ty.shape.contains(&0) {
        return Ok(());
    }
    let sp = &out_ty.shape[1..=r];
    let tm = lw.mem(theta)?;
    let rank = r + 2;
    // Loop dims [n, sp..., i]: theta[n, i, j] at n·r(r+1) + i(r+1) + j.
    let theta_at = |j: usize| {
        let mut s = vec![0i64; rank];
        s[0] = (r * (r + 1)) as i64;
        s[rank - 1] = (r + 1) as i64;
        Expr::cast(F, load(tm, tt.dtype, j as i64, s))
    };
    let mut total: Option<Expr> = None;
    for j in 0..=r {
        // h = (x, y[, z], 1): component j is spatial axis r-1-j.
        let h = if j == r {
            float(1.0)
        } else {
            let k = r - 1 - j;
            let len = sp[k];
            let i = Expr::cast(F, Expr::Index(1 + k));
            if align_corners {
                if len <= 1 { float(0.0) } else { bin(BinOp::Add, float(-1.0), bin(BinOp::Mul, i, float(2.0 / (len - 1) as f64))) }
            } else {
                let step = 2.0 / len as f64;
                bin(BinOp::Add, float(-1.0 + step / 2.0), bin(BinOp::Mul, i, float(step)))
            }
        };
        let term = bin(BinOp::Mul, theta_at(j), h);
        total = Some(match total {
            None => term,
            Some(s) => bin(BinOp::Add, s, term),
        });
    }
    let value = Expr::cast(out_ty.dtype, total.ok_or_else(|| anyhow!("AffineGrid needs a spatial axis"))?);
    let y = lw.out(id, 0);
    lw.push(Step::Loop(Loop { out: Access::dense(y, out_ty.dtype, &out_ty.shape), dims: out_ty.shape.clone(), value }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::lower::test_util::{Tolerance, ramp, same_as_reference};
    use crate::tensor::Tensor;

    /// Compiled against the reference evaluator: the same f64 arithmetic in the same order,
    /// rounded once; only the sum's association may differ, by a few f64 ulps, far below
    /// the 1e-6 relative tolerance (which still catches any wrong tap or weight).
    const TOL: Tolerance = Tolerance::RelOrNan(1e-6);

    #[test]
    fn grid_sample_every_mode_and_padding() {
        // Grid values up to ±2.4: well outside [-1, 1], so every padding branch (including
        // reflections folding more than once) is exercised.
        let x = ramp(&[2, 2, 3, 4], 0.5, 0.0);
        let grid = ramp(&[2, 3, 5, 2], 0.21, 0.03);
        for mode in ["nearest", "linear", "cubic"] {
            for pad in ["zeros", "border", "reflection"] {
                for ac in [0, 1] {
                    let text = format!(
                        "graph(%x: f32[2,2,3,4], %g: f32[2,3,5,2]) {{\n  %y = GridSample{{align_corners={ac}, mode=\"{mode}\", padding_mode=\"{pad}\"}}(%x, %g) : f32[2,2,3,5]\n  return %y\n}}"
                    );
                    same_as_reference(&text, &[x.clone(), grid.clone()], TOL);
                }
            }
        }
    }

    #[test]
    fn grid_sample_volumetric_and_integer_nearest() {
        let x = ramp(&[1, 2, 3, 2, 4], 0.5, 0.0);
        let grid = ramp(&[1, 2, 3, 2, 3], 0.13, 0.02);
        for mode in ["nearest", "linear", "cubic"] {
            let text = format!("graph(%x: f32[1,2,3,2,4], %g: f32[1,2,3,2,3]) {{\n  %y = GridSample{{mode=\"{mode}\", padding_mode=\"reflection\"}}(%x, %g) : f32[1,2,2,3,2]\n  return %y\n}}");
            same_as_reference(&text, &[x.clone(), grid.clone()], TOL);
        }
        let xi = Tensor::from_vec(&[1, 1, 3, 3], (0..9).map(|v| v * 11 - 40).collect::<Vec<i32>>()).unwrap();
        let text = "graph(%x: i32[1,1,3,3], %g: f32[1,2,5,2]) {\n  %y = GridSample{mode=\"nearest\"}(%x, %g) : i32[1,1,2,5]\n  return %y\n}";
        same_as_reference(text, &[xi, ramp(&[1, 2, 5, 2], 0.15, 0.0)], TOL);
    }

    #[test]
    fn affine_grid_2d_and_3d() {
        for ac in [0, 1] {
            let text = format!("graph(%t: f32[2,2,3]) {{\n  %s = const i64[4]{{2,3,4,5}}\n  %y = AffineGrid{{align_corners={ac}}}(%t, %s) : f32[2,4,5,2]\n  return %y\n}}");
            same_as_reference(&text, &[ramp(&[2, 2, 3], 0.3, 0.1)], TOL);
            let text = format!("graph(%t: f32[1,3,4]) {{\n  %s = const i64[5]{{1,1,2,1,3}}\n  %y = AffineGrid{{align_corners={ac}}}(%t, %s) : f32[1,2,1,3,3]\n  return %y\n}}");
            same_as_reference(&text, &[ramp(&[1, 3, 4], 0.3, 0.1)], TOL);
        }
    }
}
