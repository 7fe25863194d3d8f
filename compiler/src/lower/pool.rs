//! The pool family. MaxPool, AveragePool and LpPool call the runtime's `pool` kernel with an
//! `abi::PoolParams` block in the weights ([`calls::pool`]), or are loop nests for a
//! backend without it (`pool_loops.rs`); MaxPool on 8- and 16-bit
//! integers goes through f32 temporaries, and column-major indices (`storage_order = 1`)
//! are rewritten after the call. The global pools are one reduction per (n, c) plane.
//!
//! MaxUnpool is lowered as a gather (see [`super::transposed_window`]): each output position
//! takes the last input (in row-major order) whose index names it, among the inputs whose
//! pooling window covers it. Indices produced by MaxPool always lie in their own window; a
//! first step checks that every index does, and makes the run fail with an index error
//! otherwise (the reference would place such a value outside its window, which this gather
//! cannot see).

#[path = "pool_loops.rs"]
mod loops;

use anyhow::{Result, bail};
use neoc_runtime::abi::{self, Kernel, MAX_SPATIAL, PoolParams};

use super::Lw;
use super::calls::{self, pod_bytes, spatial_array};
use super::transposed_window::{mul, sum};
use crate::kernel_ir::build::{add, and, int, load};
use crate::kernel_ir::{Access, BinOp, Expr, Lit, Loop, Reduce, Step, dense_strides};
use crate::ir::ops::pool::Pool;
use crate::ir::{NodeId, ValueType};
use crate::tensor::DType;

pub(super) fn lower(lw: &mut Lw, id: NodeId, p: &Pool) -> Result<()> {
    let x = lw.input(id, 0)?;
    let xt = lw.ty(x).clone();
    let out_ty = lw.g.node(id).outputs[0].ty.clone();
    let (kind, w, ceil, include_pad, pp) = match p {
        Pool::Max { w, ceil_mode, .. } => {
            (abi::PoolKind::Max, w, *ceil_mode, false, 0)
        }
        Pool::Average { w, ceil_mode, count_include_pad } => (abi::PoolKind::Average, w, *ceil_mode, *count_include_pad, 0),
        Pool::Lp { w, ceil_mode, p } => (abi::PoolKind::Lp, w, *ceil_mode, false, *p),
        Pool::GlobalAverage | Pool::GlobalMax | Pool::GlobalLp { .. } => return global_pool(lw, id, p),
        Pool::MaxUnpool { .. } => return max_unpool(lw, id, p),
    };
    // MaxPool on small integers: through f32 temporaries (exact: every value of these types
    // is an f32, and the max of exact values is exact).
    let via_f32 = kind == abi::PoolKind::Max && matches!(xt.dtype, DType::U8 | DType::I8 | DType::U16 | DType::I16);
    if xt.dtype != DType::F32 && !via_f32 {
        bail!("pooling on {} is not supported by the {backend} backend yet", xt.dtype.name(), backend = lw.caps.backend);
    }
    let r = w.rank();
    if r == 0 || r > MAX_SPATIAL {
        bail!("pooling with {r} spatial dimensions is not supported by the {backend} backend (1 to {MAX_SPATIAL})", backend = lw.caps.backend);
    }
    let (out_sp, pb, pe) = w.forward(&xt.shape[2..], ceil, "pool")?;
    if out_sp != out_ty.shape[2..] {
        bail!("pool geometry {out_sp:?} disagrees with the inferred output {:?}", out_ty.shape);
    }
    let params = PoolParams {
        kind: kind as u32,
        spatial: r as u32,
        channels: (xt.shape[0] * xt.shape[1]) as u64,
        in_size: spatial_array(&xt.shape[2..], 1),
        out_size: spatial_array(&out_sp, 1),
        kernel: spatial_array(&w.kernel, 1),
        stride: spatial_array(&w.strides, 1),
        dilation: spatial_array(&w.dilations, 1),
        pad_begin: spatial_array(&pb, 0),
        pad_end: spatial_array(&pe, 0),
        count_include_pad: include_pad as u32,
        p: pp as u32,
    };
    neoc_runtime::kernels::check_pool_params(&params).map_err(|e| anyhow::anyhow!("pool parameters: {e}"))?;
    let mut xm = lw.mem(x)?;
    let y = lw.out(id, 0);
    let indices = (lw.g.node(id).outputs.len() > 1).then(|| lw.out(id, 1));
    if !via_f32 {
        pool_call(lw, &params, xm, y, indices)?;
        if let (Some(ind), Pool::Max { storage_order: true, .. }) = (indices, p) {
            column_major_indices(lw, ind, &out_ty.shape, &xt.shape[2..]);
        }
        return Ok(());
    }
    let widen = |m, t, shape: &[usize]| Expr::cast(DType::F32, Expr::Load(Access::dense(m, t, shape)));
    let xf = lw.temp(&crate::ir::ValueType::new(DType::F32, xt.shape.clone()));
    lw.push(Step::Loop(Loop { dims: xt.shape.clone(), out: Access::dense(xf, DType::F32, &xt.shape), value: widen(xm, xt.dtype, &xt.shape) }));
    xm = xf;
    let yf = lw.temp(&crate::ir::ValueType::new(DType::F32, out_ty.shape.clone()));
    pool_call(lw, &params, xm, yf, indices)?;
    if let (Some(ind), Pool::Max { storage_order: true, .. }) = (indices, p) {
        column_major_indices(lw, ind, &out_ty.shape, &xt.shape[2..]);
    }
    let back = Expr::cast(xt.dtype, Expr::Load(Access::dense(yf, DType::F32, &out_ty.shape)));
    lw.push(Step::Loop(Loop { dims: out_ty.shape.clone(), out: Access::dense(y, xt.dtype, &out_ty.shape), value: back }));
    Ok(())
}

