//! Pooling: MaxPool, AveragePool, LpPool, their global forms, and MaxUnpool.
//!
//! - MaxPool: <https://onnx.ai/onnx/operators/onnx__MaxPool.html>. Opset 1; 8 adds the
//!   optional Indices output and `storage_order`; 10 adds `ceil_mode` and `dilations`;
//!   12 adds int8/uint8; 22 bfloat16.
//! - AveragePool: <https://onnx.ai/onnx/operators/onnx__AveragePool.html>. Opset 1; 7 adds
//!   `count_include_pad`; 10 `ceil_mode`; 19 `dilations`; 22 bfloat16.
//! - LpPool: <https://onnx.ai/onnx/operators/onnx__LpPool.html>. Opset 1 has a float `p`;
//!   2 makes it an int; 18 adds `ceil_mode` and `dilations`.
//! - GlobalAveragePool, GlobalMaxPool (opset 1), GlobalLpPool (opset 1 float `p`, 2 int `p`).
//! - MaxUnpool: <https://onnx.ai/onnx/operators/onnx__MaxUnpool.html>. Opset 9; 11 adds the
//!   optional `output_shape` input (which must be a constant here).
//!
//! Output sizes follow `onnx/reference/ops/op_pool_common.py`: with `ceil_mode` the last
//! window must start inside the input or its begin padding; `auto_pad` SAME_* gives
//! `ceil(in / stride)` outputs. Windows only read positions inside the input; with
//! `count_include_pad` the average divides by the number of window positions inside the
//! padded input (the explicit pads, not the extra room that `ceil_mode` adds).
//! Values are computed in `f64` and rounded once.

use super::conv::spatial::{Window, load_f64, multi_indices, read_dims};
use crate::ir::{Attr, Attrs, EvalInputs, InferCx, Importer, NodeCtx, Op, OpImpl, ValueType};
use crate::tensor::{ArrayD, DType, IxDyn, Tensor};
use anyhow::{Result, bail};

#[derive(Clone, Debug, PartialEq)]
pub enum Pool {
    Max { w: Window, ceil_mode: bool, storage_order: bool },
    Average { w: Window, ceil_mode: bool, count_include_pad: bool },
    Lp { w: Window, ceil_mode: bool, p: i64 },
    GlobalAverage,
    GlobalMax,
    GlobalLp { p: i64 },
    MaxUnpool { kernel: Vec<usize>, strides: Vec<usize>, pads: Vec<usize> },
}

fn flag(ctx: &NodeCtx, name: &str) -> Result<bool> {
    match ctx.int(name, 0)? {
        0 => Ok(false),
        1 => Ok(true),
        v => Err(ctx.unsupported(format!("{} {name}={v}", ctx.op_type))),
    }
}

/// `p`: a float attribute in opset 1, an int from opset 2.
fn read_p(ctx: &NodeCtx) -> Result<i64> {
    let p = if ctx.opset < 2 {
        let p = ctx.float("p", 2.0)?;
        if p.fract() != 0.0 {
            return Err(ctx.unsupported(format!("{} with non-integer p={p}", ctx.op_type)));
        }
        p as i64
    } else {
        ctx.int("p", 2)?
    };
    if p < 1 {
        bail!("{}: p must be >= 1, got {p}", ctx.op_type);
    }
    Ok(p)
}

fn import_max(ctx: &mut NodeCtx) -> Result<Op> {
    let w = Window::import(ctx, None)?;
    Ok(Pool::Max { w, ceil_mode: flag(ctx, "ceil_mode")?, storage_order: flag(ctx, "storage_order")? }.into())
}

fn import_average(ctx: &mut NodeCtx) -> Result<Op> {
    let w = Window::import(ctx, None)?;
    let (ceil_mode, count_include_pad) = (flag(ctx, "ceil_mode")?, flag(ctx, "count_include_pad")?);
    Ok(Pool::Average { w, ceil_mode, count_include_pad }.into())
}

fn import_lp(ctx: &mut NodeCtx) -> Result<Op> {
    let w = Window::import(ctx, None)?;
    Ok(Pool::Lp { w, ceil_mode: flag(ctx, "ceil_mode")?, p: read_p(ctx)? }.into())
}

