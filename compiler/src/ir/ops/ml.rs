//! `ai.onnx.ml` ops that the conformance cases use: LabelEncoder, TreeEnsemble,
//! ArrayFeatureExtractor and Binarizer.
//!
//! Specs: <https://onnx.ai/onnx/operators/onnx_aionnxml_LabelEncoder.html>,
//! <https://onnx.ai/onnx/operators/onnx_aionnxml_TreeEnsemble.html>,
//! <https://onnx.ai/onnx/operators/onnx_aionnxml_ArrayFeatureExtractor.html>,
//! <https://onnx.ai/onnx/operators/onnx_aionnxml_Binarizer.html>.
//!
//! Opset history (of the `ai.onnx.ml` domain) that matters here:
//! - LabelEncoder 1: `classes_strings` maps strings to their index (int64 input: the reverse),
//!   with `default_int64` / `default_string`. 2: explicit `keys_*` / `values_*` lists (strings,
//!   int64s or floats). 4: also `keys_tensor` / `values_tensor` / `default_tensor` of any of
//!   string, int64, int32, int16, float, double. The IR op always holds the mapping as three
//!   tensors (keys, values, default) and prints it in the opset-4 form.
//! - TreeEnsemble 5 (new in that opset; it supersedes TreeEnsembleRegressor/Classifier).
//! - ArrayFeatureExtractor 1 and Binarizer 1: unchanged.

use crate::ir::{Attr, Attrs, EvalInputs, InferCx, Importer, NodeCtx, Op, OpImpl, ValueType};
use crate::tensor::{ArrayD, Axis, DType, Elem, IxDyn, Tensor};
use anyhow::{Result, bail};

#[path = "ml/tree.rs"]
mod tree;
pub use tree::{Aggregate, NodeMode, TreeEnsemble};

pub const DOMAIN: &str = "ai.onnx.ml";

#[derive(Clone, Debug, PartialEq)]
pub enum Ml {
    LabelEncoder(Box<LabelMap>),
    TreeEnsemble(Box<TreeEnsemble>),
    ArrayFeatureExtractor,
    Binarizer { threshold: f32 },
}

/// LabelEncoder's mapping: `keys` and `values` are 1-D tensors of equal length; `default`
/// holds one value of the values' type.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelMap {
    pub keys: Tensor,
    pub values: Tensor,
    pub default: Tensor,
}

const LABEL_TYPES: [DType; 6] = [DType::String, DType::I64, DType::I32, DType::I16, DType::F32, DType::F64];

/// A lookup key: strings and integers compare exactly, floats by value (-0 equals 0).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    S(String),
    I(i64),
    F(u64),
}

fn keys_of(t: &Tensor) -> Result<Vec<Option<Key>>> {
    Ok(match t {
        Tensor::Str(a) => a.iter().map(|s| Some(Key::S(s.clone()))).collect(),
        Tensor::F32(_) | Tensor::F64(_) => t
            .to_f64_vec()?
            .into_iter()
            .map(|v| if v.is_nan() { None } else { Some(Key::F((v + 0.0).to_bits())) })
            .collect(),
        _ => t.to_i64_vec()?.into_iter().map(|v| Some(Key::I(v))).collect(),
    })
}

/// `values[idx[i]]`, or `default` where `idx[i]` is past the end, in `shape`.
fn take_or_default<T: Elem>(values: &ArrayD<T>, default: &Tensor, idx: &[usize], shape: &[usize]) -> Result<ArrayD<T>> {
    let d = default.as_array::<T>()?.iter().next().cloned().unwrap_or_default();
    let v: Vec<T> = idx.iter().map(|&i| values.as_slice_memory_order().and_then(|s| s.get(i)).cloned().unwrap_or_else(|| d.clone())).collect();
    Ok(ArrayD::from_shape_vec(IxDyn(shape), v)?)
}

/// Takes `idx` along the last axis of `x` (1-D `x` counts as one row).
fn take_last<T: Clone>(x: &ArrayD<T>, idx: &[usize]) -> Result<ArrayD<T>> {
    let x = if x.ndim() == 1 { x.clone().insert_axis(Axis(0)) } else { x.clone() };
    let last = Axis(x.ndim() - 1);
    Ok(x.select(last, idx))
}

impl Ml {
    fn afe_shape(x: &[usize], n_idx: usize) -> Result<Vec<usize>> {
        match x {
            [] => bail!("ArrayFeatureExtractor: the input must have rank >= 1"),
            [_] => Ok(vec![1, n_idx]),
            [head @ .., _] => Ok([head, &[n_idx]].concat()),
        }
    }
}

