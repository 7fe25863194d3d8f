//! Ops that make tensors from attributes or from their input's shape: Constant,
//! ConstantOfShape, Shape, Size, Range, EyeLike.
//!
//! Specs: <https://onnx.ai/onnx/operators/onnx__Constant.html>,
//! <https://onnx.ai/onnx/operators/onnx__ConstantOfShape.html>,
//! <https://onnx.ai/onnx/operators/onnx__Shape.html>,
//! <https://onnx.ai/onnx/operators/onnx__Size.html>,
//! <https://onnx.ai/onnx/operators/onnx__Range.html>,
//! <https://onnx.ai/onnx/operators/onnx__EyeLike.html>.
//!
//! Opset history that matters here:
//! - Constant 1/9: `value` only; 11 adds `sparse_value` (not supported); 12 adds
//!   `value_float(s)`, `value_int(s)`, `value_string(s)`. Normalised to one `value` tensor; the
//!   op has no inputs and the import driver folds it to a constant.
//! - ConstantOfShape since 9 (`value`: one element, default f32 0); later opsets add dtypes.
//! - Shape 1; 15 adds `start`/`end` (negative counts from the back, clamped to [0, rank]).
//! - Size: one semantics since 1.
//! - Range 11 (f32, f64, i16, i32, i64); 27 adds f16/bf16 and `stash_type` (the precision the
//!   sequence is computed in for f16/bf16: 1 = f32, the default, or 11 = f64).
//! - EyeLike 9 (`dtype`, `k`); 22 adds bf16.
//!
//! Range follows numpy's `arange` as the reference uses it: the count is
//! `max(ceil((limit - start) / delta), 0)`; floats are computed in f64 (f32 or f64 for the
//! f16/bf16 stash) as `start + i * (first_step)` where `first_step = (start + delta) - start`,
//! then rounded to the output type; integers exactly.

use crate::ir::{Attr, Attrs, EvalInputs, InferCx, Importer, NodeCtx, Op, OpImpl, ValueType};
use crate::tensor::{ArrayD, DType, IxDyn, Tensor, bf16, f16};
use anyhow::{Result, anyhow, bail};

/// The most elements a generated tensor may have (a guard against absurd shapes).
use crate::ir::limits::MAX_ELEMENTS;

#[derive(Clone, Debug, PartialEq)]
pub enum Generate {
    /// No inputs; the value comes from the attributes.
    Constant { value: Tensor },
    /// Input: the output shape (i64, 1-D). `value` has one element.
    ConstantOfShape { value: Tensor },
    /// `start` and `end` as in the attributes (`end: None` = the rank).
    Shape { start: i64, end: Option<i64> },
    Size,
    /// Inputs: start, limit, delta (scalars of one dtype). `stash` is F32 or F64.
    Range { stash: DType },
    /// `dtype` is resolved at import (the input's dtype when the attribute is absent).
    EyeLike { dtype: DType, k: i64 },
}