fn import_global_average(_ctx: &mut NodeCtx) -> Result<Op> {
    Ok(Pool::GlobalAverage.into())
}

fn import_global_max(_ctx: &mut NodeCtx) -> Result<Op> {
    Ok(Pool::GlobalMax.into())
}

fn import_global_lp(ctx: &mut NodeCtx) -> Result<Op> {
    Ok(Pool::GlobalLp { p: read_p(ctx)? }.into())
}

fn import_max_unpool(ctx: &mut NodeCtx) -> Result<Op> {
    let k = ctx.opt_ints("kernel_shape")?.ok_or_else(|| anyhow::anyhow!("MaxUnpool: 'kernel_shape' is required"))?;
    if k.is_empty() || k.iter().any(|&x| x <= 0 || x > i32::MAX as i64) {
        bail!("MaxUnpool: kernel_shape {k:?} must be non-empty and positive");
    }
    let r = k.len();
    Ok(Pool::MaxUnpool {
        kernel: k.iter().map(|&x| x as usize).collect(),
        strides: read_dims(ctx, "strides", r, 1, false)?,
        pads: read_dims(ctx, "pads", 2 * r, 0, true)?,
    }
    .into())
}

pub const IMPORTERS: &[Importer] = &[
    Importer { op_type: "MaxPool", domain: "", since: 1, build: import_max },
    Importer { op_type: "AveragePool", domain: "", since: 1, build: import_average },
    Importer { op_type: "LpPool", domain: "", since: 1, build: import_lp },
    Importer { op_type: "GlobalAveragePool", domain: "", since: 1, build: import_global_average },
    Importer { op_type: "GlobalMaxPool", domain: "", since: 1, build: import_global_max },
    Importer { op_type: "GlobalLpPool", domain: "", since: 1, build: import_global_lp },
    Importer { op_type: "MaxUnpool", domain: "", since: 9, build: import_max_unpool },
];

fn ints(v: &[usize]) -> Attr {
    Attr::Ints(v.iter().map(|&x| x as i64).collect())
}