/// The runtime's `pool` kernel on `params`, or its loop form when the backend has none.
fn pool_call(lw: &mut Lw, params: &PoolParams, x: crate::kernel_ir::Mem, y: crate::kernel_ir::Mem, indices: Option<crate::kernel_ir::Mem>) -> Result<()> {
    if !lw.caps.has(Kernel::Pool) {
        return loops::pool(lw, params, x, y, indices);
    }
    let pm = lw.blob(pod_bytes(params));
    calls::pool(lw, pm, x, y, indices)
}

/// Rewrites MaxPool's row-major flat indices (as the kernel writes them) in place into
/// ONNX's `storage_order = 1` form: the plane's offset plus the position inside the
/// plane counted column-major, `Σ coord[d] · Π_{e<d} plane[e]`.
fn column_major_indices(lw: &mut Lw, ind: crate::kernel_ir::Mem, out_shape: &[usize], plane: &[usize]) {
    let int = |v: usize| Expr::Lit(Lit::Int(v as i64, DType::I64));
    let area: usize = plane.iter().product();
    let idx = || Expr::Load(Access::dense(ind, DType::I64, out_shape));
    let within = Expr::bin(BinOp::TruncMod, idx(), int(area));
    let mut value = Expr::bin(BinOp::Sub, idx(), within.clone());
    let row = dense_strides(plane);
    let mut col = 1;
    for (d, &size) in plane.iter().enumerate() {
        let coord = Expr::bin(BinOp::TruncMod, Expr::bin(BinOp::Div, within.clone(), int(row[d] as usize)), int(size));
        value = Expr::bin(BinOp::Add, value, Expr::bin(BinOp::Mul, coord, int(col)));
        col *= size;
    }
    lw.push(Step::Loop(Loop { dims: out_shape.to_vec(), out: Access::dense(ind, DType::I64, out_shape), value }));
}

/// Global pools reduce every (n, c) plane.
fn global_pool(lw: &mut Lw, id: NodeId, p: &Pool) -> Result<()> {
    let x = lw.input(id, 0)?;
    let xt = lw.ty(x).clone();
    let t = xt.dtype;
    if !t.is_float() {
        bail!("global pooling on {} is not supported by the {backend} backend", t.name(), backend = lw.caps.backend);
    }
    let planes = xt.shape[..2.min(xt.rank())].iter().product::<usize>();
    let area = xt.shape.get(2..).map_or(1, |s| s.iter().product::<usize>());
    let xm = lw.mem(x)?;
    let y = lw.out(id, 0);
    let src = Access { mem: xm, dtype: t, offset: 0, strides: vec![area as i64, 1] };
    let load = Expr::Load(src);
    let (init, combine, value, finish) = match p {
        Pool::GlobalAverage => {
            (Lit::of(t, 0.0), BinOp::Add, load, Expr::bin(BinOp::Div, Expr::Acc, Expr::lit_f(t, area as f64)))
        }
        Pool::GlobalMax => (Lit::of(t, f64::NEG_INFINITY), BinOp::Max, load, Expr::Acc),
        Pool::GlobalLp { p } => {
            let pf = *p as f64;
            let v = Expr::math2(neoc_runtime::abi::MathOp::Pow, Expr::un(crate::kernel_ir::UnOp::Abs, load), Expr::lit_f(t, pf));
            (Lit::of(t, 0.0), BinOp::Add, v, Expr::math2(neoc_runtime::abi::MathOp::Pow, Expr::Acc, Expr::lit_f(t, 1.0 / pf)))
        }
        _ => bail!("not a global pool"),
    };
    lw.push(Step::Reduce(Reduce {
        dims: vec![planes, area],
        n_outer: 1,
        acc: t,
        init,
        combine,
        value,
        finish,
        out: Access { mem: y, dtype: t, offset: 0, strides: vec![1] },
    }));
    Ok(())
}