impl OpImpl for Generate {
    fn name(&self) -> &'static str {
        match self {
            Generate::Constant { .. } => "Constant",
            Generate::ConstantOfShape { .. } => "ConstantOfShape",
            Generate::Shape { .. } => "Shape",
            Generate::Size => "Size",
            Generate::Range { .. } => "Range",
            Generate::EyeLike { .. } => "EyeLike",
        }
    }

    fn attrs(&self) -> Attrs {
        let mut a = Attrs::new();
        match self {
            Generate::Constant { value } | Generate::ConstantOfShape { value } => {
                a.insert("value".into(), Attr::Tensor(value.clone()));
            }
            Generate::Shape { start, end } => {
                a.insert("start".into(), Attr::Int(*start));
                if let Some(e) = end {
                    a.insert("end".into(), Attr::Int(*e));
                }
            }
            Generate::Size => {}
            Generate::Range { stash } => {
                a.insert("stash_type".into(), Attr::Int(stash.onnx_code() as i64));
            }
            Generate::EyeLike { dtype, k } => {
                a.insert("dtype".into(), Attr::Int(dtype.onnx_code() as i64));
                a.insert("k".into(), Attr::Int(*k));
            }
        }
        a
    }

    fn infer(&self, cx: &InferCx) -> Result<Vec<ValueType>> {
        Ok(vec![match self {
            Generate::Constant { value } => ValueType::of(value),
            Generate::ConstantOfShape { value } => {
                let dims = cx.const_i64s(0, "shape")?.ok_or_else(|| anyhow!("ConstantOfShape: input 0 is missing"))?;
                ValueType::new(value.dtype(), output_dims(&dims)?)
            }
            Generate::Shape { start, end } => {
                let (s, e) = shape_range(cx.ty(0)?.rank(), *start, *end);
                ValueType::new(DType::I64, [e - s])
            }
            Generate::Size => ValueType::new(DType::I64, []),
            Generate::Range { stash } => {
                let arg = |i: usize, what: &str| -> Result<&Tensor> {
                    cx.const_input(i, what)?.ok_or_else(|| anyhow!("Range: input {i} ({what}) is missing"))
                };
                ValueType::of(&range(arg(0, "start")?, arg(1, "limit")?, arg(2, "delta")?, *stash)?)
            }
            Generate::EyeLike { dtype, .. } => {
                let (n, m) = eye_dims(cx.ty(0)?.shape.as_slice())?;
                if !eye_dtype_ok(*dtype) {
                    bail!("EyeLike: output dtype {dtype} is not supported");
                }
                ValueType::new(*dtype, [n, m])
            }
        }])
    }

    fn fold_from_types(&self, inputs: &[Option<ValueType>]) -> Option<Vec<Tensor>> {
        let shape = &inputs.first()?.as_ref()?.shape;
        match self {
            Generate::Shape { start, end } => {
                let (s, e) = shape_range(shape.len(), *start, *end);
                Tensor::from_vec(&[e - s], shape[s..e].iter().map(|&d| d as i64).collect()).ok().map(|t| vec![t])
            }
            Generate::Size => Some(vec![Tensor::scalar(shape.iter().product::<usize>() as i64)]),
            _ => None,
        }
    }

    fn eval(&self, inputs: &EvalInputs) -> Result<Vec<Tensor>> {
        Ok(vec![match self {
            Generate::Constant { value } => value.clone(),
            Generate::ConstantOfShape { value } => {
                let dims = output_dims(&inputs.req(0)?.to_i64_vec()?)?;
                crate::try_map_array!(value, a => a
                    .iter()
                    .next()
                    .cloned()
                    .map(|v| ArrayD::from_elem(IxDyn(&dims), v))
                    .ok_or_else(|| anyhow!("ConstantOfShape: value has no element")))?
            }
            Generate::Shape { start, end } => {
                let shape = inputs.req(0)?.shape();
                let (s, e) = shape_range(shape.len(), *start, *end);
                Tensor::from_vec(&[e - s], shape[s..e].iter().map(|&d| d as i64).collect())?
            }
            Generate::Size => Tensor::scalar(inputs.req(0)?.len() as i64),
            Generate::Range { stash } => range(inputs.req(0)?, inputs.req(1)?, inputs.req(2)?, *stash)?,
            Generate::EyeLike { dtype, k } => {
                let (n, m) = eye_dims(inputs.req(0)?.shape())?;
                let eye = ArrayD::from_shape_fn(IxDyn(&[n, m]), |ix| {
                    if ix[1] as i64 - ix[0] as i64 == *k { 1.0 } else { 0.0 }
                });
                Tensor::from_f64_array(*dtype, eye)?
            }
        }])
    }
}

/// The output shape of ConstantOfShape from its input values.
fn output_dims(dims: &[i64]) -> Result<Vec<usize>> {
    let out = dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| anyhow!("ConstantOfShape: negative dimension in shape {dims:?}")))
        .collect::<Result<Vec<usize>>>()?;
    match out.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) {
        Some(n) if n <= MAX_ELEMENTS => Ok(out),
        _ => bail!("ConstantOfShape: shape {dims:?} is too large"),
    }
}