impl OpImpl for Ml {
    fn name(&self) -> &'static str {
        match self {
            Ml::LabelEncoder(_) => "LabelEncoder",
            Ml::TreeEnsemble(_) => "TreeEnsemble",
            Ml::ArrayFeatureExtractor => "ArrayFeatureExtractor",
            Ml::Binarizer { .. } => "Binarizer",
        }
    }

    fn attrs(&self) -> Attrs {
        let mut m = Attrs::new();
        match self {
            Ml::LabelEncoder(le) => {
                m.insert("keys_tensor".into(), Attr::Tensor(le.keys.clone()));
                m.insert("values_tensor".into(), Attr::Tensor(le.values.clone()));
                m.insert("default_tensor".into(), Attr::Tensor(le.default.clone()));
            }
            Ml::TreeEnsemble(t) => t.attrs(&mut m),
            Ml::ArrayFeatureExtractor => {}
            Ml::Binarizer { threshold } => {
                m.insert("threshold".into(), Attr::Float(*threshold));
            }
        }
        m
    }

    fn infer(&self, cx: &InferCx) -> Result<Vec<ValueType>> {
        let name = self.name();
        let x = cx.ty(0)?;
        match self {
            Ml::LabelEncoder(le) => {
                let LabelMap { keys, values, .. } = &**le;
                if x.dtype != keys.dtype() {
                    bail!("{name}: the input is {}, the keys {}", x.dtype, keys.dtype());
                }
                Ok(vec![ValueType::new(values.dtype(), x.shape.clone())])
            }
            Ml::TreeEnsemble(t) => Ok(vec![t.infer(x)?]),
            Ml::ArrayFeatureExtractor => {
                let y = cx.ty(1)?;
                if y.dtype != DType::I64 || !matches!(x.dtype, DType::F32 | DType::F64 | DType::I64 | DType::I32 | DType::String) {
                    bail!("{name}: {} data with {} indices is not supported (data float, double, int64, int32 or string; indices int64)", x.dtype, y.dtype);
                }
                Ok(vec![ValueType::new(x.dtype, Self::afe_shape(&x.shape, y.len())?)])
            }
            Ml::Binarizer { .. } => {
                if !matches!(x.dtype, DType::F32 | DType::F64 | DType::I64 | DType::I32) {
                    bail!("{name}: {} input is not supported (float, double, int64 or int32)", x.dtype);
                }
                Ok(vec![x.clone()])
            }
        }
    }

    fn eval(&self, inputs: &EvalInputs) -> Result<Vec<Tensor>> {
        let name = self.name();
        let x = inputs.req(0)?;
        match self {
            Ml::LabelEncoder(le) => {
                let LabelMap { keys, values, default } = &**le;
                if x.dtype() != keys.dtype() {
                    bail!("{name}: the input is {}, the keys {}", x.dtype(), keys.dtype());
                }
                let mut map = std::collections::HashMap::new();
                for (i, k) in keys_of(keys)?.into_iter().enumerate() {
                    // Like a Python dict built from pairs: a repeated key keeps the last value.
                    if let Some(k) = k {
                        map.insert(k, i);
                    }
                }
                let n = values.len();
                let idx: Vec<usize> = keys_of(x)?.into_iter().map(|k| k.and_then(|k| map.get(&k).copied()).unwrap_or(n)).collect();
                let values = values.clone().into_standard();
                Ok(vec![crate::try_map_array!(&values, v => take_or_default(v, default, &idx, x.shape()))?])
            }
            Ml::TreeEnsemble(t) => Ok(vec![t.eval(x)?]),
            Ml::ArrayFeatureExtractor => {
                let y = inputs.req(1)?;
                if y.dtype() != DType::I64 {
                    bail!("{name}: indices must be int64, got {}", y.dtype());
                }
                let n = x.shape().last().copied().unwrap_or(0);
                let idx = y
                    .to_i64_vec()?
                    .into_iter()
                    .map(|i| if i >= 0 && (i as usize) < n { Ok(i as usize) } else { bail!("{name}: index {i} is out of range for {n} features") })
                    .collect::<Result<Vec<_>>>()?;
                let shape = Self::afe_shape(x.shape(), idx.len())?;
                let out = crate::try_map_array!(x, a => take_last(a, &idx))?;
                Ok(vec![out.reshape(&shape)?])
            }
            Ml::Binarizer { threshold } => {
                if !matches!(x.dtype(), DType::F32 | DType::F64 | DType::I64 | DType::I32) {
                    bail!("{name}: {} input is not supported (float, double, int64 or int32)", x.dtype());
                }
                let t = *threshold as f64;
                Ok(vec![Tensor::from_f64_array(x.dtype(), x.to_f64_array()?.mapv(|v| if v > t { 1.0 } else { 0.0 }))?])
            }
        }
    }
}