impl OpImpl for Pool {
    fn name(&self) -> &'static str {
        match self {
            Pool::Max { .. } => "MaxPool",
            Pool::Average { .. } => "AveragePool",
            Pool::Lp { .. } => "LpPool",
            Pool::GlobalAverage => "GlobalAveragePool",
            Pool::GlobalMax => "GlobalMaxPool",
            Pool::GlobalLp { .. } => "GlobalLpPool",
            Pool::MaxUnpool { .. } => "MaxUnpool",
        }
    }

    fn attrs(&self) -> Attrs {
        let mut a = Attrs::new();
        let mut int = |k: &str, v: i64| a.insert(k.into(), Attr::Int(v));
        match self {
            Pool::Max { ceil_mode, storage_order, .. } => {
                int("ceil_mode", *ceil_mode as i64);
                int("storage_order", *storage_order as i64);
            }
            Pool::Average { ceil_mode, count_include_pad, .. } => {
                int("ceil_mode", *ceil_mode as i64);
                int("count_include_pad", *count_include_pad as i64);
            }
            Pool::Lp { ceil_mode, p, .. } => {
                int("ceil_mode", *ceil_mode as i64);
                int("p", *p);
            }
            Pool::GlobalLp { p } => {
                int("p", *p);
            }
            Pool::GlobalAverage | Pool::GlobalMax => {}
            Pool::MaxUnpool { kernel, strides, pads } => {
                a.insert("kernel_shape".into(), ints(kernel));
                a.insert("strides".into(), ints(strides));
                a.insert("pads".into(), ints(pads));
            }
        }
        if let Some((w, _)) = self.window() {
            w.write_attrs(&mut a);
        }
        a
    }

    fn infer(&self, cx: &InferCx) -> Result<Vec<ValueType>> {
        let x = cx.ty(0)?;
        self.check_dtype(x.dtype)?;
        let (n, c) = batch_channels(self.name(), &x.shape)?;
        let sp = &x.shape[2..];
        match self {
            Pool::MaxUnpool { .. } => {
                let i = cx.ty(1)?;
                let out = self.unpool_shape(&x.shape, &i.shape, i.dtype, cx.const_i64s(2, "output_shape")?)?;
                Ok(vec![ValueType::new(x.dtype, out.1)])
            }
            Pool::GlobalAverage | Pool::GlobalMax | Pool::GlobalLp { .. } => {
                let mut shape = vec![n, c];
                shape.extend(sp.iter().map(|_| 1));
                Ok(vec![ValueType::new(x.dtype, shape)])
            }
            _ => {
                let (w, ceil) = self.window().expect("windowed pool");
                let (out, _, _) = w.forward(sp, ceil, self.name())?;
                let shape: Vec<usize> = [n, c].into_iter().chain(out).collect();
                Ok(vec![ValueType::new(x.dtype, shape.clone()), ValueType::new(DType::I64, shape)])
            }
        }
    }

    fn eval(&self, inputs: &EvalInputs) -> Result<Vec<Tensor>> {
        let x = inputs.req(0)?;
        self.check_dtype(x.dtype())?;
        let (n, c) = batch_channels(self.name(), x.shape())?;
        let sp = &x.shape()[2..];
        let xv = load_f64(x)?;
        let store = |shape: &[usize], v: Vec<f64>| -> Result<Tensor> {
            Tensor::from_f64_array(x.dtype(), ArrayD::from_shape_vec(IxDyn(shape), v)?)
        };
        match self {
            Pool::MaxUnpool { .. } => {
                let i = inputs.req(1)?;
                let os = inputs.opt(2).map(|t| t.to_i64_vec()).transpose()?;
                let (inferred, out) = self.unpool_shape(x.shape(), i.shape(), i.dtype(), os)?;
                Ok(vec![store(&out, unpool(&xv, &i.to_i64_vec()?, &inferred, &out)?)?])
            }
            Pool::GlobalAverage | Pool::GlobalMax | Pool::GlobalLp { .. } => {
                let ip: usize = sp.iter().product();
                let mut y = Vec::with_capacity(n * c);
                for plane in 0..n * c {
                    let v = &xv[plane * ip..(plane + 1) * ip];
                    y.push(match self {
                        Pool::GlobalAverage => v.iter().sum::<f64>() / ip as f64,
                        Pool::GlobalMax => max_of(v.iter().copied()).map_or(0.0, |m| m.1),
                        Pool::GlobalLp { p } => lp(v.iter().copied(), *p),
                        _ => unreachable!(),
                    });
                }
                let mut shape = vec![n, c];
                shape.extend(sp.iter().map(|_| 1));
                Ok(vec![store(&shape, y)?])
            }
            _ => {
                let (w, ceil) = self.window().expect("windowed pool");
                let (y, idx, shape) = self.pool(w, ceil, &xv, n * c, sp)?;
                let shape: Vec<usize> = [n, c].into_iter().chain(shape).collect();
                let mut outs = vec![store(&shape, y)?];
                if matches!(self, Pool::Max { .. }) {
                    outs.push(Tensor::from_vec(&shape, idx)?);
                }
                Ok(outs)
            }
        }
    }
}

fn batch_channels(op: &str, shape: &[usize]) -> Result<(usize, usize)> {
    match shape {
        [n, c, ..] => Ok((*n, *c)),
        _ => bail!("{op}: input must have rank >= 2 (N, C, spatial...), got shape {shape:?}"),
    }
}

/// The index of the first maximum (comparing with `>`, as the reference does) and its value.
fn max_of(v: impl Iterator<Item = f64>) -> Option<(usize, f64)> {
    let mut best: Option<(usize, f64)> = None;
    for (i, x) in v.enumerate() {
        if best.is_none_or(|(_, b)| x > b) {
            best = Some((i, x));
        }
    }
    best
}

fn lp(v: impl Iterator<Item = f64>, p: i64) -> f64 {
    let s: f64 = v.map(|x| x.abs().powi(p as i32)).sum();
    s.powf(1.0 / p as f64)
}