/// Shape's `[start, end)` range of axes: negative values count from the back; both clamp to
/// `[0, rank]`; an empty range when start >= end.
fn shape_range(rank: usize, start: i64, end: Option<i64>) -> (usize, usize) {
    let r = rank as i64;
    let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
    let s = clamp(start);
    let e = clamp(end.unwrap_or(r));
    (s, e.max(s))
}

fn eye_dims(shape: &[usize]) -> Result<(usize, usize)> {
    match *shape {
        [n, m] => Ok((n, m)),
        // The reference also accepts a 1-D input (a square matrix).
        [n] => Ok((n, n)),
        _ => bail!("EyeLike: the input must be 2-D, got shape {shape:?}"),
    }
}

fn eye_dtype_ok(d: DType) -> bool {
    !d.is_complex() && d != DType::String && !d.is_low()
}

// ---------------------------------------------------------------------------------------------
// Range

/// A float sequence the way numpy's `arange` fills it, in type `F` (f32 or f64): the first two
/// values are `start` and `start + delta` (summed in f64), later ones `start + i * step` where
/// `step` is the difference of the first two.
fn arange_float<F>(start: f64, delta: f64, n: usize, from64: fn(f64) -> F, ops: fn(F, F, usize) -> F) -> Vec<F>
where
    F: Copy,
{
    let b0 = from64(start);
    let b1 = from64(start + delta);
    (0..n).map(|i| if i == 0 { b0 } else if i == 1 { b1 } else { ops(b0, b1, i) }).collect()
}

fn range_f64(start: f64, delta: f64, n: usize) -> Vec<f64> {
    arange_float(start, delta, n, |v| v, |b0, b1, i| b0 + i as f64 * (b1 - b0))
}

fn range_f32(start: f64, delta: f64, n: usize) -> Vec<f32> {
    arange_float(start, delta, n, |v| v as f32, |b0, b1, i| b0 + i as f32 * (b1 - b0))
}

fn range(start: &Tensor, limit: &Tensor, delta: &Tensor, stash: DType) -> Result<Tensor> {
    let dtype = start.dtype();
    if limit.dtype() != dtype || delta.dtype() != dtype {
        bail!("Range: start, limit and delta must have one dtype, got {dtype}, {}, {}", limit.dtype(), delta.dtype());
    }
    let count = |n: f64| -> Result<usize> {
        if !n.is_finite() {
            bail!("Range: the number of elements is not finite");
        }
        let n = n.max(0.0);
        if n > MAX_ELEMENTS as f64 {
            bail!("Range: {n} elements is too many");
        }
        Ok(n as usize)
    };
    if dtype.is_int() {
        let (s, l, d) = (start.scalar_i64()? as i128, limit.scalar_i64()? as i128, delta.scalar_i64()? as i128);
        if d == 0 {
            bail!("Range: delta is 0");
        }
        // ceil((l - s) / d) in exact integers.
        let (q, r) = ((l - s) / d, (l - s) % d);
        let n = count((q + (r != 0 && (r > 0) == (d > 0)) as i128) as f64)?;
        let v: Vec<i64> = (0..n as i128).map(|i| (s + i * d) as i64).collect();
        return Tensor::from_vec(&[n], v)?.cast(dtype);
    }
    let (s, l, d) = (start.scalar_f64()?, limit.scalar_f64()?, delta.scalar_f64()?);
    if d == 0.0 {
        bail!("Range: delta is 0");
    }
    let n = count(((l - s) / d).ceil())?;
    match dtype {
        DType::F64 => Tensor::from_vec(&[n], range_f64(s, d, n)),
        DType::F32 => Tensor::from_vec(&[n], range_f64(s, d, n).into_iter().map(|v| v as f32).collect()),
        DType::F16 | DType::BF16 => {
            let v: Vec<f64> = match stash {
                DType::F64 => range_f64(s, d, n),
                _ => range_f32(s, d, n).into_iter().map(f64::from).collect(),
            };
            if dtype == DType::F16 {
                Tensor::from_vec(&[n], v.into_iter().map(crate::tensor::low::f64_to_f16).collect::<Vec<f16>>())
            } else {
                Tensor::from_vec(&[n], v.into_iter().map(|x| bf16::from_f32(x as f32)).collect::<Vec<bf16>>())
            }
        }
        d => bail!("Range: {d} is not supported"),
    }
}