fn max_unpool(lw: &mut Lw, id: NodeId, p: &Pool) -> Result<()> {
    let Pool::MaxUnpool { kernel, strides, pads } = p else { bail!("not a MaxUnpool") };
    let (x, iv) = (lw.input(id, 0)?, lw.input(id, 1)?);
    let (xt, it) = (lw.ty(x).clone(), lw.ty(iv).clone());
    let out_ty = lw.g.node(id).outputs[0].ty.clone();
    let t = xt.dtype;
    let os = lw.const_ints(id, 2, "output_shape")?;
    let (inferred, out_shape) = p.unpool_shape(&xt.shape, &it.shape, it.dtype, os)?;
    if out_shape != out_ty.shape {
        bail!("MaxUnpool: output shape {out_shape:?} disagrees with the inferred {out_ty}");
    }
    let r = kernel.len();
    let (n, c) = (xt.shape[0], xt.shape[1]);
    let (in_sp, inf_sp, out_sp) = (&xt.shape[2..], &inferred[2..], &out_shape[2..]);
    let (ip, fp) = (in_sp.iter().product::<usize>() as i64, inf_sp.iter().product::<usize>() as i64);
    let (is, fs) = (dense_strides(in_sp), dense_strides(inf_sp));
    let len = xt.shape.iter().product::<usize>() as i64;
    if len == 0 || out_shape.contains(&0) {
        bail!("MaxUnpool of an empty tensor is not supported by the {backend} backend", backend = lw.caps.backend);
    }
    let (xm, im) = (lw.mem(x)?, lw.mem(iv)?);

    // 1. Every index must name a position of its own (n, c) plane inside its own window.
    let mut dims = vec![n, c];
    dims.extend(in_sp);
    let idx = load(im, it.dtype, 0, dense_strides(&dims));
    let local = Expr::bin(BinOp::Sub, idx, add(mul(Expr::Index(0), c as i64 * fp), mul(Expr::Index(1), fp)));
    let mut ok = and(Expr::bin(BinOp::Ge, local.clone(), int(0)), Expr::bin(BinOp::Lt, local.clone(), int(fp)));
    for a in 0..r {
        let coord = Expr::bin(BinOp::FloorMod, Expr::bin(BinOp::Div, local.clone(), int(fs[a])), int(inf_sp[a] as i64));
        let start = add(mul(Expr::Index(2 + a), strides[a] as i64), int(-(pads[a] as i64)));
        let rel = Expr::bin(BinOp::Sub, coord, start);
        ok = and(ok, and(Expr::bin(BinOp::Ge, rel.clone(), int(0)), Expr::bin(BinOp::Lt, rel, int(kernel[a] as i64))));
    }
    let probe = lw.blob(vec![0u8]);
    let check = Expr::LoadAt { mem: probe, dtype: DType::U8, len: 1, index: Box::new(Expr::select(ok, int(0), int(1))) };
    let sink = lw.temp(&ValueType::new(DType::U8, vec![1]));
    lw.push(Step::Loop(Loop { out: Access { mem: sink, dtype: DType::U8, offset: 0, strides: vec![0; dims.len()] }, dims, value: check }));

    // 2. Each output position: the last covering input whose index names it.
    // Candidate input positions along axis a: hi - (J - 1) + j for j < J = ceil(k / s),
    // with hi = floor((q + pad) / s).
    let reach: Vec<usize> = (0..r).map(|a| kernel[a].div_ceil(strides[a])).collect();
    let mut odims = vec![n, c];
    odims.extend(out_sp);
    let target = add(
        add(mul(Expr::Index(0), c as i64 * fp), mul(Expr::Index(1), fp)),
        sum((0..r).map(|a| mul(Expr::Index(2 + a), fs[a]))),
    );
    let mut inside = None::<Expr>;
    for (a, &size) in inf_sp.iter().enumerate() {
        let v = Expr::bin(BinOp::Lt, Expr::Index(2 + a), int(size as i64));
        inside = Some(match inside {
            None => v,
            Some(p) => and(p, v),
        });
    }
    let mut value = Expr::Lit(Lit::of(t, 0.0));
    let n_cand: usize = reach.iter().product();
    let cand_strides = dense_strides(&reach);
    for j in 0..n_cand {
        let mut cond = inside.clone().unwrap_or(Expr::Lit(Lit::Int(1, DType::Bool)));
        let mut flat = vec![add(mul(Expr::Index(0), c as i64 * ip), mul(Expr::Index(1), ip))];
        for a in 0..r {
            let ja = (j as i64 / cand_strides[a]) % reach[a] as i64;
            let hi = Expr::bin(BinOp::Div, add(Expr::Index(2 + a), int(pads[a] as i64)), int(strides[a] as i64));
            let pa = add(hi, int(ja - (reach[a] as i64 - 1)));
            let start = add(mul(pa.clone(), strides[a] as i64), int(-(pads[a] as i64)));
            let covers = Expr::bin(BinOp::Gt, add(start, int(kernel[a] as i64)), Expr::Index(2 + a));
            cond = and(cond, and(and(Expr::bin(BinOp::Ge, pa.clone(), int(0)), Expr::bin(BinOp::Lt, pa.clone(), int(in_sp[a] as i64))), covers));
            flat.push(mul(pa, is[a]));
        }
        let at = Expr::select(cond.clone(), sum(flat), int(0));
        let names = Expr::bin(BinOp::Eq, Expr::cast(DType::I64, Expr::LoadAt { mem: im, dtype: it.dtype, len, index: Box::new(at.clone()) }), target.clone());
        let xv = Expr::LoadAt { mem: xm, dtype: t, len, index: Box::new(at) };
        value = Expr::select(and(cond, names), xv, value);
    }
    let y = lw.out(id, 0);
    lw.push(Step::Loop(Loop { out: Access::dense(y, t, &odims), dims: odims, value }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::lower::test_util::{Tolerance, ramp, same_as_reference};
    use crate::ir::parse::parse_graph;
    use crate::tensor::Tensor;

    /// MaxUnpool moves values without arithmetic; 1e-6 relative is a wide margin.
    const TOL: Tolerance = Tolerance::Rel(1e-6);

    #[test]
    fn max_unpool_of_max_pool() {
        let pool = "graph(%x: f32[1,2,5,5]) {\n  %y, %i = MaxPool{kernel_shape=[3,3], strides=[2,2], pads=[1,1,1,1]}(%x) : f32[1,2,3,3], i64[1,2,3,3]\n  %u = MaxUnpool{kernel_shape=[3,3], strides=[2,2], pads=[1,1,1,1]}(%y, %i) : f32[1,2,5,5]\n  return %u\n}";
        same_as_reference(pool, &[ramp(&[1, 2, 5, 5], 1.0, 0.0)], TOL);
        let shaped = "graph(%x: f32[1,1,4,4]) {\n  %y, %i = MaxPool{kernel_shape=[2,2], strides=[2,2]}(%x) : f32[1,1,2,2], i64[1,1,2,2]\n  %s = const i64[4]{1,1,5,6}\n  %u = MaxUnpool{kernel_shape=[2,2], strides=[2,2]}(%y, %i, %s) : f32[1,1,5,6]\n  return %u\n}";
        same_as_reference(shaped, &[ramp(&[1, 1, 4, 4], 1.0, 0.0)], TOL);
    }

    #[test]
    fn max_unpool_index_outside_its_window_is_an_error() {
        let text = "graph(%x: f32[1,1,2,2], %i: i64[1,1,2,2]) {\n  %u = MaxUnpool{kernel_shape=[2,2], strides=[2,2]}(%x, %i) : f32[1,1,4,4]\n  return %u\n}";
        let g = parse_graph(text).expect("parses");
        let x = ramp(&[1, 1, 2, 2], 1.0, 0.0);
        let good = Tensor::from_vec(&[1, 1, 2, 2], vec![5i64, 2, 8, 15]).unwrap();
        same_as_reference(text, &[x.clone(), good], TOL);
        let bad = Tensor::from_vec(&[1, 1, 2, 2], vec![5i64, 2, 8, 0]).unwrap();
        assert!(crate::driver::compile_and_run(&g, &[x, bad], &Default::default()).is_err());
    }
}