/// One spatial dimension of one window: the input positions it reads and how many of its
/// positions lie inside the padded input.
struct Taps {
    pos: Vec<usize>,
    padded: usize,
}

impl Pool {
    fn window(&self) -> Option<(&Window, bool)> {
        match self {
            Pool::Max { w, ceil_mode, .. } | Pool::Average { w, ceil_mode, .. } | Pool::Lp { w, ceil_mode, .. } => {
                Some((w, *ceil_mode))
            }
            _ => None,
        }
    }

    fn check_dtype(&self, d: DType) -> Result<()> {
        let ok = match self {
            // Integers that f64 holds exactly.
            Pool::Max { .. } | Pool::GlobalMax => {
                (d.is_float() || d.is_int()) && !d.is_low() && !matches!(d, DType::I64 | DType::U64)
            }
            _ => d.is_float() && !d.is_low(),
        };
        if !ok {
            bail!("{}: dtype {d} is not supported", self.name());
        }
        Ok(())
    }

    /// Pools every (image, channel) plane. Returns the values, the flat argmax indices
    /// (MaxPool only) and the output spatial shape.
    fn pool(
        &self,
        w: &Window,
        ceil: bool,
        x: &[f64],
        planes: usize,
        sp: &[usize],
    ) -> Result<(Vec<f64>, Vec<i64>, Vec<usize>)> {
        let (out_sp, pb, pe) = w.forward(sp, ceil, self.name())?;
        let r = sp.len();
        // Per dimension and output index: the taps of the window.
        let taps: Vec<Vec<Taps>> = (0..r)
            .map(|i| {
                (0..out_sp[i])
                    .map(|o| {
                        let start = (o * w.strides[i]) as i64 - pb[i] as i64;
                        let mut t = Taps { pos: vec![], padded: 0 };
                        for j in 0..w.kernel[i] {
                            let p = start + (j * w.dilations[i]) as i64;
                            if p >= 0 && (p as usize) < sp[i] {
                                t.pos.push(p as usize);
                            }
                            if p >= -(pb[i] as i64) && p < (sp[i] + pe[i]) as i64 {
                                t.padded += 1;
                            }
                        }
                        t
                    })
                    .collect()
            })
            .collect();
        let mut istr = vec![1usize; r];
        for i in (0..r.saturating_sub(1)).rev() {
            istr[i] = istr[i + 1] * sp[i + 1];
        }
        let ip: usize = sp.iter().product();
        let op: usize = out_sp.iter().product();
        let mut y = vec![0f64; planes * op];
        let mut idx = vec![-1i64; if matches!(self, Pool::Max { .. }) { planes * op } else { 0 }];
        let (mut offs, mut tmp) = (Vec::new(), Vec::new());
        for (of, oi) in multi_indices(&out_sp).iter().enumerate() {
            // Flat offsets (row-major) of the window's taps inside the input.
            offs.clear();
            offs.push(0usize);
            let mut padded = 1;
            for d in 0..r {
                let t = &taps[d][oi[d]];
                padded *= t.padded;
                tmp.clear();
                for &a in &offs {
                    tmp.extend(t.pos.iter().map(|&p| a + p * istr[d]));
                }
                std::mem::swap(&mut offs, &mut tmp);
            }
            for plane in 0..planes {
                let xp = &x[plane * ip..(plane + 1) * ip];
                let vals = offs.iter().map(|&o| xp[o]);
                y[plane * op + of] = match self {
                    Pool::Max { storage_order, .. } => match max_of(vals) {
                        Some((k, v)) => {
                            idx[plane * op + of] = (plane * ip + flat_index(offs[k], sp, *storage_order)) as i64;
                            v
                        }
                        None => 0.0,
                    },
                    Pool::Average { count_include_pad, .. } => {
                        let n = if *count_include_pad { padded } else { offs.len() };
                        vals.sum::<f64>() / n as f64
                    }
                    Pool::Lp { p, .. } => lp(vals, *p),
                    _ => unreachable!(),
                };
            }
        }
        Ok((y, idx, out_sp))
    }