// ---------------------------------------------------------------------------------------------
// Importers

fn import_constant(ctx: &mut NodeCtx) -> Result<Op> {
    if ctx.has("sparse_value") {
        return Err(ctx.unsupported("Constant with sparse_value"));
    }
    let mut found: Vec<Tensor> = vec![];
    if let Some(t) = ctx.opt_tensor("value")? {
        found.push(t);
    }
    if ctx.opset >= 12 {
        if let Some(v) = ctx.opt_float("value_float")? {
            found.push(Tensor::scalar(v));
        }
        if let Some(v) = ctx.opt_floats("value_floats")? {
            found.push(Tensor::from_vec(&[v.len()], v)?);
        }
        if let Some(v) = ctx.opt_int("value_int")? {
            found.push(Tensor::scalar(v));
        }
        if let Some(v) = ctx.opt_ints("value_ints")? {
            found.push(Tensor::from_vec(&[v.len()], v)?);
        }
        if let Some(v) = ctx.opt_string("value_string")? {
            found.push(Tensor::scalar(v));
        }
        if let Some(v) = ctx.opt_strings("value_strings")? {
            found.push(Tensor::from_vec(&[v.len()], v)?);
        }
    }
    match found.len() {
        1 => Ok(Op::Generate(Generate::Constant { value: found.remove(0) })),
        0 => bail!("Constant: no value attribute"),
        n => bail!("Constant: {n} value attributes (exactly one is allowed)"),
    }
}

fn import_constant_of_shape(ctx: &mut NodeCtx) -> Result<Op> {
    let value = match ctx.opt_tensor("value")? {
        Some(v) if v.len() == 1 => v,
        Some(v) => bail!("ConstantOfShape: value must have one element, it has {}", v.len()),
        None => Tensor::from_vec(&[1], vec![0f32])?,
    };
    Ok(Op::Generate(Generate::ConstantOfShape { value }))
}

fn import_shape(ctx: &mut NodeCtx) -> Result<Op> {
    let (start, end) = if ctx.opset >= 15 { (ctx.int("start", 0)?, ctx.opt_int("end")?) } else { (0, None) };
    Ok(Op::Generate(Generate::Shape { start, end }))
}

fn import_size(_ctx: &mut NodeCtx) -> Result<Op> {
    Ok(Op::Generate(Generate::Size))
}

fn import_range(ctx: &mut NodeCtx) -> Result<Op> {
    // `stash_type` is read at any opset (it only appears from 27) so that IR text round-trips.
    let stash = match ctx.int("stash_type", 1)? {
        1 => DType::F32,
        11 => DType::F64,
        other => return Err(ctx.unsupported(format!("Range stash_type {other}"))),
    };
    Ok(Op::Generate(Generate::Range { stash }))
}

fn import_eye_like(ctx: &mut NodeCtx) -> Result<Op> {
    let dtype = match ctx.opt_int("dtype")? {
        Some(code) => u32::try_from(code)
            .ok()
            .and_then(DType::from_onnx)
            .ok_or_else(|| ctx.unsupported(format!("EyeLike dtype {code}")))?,
        None => ctx.input(0).ok_or_else(|| anyhow!("EyeLike: input 0 is missing"))?.ty().dtype,
    };
    if !eye_dtype_ok(dtype) {
        return Err(ctx.unsupported(format!("EyeLike with dtype {dtype}")));
    }
    let k = ctx.int("k", 0)?;
    Ok(Op::Generate(Generate::EyeLike { dtype, k }))
}