/// The spec's default for a values type without an explicit default.
fn default_for(ctx: &NodeCtx, d: DType) -> Result<Tensor> {
    Ok(match d {
        DType::String => Tensor::scalar(ctx.string("default_string", "_Unused")?),
        DType::F32 => Tensor::scalar(ctx.float("default_float", -0.0)?),
        DType::F64 => Tensor::scalar(-0.0f64),
        DType::I64 => Tensor::scalar(ctx.int("default_int64", -1)?),
        _ => Tensor::scalar(-1i64).cast(d)?,
    })
}

fn label_encoder(ctx: &mut NodeCtx) -> Result<Op> {
    let list = |ints: Option<Vec<i64>>, floats: Option<Vec<f32>>, strs: Option<Vec<String>>, tensor: Option<Tensor>, what: &str| -> Result<Tensor> {
        let mut found = vec![];
        if let Some(v) = ints {
            found.push(Tensor::from_vec(&[v.len()], v)?);
        }
        if let Some(v) = floats {
            found.push(Tensor::from_vec(&[v.len()], v)?);
        }
        if let Some(v) = strs {
            found.push(Tensor::from_vec(&[v.len()], v)?);
        }
        if let Some(t) = tensor {
            found.push(t.reshape(&[t.len()])?);
        }
        match found.len() {
            1 => Ok(found.remove(0)),
            n => bail!("LabelEncoder: exactly one kind of {what} must be given, found {n}"),
        }
    };
    let (keys, values, default) = if ctx.opset < 2 {
        let classes = ctx.opt_strings("classes_strings")?.unwrap_or_default();
        let n = classes.len();
        let classes = Tensor::from_vec(&[n], classes)?;
        let index = Tensor::from_vec(&[n], (0..n as i64).collect())?;
        let d_int = Tensor::scalar(ctx.int("default_int64", -1)?);
        let d_str = Tensor::scalar(ctx.string("default_string", "_Unused")?);
        match ctx.input(0).map(|i| i.ty().dtype) {
            Some(DType::String) => (classes, index, d_int),
            Some(DType::I64) => (index, classes, d_str),
            d => return Err(ctx.unsupported(format!("LabelEncoder-1 on {d:?} input (string or int64 only)"))),
        }
    } else {
        let t = |name: &str| if ctx.opset >= 4 { ctx.opt_tensor(name) } else { Ok(None) };
        let keys = list(ctx.opt_ints("keys_int64s")?, ctx.opt_floats("keys_floats")?, ctx.opt_strings("keys_strings")?, t("keys_tensor")?, "keys")?;
        let values = list(ctx.opt_ints("values_int64s")?, ctx.opt_floats("values_floats")?, ctx.opt_strings("values_strings")?, t("values_tensor")?, "values")?;
        let default = match t("default_tensor")? {
            Some(d) if ctx.has("values_tensor") => d,
            _ => default_for(ctx, values.dtype())?,
        };
        ctx.ignore(&["default_int64", "default_float", "default_string"]);
        (keys, values, default)
    };
    for (what, t) in [("keys", &keys), ("values", &values), ("default", &default)] {
        if !LABEL_TYPES.contains(&t.dtype()) {
            return Err(ctx.unsupported(format!("LabelEncoder {what} of type {}", t.dtype())));
        }
    }
    if keys.len() != values.len() || default.len() != 1 || default.dtype() != values.dtype() {
        bail!("LabelEncoder: {} keys, {} values ({}) and a default of {} values ({}) do not fit", keys.len(), values.len(), values.dtype(), default.len(), default.dtype());
    }
    Ok(Ml::LabelEncoder(Box::new(LabelMap { keys, values, default })).into())
}

fn array_feature_extractor(_ctx: &mut NodeCtx) -> Result<Op> {
    Ok(Ml::ArrayFeatureExtractor.into())
}

fn binarizer(ctx: &mut NodeCtx) -> Result<Op> {
    Ok(Ml::Binarizer { threshold: ctx.float("threshold", 0.0)? }.into())
}

pub const IMPORTERS: &[Importer] = &[
    Importer { op_type: "LabelEncoder", domain: DOMAIN, since: 1, build: label_encoder },
    Importer { op_type: "TreeEnsemble", domain: DOMAIN, since: 5, build: tree::import },
    Importer { op_type: "ArrayFeatureExtractor", domain: DOMAIN, since: 1, build: array_feature_extractor },
    Importer { op_type: "Binarizer", domain: DOMAIN, since: 1, build: binarizer },
];

#[cfg(test)]
#[path = "ml/tests.rs"]
mod tests;