    /// MaxUnpool's (inferred spatial-complete shape, output shape).
    pub(crate) fn unpool_shape(&self, x: &[usize], i: &[usize], idt: DType, os: Option<Vec<i64>>) -> Result<(Vec<usize>, Vec<usize>)> {
        let Pool::MaxUnpool { kernel, strides, pads } = self else { unreachable!() };
        let r = kernel.len();
        if x.len() != r + 2 {
            bail!("MaxUnpool: X of shape {x:?} does not match a {r}-D kernel");
        }
        if i != x || idt != DType::I64 {
            bail!("MaxUnpool: indices must be i64 with X's shape {x:?}, got {idt}{i:?}");
        }
        let mut inferred = x[..2].to_vec();
        for d in 0..r {
            let full = (x[d + 2] as i64 - 1) * strides[d] as i64 + kernel[d] as i64;
            let v = full - (pads[d] + pads[r + d]) as i64;
            if v < 0 || x[d + 2] == 0 {
                bail!("MaxUnpool: empty or negative output along spatial axis {d}");
            }
            inferred.push(v as usize);
        }
        let out = match os {
            None => inferred.clone(),
            Some(os) => {
                if os.len() != r + 2 || os.iter().zip(&inferred).any(|(&o, &f)| o < f as i64) || os[..2] != [x[0] as i64, x[1] as i64] {
                    bail!("MaxUnpool: output_shape {os:?} must be at least {inferred:?}");
                }
                os.iter().map(|&v| v as usize).collect()
            }
        };
        Ok((inferred, out))
    }
}

/// Row-major offset `o` inside a plane of shape `sp`, re-expressed column-major when
/// `col_major` (MaxPool's storage_order = 1).
fn flat_index(o: usize, sp: &[usize], col_major: bool) -> usize {
    if !col_major {
        return o;
    }
    let (mut rest, mut out, mut stride) = (o, 0, 1);
    let mut coords = vec![0; sp.len()];
    for d in (0..sp.len()).rev() {
        coords[d] = rest % sp[d];
        rest /= sp[d];
    }
    for d in 0..sp.len() {
        out += coords[d] * stride;
        stride *= sp[d];
    }
    out
}