pub const IMPORTERS: &[Importer] = &[
    Importer { op_type: "Constant", domain: "", since: 1, build: import_constant },
    Importer { op_type: "ConstantOfShape", domain: "", since: 9, build: import_constant_of_shape },
    Importer { op_type: "Shape", domain: "", since: 1, build: import_shape },
    Importer { op_type: "Size", domain: "", since: 1, build: import_size },
    Importer { op_type: "Range", domain: "", since: 11, build: import_range },
    Importer { op_type: "Range", domain: "", since: 27, build: import_range },
    Importer { op_type: "EyeLike", domain: "", since: 9, build: import_eye_like },
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{EvalInputs, InferCx, NodeInput, ops};

    fn t<T: crate::tensor::Elem>(shape: &[usize], v: Vec<T>) -> Tensor {
        Tensor::from_vec(shape, v).unwrap()
    }

    fn build(op_type: &str, opset: i64, attrs: &[(&str, Attr)], inputs: &[Tensor]) -> (Op, Vec<Option<NodeInput>>) {
        let attrs: Attrs = attrs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        let inputs = inputs.iter().map(|t| Some(NodeInput::Const(t.clone()))).collect();
        ops::build(op_type, "", opset, "test", &attrs, inputs, 1).unwrap()
    }

    /// Infers (with every input constant) and evaluates; checks that they agree.
    fn run(op: &Op, inputs: &[Tensor]) -> Result<Tensor> {
        let consts: Vec<_> = inputs.iter().map(|t| crate::ir::Constant::new(t.clone())).collect();
        let tys: Vec<_> = consts.iter().map(|c| Some((c.ty().clone(), Some(c)))).collect();
        let ty = op.infer(&InferCx { inputs: &tys, n_outputs: 1 })?.remove(0);
        let refs: Vec<_> = inputs.iter().map(Some).collect();
        let out = op.eval(&EvalInputs { inputs: &refs, n_outputs: 1 })?.remove(0);
        assert_eq!(ValueType::of(&out), ty, "{}: infer and eval disagree", op.name());
        Ok(out)
    }

    /// Op type, opset, attributes, inputs.
    type Case = (&'static str, i64, Vec<(&'static str, Attr)>, Vec<Tensor>);

    #[test]
    fn round_trips() {
        let x = t(&[2, 3], vec![0i32; 6]);
        let cases: Vec<Case> = vec![
            ("Constant", 25, vec![("value", Attr::Tensor(t(&[2], vec![1.5f32, 2.0])))], vec![]),
            ("Constant", 13, vec![("value_ints", Attr::Ints(vec![1, 2]))], vec![]),
            ("Constant", 13, vec![("value_string", Attr::Str("a".into()))], vec![]),
            ("ConstantOfShape", 9, vec![], vec![t(&[1], vec![3i64])]),
            ("ConstantOfShape", 25, vec![("value", Attr::Tensor(t(&[1], vec![7i32])))], vec![t(&[1], vec![3i64])]),
            ("Shape", 1, vec![], vec![x.clone()]),
            ("Shape", 15, vec![("start", Attr::Int(-1)), ("end", Attr::Int(5))], vec![x.clone()]),
            ("Size", 13, vec![], vec![x.clone()]),
            ("Range", 11, vec![], vec![Tensor::scalar(0i64), Tensor::scalar(5i64), Tensor::scalar(1i64)]),
            ("EyeLike", 9, vec![], vec![x.clone()]),
            ("EyeLike", 22, vec![("dtype", Attr::Int(16)), ("k", Attr::Int(-1))], vec![x.clone()]),
        ];
        for (op_type, opset, attrs, inputs) in cases {
            let (op, inputs) = build(op_type, opset, &attrs, &inputs);
            assert_eq!(ops::rebuild(&op, inputs, 1).unwrap(), op, "{op_type} at opset {opset}");
        }
    }

    #[test]
    fn constants() {
        let (op, _) = build("Constant", 13, &[("value_floats", Attr::Floats(vec![1.0, 2.0]))], &[]);
        assert_eq!(run(&op, &[]).unwrap(), t(&[2], vec![1.0f32, 2.0]));
        let (op, _) = build("Constant", 13, &[("value_int", Attr::Int(4))], &[]);
        assert_eq!(run(&op, &[]).unwrap(), Tensor::scalar(4i64));
        let (op, _) = build("Constant", 13, &[("value_strings", Attr::Strs(vec!["a".into()]))], &[]);
        assert_eq!(run(&op, &[]).unwrap(), t(&[1], vec!["a".to_string()]));
        let attrs: Attrs = [("value_int".to_string(), Attr::Int(1)), ("value_float".to_string(), Attr::Float(1.0))]
            .into_iter()
            .collect();
        assert!(ops::build("Constant", "", 13, "n", &attrs, vec![], 1).is_err());
        // value_int does not exist before opset 12: left unread, so rejected.
        let attrs: Attrs = [("value_int".to_string(), Attr::Int(1))].into_iter().collect();
        assert!(ops::build("Constant", "", 11, "n", &attrs, vec![], 1).is_err());
    }

    #[test]
    fn constant_of_shape() {
        let (op, _) = build("ConstantOfShape", 20, &[], &[]);
        assert_eq!(run(&op, &[t(&[2], vec![2i64, 1])]).unwrap(), t(&[2, 1], vec![0f32, 0.0]));
        let (op, _) = build("ConstantOfShape", 20, &[("value", Attr::Tensor(t(&[1], vec![5i32])))], &[]);
        assert_eq!(run(&op, &[t(&[1], vec![0i64])]).unwrap(), t(&[0], Vec::<i32>::new()));
        assert_eq!(run(&op, &[t(&[0], Vec::<i64>::new())]).unwrap(), Tensor::scalar(5i32));
        assert!(run(&op, &[t(&[1], vec![-1i64])]).is_err());
        assert!(run(&op, &[t(&[3], vec![1i64 << 40, 1 << 40, 4])]).is_err());
        let low = Tensor::Low(DType::F8E4M3FN, ArrayD::from_elem(IxDyn(&[1]), 0x38));
        let op = Op::Generate(Generate::ConstantOfShape { value: low });
        assert_eq!(run(&op, &[t(&[1], vec![2i64])]).unwrap(), Tensor::Low(DType::F8E4M3FN, ArrayD::from_elem(IxDyn(&[2]), 0x38)));
    }

    #[test]
    fn shape_and_size() {
        let x = t(&[3, 4, 5], vec![0f32; 60]);
        let shape = |start: i64, end: Option<i64>| run(&Op::Generate(Generate::Shape { start, end }), std::slice::from_ref(&x)).unwrap();
        assert_eq!(shape(0, None), t(&[3], vec![3i64, 4, 5]));
        assert_eq!(shape(1, None), t(&[2], vec![4i64, 5]));
        assert_eq!(shape(0, Some(-1)), t(&[2], vec![3i64, 4]));
        assert_eq!(shape(-10, Some(10)), t(&[3], vec![3i64, 4, 5]));
        assert_eq!(shape(2, Some(1)), t(&[0], Vec::<i64>::new()));
        assert_eq!(run(&Op::Generate(Generate::Size), &[x]).unwrap(), Tensor::scalar(60i64));
        let s = t(&[2], vec!["a".to_string(), "b".into()]);
        assert_eq!(run(&Op::Generate(Generate::Size), &[s]).unwrap(), Tensor::scalar(2i64));
    }

    #[test]
    fn ranges() {
        let r = |a: Tensor, b: Tensor, c: Tensor| run(&Op::Generate(Generate::Range { stash: DType::F32 }), &[a, b, c]);
        assert_eq!(r(Tensor::scalar(3i32), Tensor::scalar(9i32), Tensor::scalar(3i32)).unwrap(), t(&[2], vec![3i32, 6]));
        assert_eq!(r(Tensor::scalar(10i64), Tensor::scalar(4i64), Tensor::scalar(-2i64)).unwrap(), t(&[3], vec![10i64, 8, 6]));
        assert_eq!(r(Tensor::scalar(10i16), Tensor::scalar(6i16), Tensor::scalar(-3i16)).unwrap(), t(&[2], vec![10i16, 7]));
        assert_eq!(r(Tensor::scalar(1i32), Tensor::scalar(0i32), Tensor::scalar(1i32)).unwrap(), t(&[0], Vec::<i32>::new()));
        assert_eq!(r(Tensor::scalar(1f32), Tensor::scalar(5f32), Tensor::scalar(2f32)).unwrap(), t(&[2], vec![1f32, 3.0]));
        // numpy: np.arange(0.1, 1.0, 0.2) (f64).
        let v = r(Tensor::scalar(0.1f64), Tensor::scalar(1.0f64), Tensor::scalar(0.2f64)).unwrap();
        assert_eq!(v, t(&[5], vec![0.1, 0.30000000000000004, 0.5000000000000001, 0.7000000000000001, 0.9000000000000001]));
        let h = |v: f32| f16::from_f32(v);
        let y = r(Tensor::scalar(h(1.0)), Tensor::scalar(h(5.0)), Tensor::scalar(h(2.0))).unwrap();
        assert_eq!(y, t(&[2], vec![h(1.0), h(3.0)]));
        let b = |v: f32| bf16::from_f32(v);
        let y = r(Tensor::scalar(b(1.0)), Tensor::scalar(b(5.0)), Tensor::scalar(b(2.0))).unwrap();
        assert_eq!(y, t(&[2], vec![b(1.0), b(3.0)]));
        assert!(r(Tensor::scalar(0i32), Tensor::scalar(5i32), Tensor::scalar(0i32)).is_err());
        assert!(r(Tensor::scalar(0f32), Tensor::scalar(f32::INFINITY), Tensor::scalar(1f32)).is_err());
        assert!(r(Tensor::scalar(0i64), Tensor::scalar(i64::MAX), Tensor::scalar(1i64)).is_err());
        assert!(r(Tensor::scalar(0i64), Tensor::scalar(5i32), Tensor::scalar(1i64)).is_err());
        // Not constant: shape inference asks for the value.
        let op = Op::Generate(Generate::Range { stash: DType::F32 });
        let ty = ValueType::new(DType::I64, []);
        let tys = vec![Some((ty.clone(), None)), Some((ty.clone(), None)), Some((ty, None))];
        let err = op.infer(&InferCx { inputs: &tys, n_outputs: 1 }).unwrap_err();
        assert!(err.downcast_ref::<crate::ir::NeedsConstant>().is_some());
    }

    #[test]
    fn eye_like() {
        let x = t(&[4, 5], vec![0i32; 20]);
        let (op, _) = build("EyeLike", 22, &[("dtype", Attr::Int(1)), ("k", Attr::Int(1))], std::slice::from_ref(&x));
        let y = run(&op, std::slice::from_ref(&x)).unwrap();
        let want: Vec<f32> = (0..20).map(|i| if i % 5 == i / 5 + 1 { 1.0 } else { 0.0 }).collect();
        assert_eq!(y, t(&[4, 5], want));
        let (op, _) = build("EyeLike", 9, &[], std::slice::from_ref(&x));
        assert_eq!(op, Op::Generate(Generate::EyeLike { dtype: DType::I32, k: 0 }));
        let y = run(&op, &[t(&[2, 2], vec![0i32; 4])]).unwrap();
        assert_eq!(y, t(&[2, 2], vec![1i32, 0, 0, 1]));
        assert!(run(&op, &[t(&[1, 1, 1], vec![0i32])]).is_err());
        let attrs: Attrs = [("dtype".to_string(), Attr::Int(8))].into_iter().collect();
        assert!(ops::build("EyeLike", "", 22, "n", &attrs, vec![Some(NodeInput::Const(x))], 1).is_err());
    }
}