/// Scatters X into a zero tensor of the inferred shape at the flat `indices`, then places
/// that tensor at the origin of the (possibly larger) output, as the reference does.
fn unpool(x: &[f64], indices: &[i64], inferred: &[usize], out: &[usize]) -> Result<Vec<f64>> {
    let total: usize = inferred.iter().product();
    let mut y = vec![0f64; total];
    for (&v, &i) in x.iter().zip(indices) {
        if i < 0 || i as usize >= total {
            bail!("MaxUnpool: index {i} is out of range for shape {inferred:?}");
        }
        y[i as usize] = v;
    }
    if inferred == out {
        return Ok(y);
    }
    let mut res = vec![0f64; out.iter().product()];
    for (k, ix) in multi_indices(inferred).iter().enumerate() {
        let o = ix.iter().zip(out).fold(0, |acc, (&i, &d)| acc * d + i);
        res[o] = y[k];
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::NodeInput;
    use crate::ir::ops::{build, rebuild};

    fn t32(shape: &[usize], v: Vec<f32>) -> Tensor {
        Tensor::from_vec(shape, v).unwrap()
    }

    fn import(op_type: &str, opset: i64, attrs: &[(&str, Attr)]) -> Result<Pool> {
        let attrs: Attrs = attrs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        let inputs: Vec<Option<NodeInput>> = vec![];
        match build(op_type, "", opset, "n", &attrs, inputs, 1)?.0 {
            Op::Pool(p) => Ok(p),
            o => panic!("{o:?}"),
        }
    }

    fn run(op: &Pool, ins: &[&Tensor], n_outputs: usize) -> Result<Vec<Tensor>> {
        let opts: Vec<Option<&Tensor>> = ins.iter().map(|t| Some(*t)).collect();
        let out = op.eval(&EvalInputs { inputs: &opts, n_outputs })?;
        let consts: Vec<crate::ir::Constant> = ins.iter().map(|t| crate::ir::Constant::new((*t).clone())).collect();
        let tys: Vec<Option<(ValueType, Option<&crate::ir::Constant>)>> = ins.iter().zip(&consts).map(|(t, c)| Some((ValueType::of(t), Some(c)))).collect();
        let inf = op.infer(&InferCx { inputs: &tys, n_outputs })?;
        for (i, o) in out.iter().enumerate() {
            assert_eq!(inf[i], ValueType::of(o));
        }
        Ok(out)
    }

    fn is(v: &[i64]) -> Attr {
        Attr::Ints(v.to_vec())
    }

    fn x5() -> Tensor {
        t32(&[1, 1, 5, 5], (1..=25).map(|v| v as f32).collect())
    }

    #[test]
    fn round_trip() {
        let k = ("kernel_shape", is(&[2, 2]));
        let ops = [
            import("MaxPool", 22, &[k.clone(), ("storage_order", Attr::Int(1)), ("ceil_mode", Attr::Int(1))]),
            import("AveragePool", 22, &[k.clone(), ("count_include_pad", Attr::Int(1)), ("pads", is(&[1, 1, 0, 0]))]),
            import("LpPool", 22, &[k.clone(), ("p", Attr::Int(3)), ("auto_pad", Attr::Str("SAME_LOWER".into()))]),
            import("GlobalAveragePool", 22, &[]),
            import("GlobalMaxPool", 22, &[]),
            import("GlobalLpPool", 22, &[("p", Attr::Int(1))]),
            import("MaxUnpool", 22, &[k, ("strides", is(&[2, 2]))]),
        ];
        for op in ops {
            let op: Op = op.unwrap().into();
            assert_eq!(rebuild(&op, vec![], 1).unwrap(), op);
        }
        // Opset 1 LpPool has a float p.
        assert_eq!(import("GlobalLpPool", 1, &[("p", Attr::Float(3.0))]).unwrap(), Pool::GlobalLp { p: 3 });
    }

    #[test]
    fn max_pool_with_indices() {
        let op = import("MaxPool", 22, &[("kernel_shape", is(&[2, 2])), ("strides", is(&[2, 2]))]).unwrap();
        let out = run(&op, &[&x5()], 2).unwrap();
        assert_eq!(out[0], t32(&[1, 1, 2, 2], vec![7., 9., 17., 19.]));
        assert_eq!(out[1], Tensor::from_vec(&[1, 1, 2, 2], vec![6i64, 8, 16, 18]).unwrap());
        let op = import("MaxPool", 22, &[("kernel_shape", is(&[2, 2])), ("strides", is(&[2, 2])), ("storage_order", Attr::Int(1))]).unwrap();
        assert_eq!(run(&op, &[&x5()], 2).unwrap()[1], Tensor::from_vec(&[1, 1, 2, 2], vec![6i64, 16, 8, 18]).unwrap());
        // Padding never wins, ceil mode adds a partial window.
        let op = import("MaxPool", 22, &[("kernel_shape", is(&[3, 3])), ("strides", is(&[2, 2])), ("ceil_mode", Attr::Int(1))]).unwrap();
        let x = t32(&[1, 1, 4, 4], (1..=16).map(|v| v as f32).collect());
        assert_eq!(run(&op, &[&x], 1).unwrap()[0], t32(&[1, 1, 2, 2], vec![11., 12., 15., 16.]));
        let u8x = Tensor::from_vec(&[1, 1, 2, 2], vec![1u8, 200, 3, 4]).unwrap();
        let op = import("MaxPool", 12, &[("kernel_shape", is(&[2, 2]))]).unwrap();
        assert_eq!(run(&op, &[&u8x], 1).unwrap()[0], Tensor::from_vec(&[1, 1, 1, 1], vec![200u8]).unwrap());
    }

    #[test]
    fn average_pool_padding_modes() {
        let pads = ("pads", is(&[2, 2, 2, 2]));
        let k = ("kernel_shape", is(&[5, 5]));
        let op = import("AveragePool", 22, &[k.clone(), pads.clone()]).unwrap();
        let y = run(&op, &[&x5()], 1).unwrap().remove(0);
        assert_eq!(y.to_f64_vec().unwrap()[..3], [7.0, 7.5, 8.0]);
        let op = import("AveragePool", 22, &[k, pads, ("count_include_pad", Attr::Int(1))]).unwrap();
        let y = run(&op, &[&x5()], 1).unwrap().remove(0);
        assert_eq!(y.to_f64_vec().unwrap()[..3], [2.52f32 as f64, 3.6f32 as f64, 4.8f32 as f64]);
        // SAME_UPPER, 3x3 stride 2 over 5x5: 3x3 output.
        let op = import("AveragePool", 22, &[("kernel_shape", is(&[3, 3])), ("strides", is(&[2, 2])), ("auto_pad", Attr::Str("SAME_UPPER".into()))]).unwrap();
        let y = run(&op, &[&x5()], 1).unwrap().remove(0);
        assert_eq!(y.to_f64_vec().unwrap(), [4., 5.5, 7., 11.5, 13., 14.5, 19., 20.5, 22.]);
        // The last ceil-mode window starts on the padding: divides by the padded count only.
        let x = t32(&[1, 1, 2, 2], vec![1., 2., 3., 4.]);
        let op = import("AveragePool", 22, &[("kernel_shape", is(&[3, 3])), ("strides", is(&[3, 3])), ("pads", is(&[1, 1, 1, 1])), ("ceil_mode", Attr::Int(1)), ("count_include_pad", Attr::Int(1))]).unwrap();
        assert_eq!(run(&op, &[&x], 1).unwrap()[0].to_f64_vec().unwrap(), [(10f32 / 9.) as f64]);
        assert!(run(&op, &[&t32(&[2, 2], vec![0.; 4])], 1).is_err());
    }

    #[test]
    fn lp_and_global_pools() {
        let x = t32(&[1, 2, 1, 2], vec![3., -4., 1., 2.]);
        let op = import("LpPool", 22, &[("kernel_shape", is(&[1, 2])), ("p", Attr::Int(2))]).unwrap();
        assert_eq!(run(&op, &[&x], 1).unwrap()[0], t32(&[1, 2, 1, 1], vec![5., 5f32.sqrt()]));
        let g = |t| run(&import(t, 22, &[]).unwrap(), &[&x], 1).unwrap().remove(0);
        assert_eq!(g("GlobalAveragePool"), t32(&[1, 2, 1, 1], vec![-0.5, 1.5]));
        assert_eq!(g("GlobalMaxPool"), t32(&[1, 2, 1, 1], vec![3., 2.]));
        assert_eq!(g("GlobalLpPool"), t32(&[1, 2, 1, 1], vec![5., 5f32.sqrt()]));
    }

    #[test]
    fn max_unpool() {
        let op = import("MaxUnpool", 22, &[("kernel_shape", is(&[2, 2])), ("strides", is(&[2, 2]))]).unwrap();
        let x = t32(&[1, 1, 2, 2], vec![5., 6., 7., 8.]);
        let i = Tensor::from_vec(&[1, 1, 2, 2], vec![5i64, 7, 13, 15]).unwrap();
        let y = run(&op, &[&x, &i], 1).unwrap().remove(0);
        assert_eq!(y.to_f64_vec().unwrap(), [0., 0., 0., 0., 0., 5., 0., 6., 0., 0., 0., 0., 0., 7., 0., 8.]);
        let os = Tensor::from_vec(&[4], vec![1i64, 1, 5, 5]).unwrap();
        let y = run(&op, &[&x, &i, &os], 1).unwrap().remove(0);
        assert_eq!(y.shape(), &[1, 1, 5, 5]);
        assert_eq!(y.to_f64_vec().unwrap()[5..9], [0., 5., 0., 6.]);
        let bad = Tensor::from_vec(&[1, 1, 2, 2], vec![5i64, 7, 13, 16]).unwrap();
        assert!(run(&op, &[&x, &bad], 1).is_err());
    }
}
