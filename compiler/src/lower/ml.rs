//! The ml family (`ai.onnx.ml`): TreeEnsemble, ArrayFeatureExtractor, Binarizer and
//! LabelEncoder.
//!
//! LabelEncoder (any key and value types, strings included) is a lookup by the runtime's
//! string kernel ([`super::strings`]) followed by a gather of the values.
//!
//! TreeEnsemble's forest is part of the op, so every tree unrolls into a nest of selects:
//! node `i` becomes `cond_i ? true_subtree : false_subtree`, ending in the leaf weights. A
//! tree is unrolled once per target, with the leaves of other targets contributing the
//! aggregate's neutral value; the aggregate then folds the trees in order from the same
//! start as the reference (`ir/ops/ml/tree.rs`), in f64, rounded once to the output type.
//! Forests beyond [`MAX_TREE_EXPR`] expression nodes are refused rather than unrolled.

use anyhow::{Result, bail};

use super::{Lw, strings};
use neoc_runtime::kernels::strings::{self as rt, BlobWriter};
use crate::kernel_ir::build::{float, int};
use crate::kernel_ir::{Access, BinOp, Expr, Lit, Loop, Step, UnOp, dense_strides};
use crate::ir::ops::ml::{Aggregate, LabelMap, Ml, NodeMode, TreeEnsemble};
use crate::ir::NodeId;
use crate::tensor::{DType, Tensor};

const F: DType = DType::F64;

/// The most expression nodes one unrolled TreeEnsemble output column may have.
const MAX_TREE_EXPR: usize = 20_000;

pub(super) fn lower(lw: &mut Lw, id: NodeId, op: &Ml) -> Result<()> {
    match op {
        Ml::TreeEnsemble(t) => tree_ensemble(lw, id, t),
        Ml::ArrayFeatureExtractor => array_feature_extractor(lw, id),
        Ml::Binarizer { threshold } => binarizer(lw, id, *threshold),
        Ml::LabelEncoder(map) => label_encoder(lw, id, map),
    }
}

/// `1` where `x > threshold` (compared in f64), else `0`, in x's dtype.
fn binarizer(lw: &mut Lw, id: NodeId, threshold: f32) -> Result<()> {
    let x = lw.input(id, 0)?;
    let xt = lw.ty(x).clone();
    if !matches!(xt.dtype, DType::F32 | DType::F64 | DType::I64 | DType::I32) {
        bail!("Binarizer on {xt} is not supported by the {backend} backend", backend = lw.caps.backend);
    }
    let xv = Expr::cast(F, Expr::Load(Access::dense(lw.mem(x)?, xt.dtype, &xt.shape)));
    let above = Expr::bin(BinOp::Gt, xv, float(threshold as f64));
    let value = Expr::select(above, Expr::Lit(Lit::of(xt.dtype, 1.0)), Expr::Lit(Lit::of(xt.dtype, 0.0)));
    let out = lw.out(id, 0);
    lw.push(Step::Loop(Loop { dims: xt.shape.clone(), out: Access::dense(out, xt.dtype, &xt.shape), value }));
    Ok(())
}

/// `y[..., j] = x[..., idx[j]]` (a 1-D x counts as one row); an index outside the last
/// axis fails the step, as it is an error in the reference.
fn array_feature_extractor(lw: &mut Lw, id: NodeId) -> Result<()> {
    let (x, y) = (lw.input(id, 0)?, lw.input(id, 1)?);
    let (xt, yt) = (lw.ty(x).clone(), lw.ty(y).clone());
    let ot = lw.g.node(id).outputs[0].ty.clone();
    if yt.dtype != DType::I64 || xt.rank() == 0 || ot.shape.last() != Some(&yt.len()) {
        bail!("ArrayFeatureExtractor of {xt} with {yt} indices is not supported by the {backend} backend", backend = lw.caps.backend);
    }
    let r = ot.rank();
    let n = *xt.shape.last().expect("rank >= 1") as i64;
    // x's strides over the output's leading dims (none for a 1-D x, whose one row is dim 0 of size 1).
    let xs = dense_strides(&xt.shape);
    let mut row = int(0);
    if xt.rank() > 1 {
        for (d, &s) in xs[..xt.rank() - 1].iter().enumerate() {
            row = Expr::bin(BinOp::Add, row, Expr::bin(BinOp::Mul, Expr::Index(d), int(s)));
        }
    }
    let mut y_strides = vec![0i64; r];
    y_strides[r - 1] = 1;
    let idx = Expr::Load(Access { mem: lw.mem(y)?, dtype: DType::I64, offset: 0, strides: y_strides });
    let ok = Expr::bin(BinOp::And, Expr::bin(BinOp::Ge, idx.clone(), int(0)), Expr::bin(BinOp::Lt, idx.clone(), int(n)));
    let index = Expr::select(ok, Expr::bin(BinOp::Add, row, idx), int(-1));
    let value = Expr::LoadAt { mem: lw.mem(x)?, dtype: xt.dtype, len: xt.len() as i64, index: Box::new(index) };
    let out = lw.out(id, 0);
    lw.push(Step::Loop(Loop { dims: ot.shape.clone(), out: Access::dense(out, ot.dtype, &ot.shape), value }));
    Ok(())
}

/// Unrolls trees into select nests for one target.
struct Unroll<'t> {
    t: &'t TreeEnsemble,
    sets: Vec<Vec<f64>>,
    /// Feature `f` of the current row, as f64.
    feature: &'t dyn Fn(usize) -> Expr,
    target: usize,
    /// What a leaf of another target contributes.
    neutral: f64,
    /// Leaf weights are divided by this (the tree count for Average, else 1).
    divisor: f64,
    size: usize,
    /// The backend's name, for messages.
    backend: &'t str,
}

impl Unroll<'_> {
    fn node(&mut self, i: usize, depth: usize) -> Result<Expr> {
        let t = self.t;
        if depth > t.modes.len() {
            bail!("TreeEnsemble: a tree has a cycle through node {i}");
        }
        self.size += 4;
        if self.size > MAX_TREE_EXPR {
            bail!("TreeEnsemble with {} nodes is too large for the {} backend's unrolled trees", t.modes.len(), self.backend);
        }
        let v = (self.feature)(t.featureids[i]);
        let s = float(t.splits.v[i].0);
        let cmp = |op: BinOp| Expr::bin(op, v.clone(), s.clone());
        let mut cond = match t.modes[i] {
            NodeMode::Leq => cmp(BinOp::Le),
            NodeMode::Lt => cmp(BinOp::Lt),
            NodeMode::Gte => cmp(BinOp::Ge),
            NodeMode::Gt => cmp(BinOp::Gt),
            NodeMode::Eq => cmp(BinOp::Eq),
            NodeMode::Neq => Expr::un(UnOp::Not, cmp(BinOp::Eq)),
            NodeMode::Member => {
                let set = self.sets[i].clone();
                self.size += set.len();
                set.into_iter()
                    .map(|m| Expr::bin(BinOp::Eq, v.clone(), float(m)))
                    .reduce(|a, b| Expr::bin(BinOp::Or, a, b))
                    .unwrap_or(Expr::Lit(Lit::Int(0, DType::Bool)))
            }
        };
        if t.missing_tracks_true.as_ref().is_some_and(|m| m[i]) {
            cond = Expr::bin(BinOp::Or, cond, Expr::un(UnOp::IsNaN, v));
        }
        let yes = self.branch(t.true_ids[i], t.true_leafs[i], depth)?;
        let no = self.branch(t.false_ids[i], t.false_leafs[i], depth)?;
        Ok(Expr::select(cond, yes, no))
    }

    fn branch(&mut self, next: usize, leaf: bool, depth: usize) -> Result<Expr> {
        if !leaf {
            return self.node(next, depth + 1);
        }
        let t = self.t;
        Ok(if t.leaf_targetids[next] == self.target { float(t.leaf_weights.v[next].0 / self.divisor) } else { float(self.neutral) })
    }
}

fn tree_ensemble(lw: &mut Lw, id: NodeId, t: &TreeEnsemble) -> Result<()> {
    let x = lw.input(id, 0)?;
    let xt = lw.ty(x).clone();
    let &[n, f] = &xt.shape[..] else {
        bail!("TreeEnsemble on {xt} is not supported by the {backend} backend (rank 2 input only)", backend = lw.caps.backend);
    };
    if !matches!(xt.dtype, DType::F32 | DType::F64 | DType::F16) || t.featureids.iter().any(|&i| i >= f) {
        bail!("TreeEnsemble on {xt} is not supported by the {backend} backend (float input with every feature present)", backend = lw.caps.backend);
    }
    let sets = t.member_sets();
    let xm = lw.mem(x)?;
    let dtype = xt.dtype;
    let feature = move |i: usize| Expr::cast(F, Expr::Load(Access { mem: xm, dtype, offset: i as i64, strides: vec![f as i64] }));
    let start = match (t.aggregate, dtype) {
        (Aggregate::Min, DType::F32) => f32::MAX as f64,
        (Aggregate::Min, DType::F16) => 65504.0,
        (Aggregate::Min, _) => f64::MAX,
        (Aggregate::Max, DType::F32) => f32::MIN as f64,
        (Aggregate::Max, DType::F16) => -65504.0,
        (Aggregate::Max, _) => f64::MIN,
        _ => 0.0,
    };
    let (neutral, combine, divisor) = match t.aggregate {
        Aggregate::Sum => (0.0, BinOp::Add, 1.0),
        Aggregate::Average => (0.0, BinOp::Add, t.tree_roots.len() as f64),
        Aggregate::Min => (f64::INFINITY, BinOp::Min, 1.0),
        Aggregate::Max => (f64::NEG_INFINITY, BinOp::Max, 1.0),
    };
    let out = lw.out(id, 0);
    for target in 0..t.n_targets {
        let mut u = Unroll { t, sets: sets.clone(), feature: &feature, target, neutral, divisor, size: 0, backend: lw.caps.backend };
        let mut acc = float(start);
        for &root in &t.tree_roots {
            acc = Expr::bin(combine, acc, u.node(root, 0)?);
        }
        let o = Access { mem: out, dtype, offset: target as i64, strides: vec![t.n_targets as i64] };
        lw.push(Step::Loop(Loop { dims: vec![n], out: o, value: Expr::cast(dtype, acc) }));
    }
    Ok(())
}

/// The kernel looks each element up among the keys (its index, or `n` when absent), then
/// a gather picks from `values ++ [default]`: raw values, or string handles.
fn label_encoder(lw: &mut Lw, id: NodeId, map: &LabelMap) -> Result<()> {
    let LabelMap { keys, values, default } = map;
    let x = lw.input(id, 0)?;
    let shape = lw.ty(x).shape.clone();
    let n = lw.ty(x).len() as u64;
    let kind = match keys.dtype() {
        DType::String => rt::KEY_STRING,
        DType::I64 => rt::KEY_I64,
        DType::I32 => rt::KEY_I32,
        DType::I16 => rt::KEY_I16,
        DType::F32 => rt::KEY_F32,
        DType::F64 => rt::KEY_F64,
        d => bail!("LabelEncoder keys of type {d} are not supported by the {backend} backend", backend = lw.caps.backend),
    };
    if lw.ty(x).dtype != keys.dtype() {
        bail!("the input is {}, the keys {}", lw.ty(x).dtype, keys.dtype());
    }
    let mut w = BlobWriter::new(rt::OP_LOOKUP);
    w.u32(kind).u32(0);
    // Later keys override earlier ones (a repeated key keeps its last value).
    match keys {
        Tensor::Str(a) => {
            w.u64(a.len() as u64);
            for (i, k) in a.iter().enumerate() {
                w.str(k).u64(i as u64);
            }
        }
        Tensor::F32(_) | Tensor::F64(_) => {
            let pairs: Vec<(u64, u64)> =
                keys.to_f64_vec()?.into_iter().enumerate().filter_map(|(i, k)| rt::float_key(k).map(|k| (k, i as u64))).collect();
            w.u64(pairs.len() as u64);
            for (k, i) in pairs {
                w.u64(k).u64(i);
            }
        }
        _ => {
            let ks = keys.to_i64_vec()?;
            w.u64(ks.len() as u64);
            for (i, k) in ks.into_iter().enumerate() {
                w.u64(k as u64).u64(i as u64);
            }
        }
    }
    w.u64(n);
    let a = lw.mem(x)?;
    let idx = lw.temp_bytes(8 * n);
    strings::call(lw, w.finish(), Some(a), None, idx)?;

    let len = values.len() as i64 + 1;
    let (table, dtype) = match (values, default) {
        (Tensor::Str(v), Tensor::Str(d)) => {
            let all: Vec<String> = v.iter().chain(d.iter().take(1)).cloned().collect();
            let t = Tensor::from_vec(&[all.len()], all)?;
            (strings::const_strings(lw, &t)?, DType::U64)
        }
        _ => {
            let mut bytes = values.to_le_bytes()?;
            let d = default.to_le_bytes()?;
            bytes.extend_from_slice(&d[..d.len() / default.len().max(1)]);
            (lw.blob(bytes), values.dtype())
        }
    };
    let y = lw.out(id, 0);
    let index = Expr::Load(Access::dense(idx, DType::I64, &shape));
    lw.push(Step::Loop(Loop {
        dims: shape.clone(),
        out: Access::dense(y, dtype, &shape),
        value: Expr::LoadAt { mem: table, dtype, len, index: Box::new(index) },
    }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::lower::test_util::{Tolerance, same_as_reference, strings as s};
    use crate::ir::parse::parse_graph;
    use crate::tensor::Tensor;

    /// Compiled against the reference evaluator: the same comparisons and the same f64 sums
    /// in the same order, rounded once, so the results are identical.
    const TOL: Tolerance = Tolerance::Exact;

    #[test]
    fn binarizer_and_array_feature_extractor() {
        let x = Tensor::from_vec(&[2, 3], vec![0.5f32, -1.0, 2.0, 0.75, 0.7, 3.0]).unwrap();
        same_as_reference("graph(%x: f32[2,3]) {\n  %y = ai.onnx.ml.Binarizer{threshold=0.7f}(%x) : f32[2,3]\n  return %y\n}", std::slice::from_ref(&x), TOL);
        let xi = Tensor::from_vec(&[4], vec![-3i64, 0, 1, 5]).unwrap();
        same_as_reference("graph(%x: i64[4]) {\n  %y = ai.onnx.ml.Binarizer(%x) : i64[4]\n  return %y\n}", std::slice::from_ref(&xi), TOL);
        let text = "graph(%x: f32[2,3], %i: i64[2]) {\n  %y = ai.onnx.ml.ArrayFeatureExtractor(%x, %i) : f32[2,2]\n  return %y\n}";
        same_as_reference(text, &[x.clone(), Tensor::from_vec(&[2], vec![2i64, 0]).unwrap()], TOL);
        let text1 = "graph(%x: i64[4], %i: i64[1,3]) {\n  %y = ai.onnx.ml.ArrayFeatureExtractor(%x, %i) : i64[1,3]\n  return %y\n}";
        same_as_reference(text1, &[xi.clone(), Tensor::from_vec(&[1, 3], vec![3i64, 3, 1]).unwrap()], TOL);
        // An index past the last axis is an error, not a read of the next row.
        let g = parse_graph(text).unwrap();
        for bad in [3i64, -1] {
            let ins = [x.clone(), Tensor::from_vec(&[2], vec![0i64, bad]).unwrap()];
            assert!(crate::driver::compile_and_run(&g, &ins, &Default::default()).is_err(), "index {bad}");
        }
    }

    fn forest(aggregate: i64, dtype: &str) -> String {
        // Tree 0 (root 0): x0 <= 0.5 ? (x1 in {1, 3} ? leaf0 : leaf1) : leaf2.
        // Tree 1 (root 2): x2 > -1 (NaN goes true) ? leaf3 : (x0 == 2 ? leaf4 : leaf5).
        format!(
            "graph(%x: {dtype}[5,3]) {{\n  %y = ai.onnx.ml.TreeEnsemble{{aggregate_function={aggregate}, leaf_targetids=[0,1,0,1,0,1], \
             leaf_weights=f64[6]{{1.5,-2,0.25,4,-0.5,8}}, membership_values=f64[3]{{1,3,nan}}, n_targets=2, \
             nodes_falseleafs=[1,1,0,1], nodes_falsenodeids=[2,1,3,5], nodes_featureids=[0,1,2,0], \
             nodes_missing_value_tracks_true=[0,0,1,0], nodes_modes=u8[4]{{0,6,3,4}}, nodes_splits=f64[4]{{0.5,0,-1,2}}, \
             nodes_trueleafs=[0,1,1,1], nodes_truenodeids=[1,0,3,4], post_transform=0, tree_roots=[0,2]}}(%x) : {dtype}[5,2]\n  return %y\n}}"
        )
    }

    #[test]
    fn tree_ensemble_every_aggregate() {
        let x = Tensor::from_vec(&[5, 3], vec![0.0f64, 1.0, 0.0, 0.0, 2.0, -5.0, 1.0, 3.0, f64::NAN, 2.0, 0.0, -2.0, 0.5, 3.0, -1.0]).unwrap();
        for agg in 0..4 {
            same_as_reference(&forest(agg, "f64"), std::slice::from_ref(&x), TOL);
            same_as_reference(&forest(agg, "f32"), &[x.cast(crate::tensor::DType::F32).unwrap()], TOL);
        }
    }

    #[test]
    fn label_encoder_maps_every_way() {
        let cases = [
            ("string[4]", "keys_tensor=string[3]{\"a\",\"b\",\"a\"}, values_tensor=i64[3]{1,2,3}, default_tensor=i64[1]{-1}", "i64[4]", s(&[4], &["a", "b", "c", ""])),
            ("i64[2,2]", "keys_tensor=i64[2]{5,7}, values_tensor=string[2]{\"five\",\"seven\"}, default_tensor=string[1]{\"?\"}", "string[2,2]", Tensor::from_vec(&[2, 2], vec![7i64, 5, 0, 7]).unwrap()),
            ("f32[3]", "keys_tensor=f32[2]{0,2.5}, values_tensor=f64[2]{10,20}, default_tensor=f64[1]{0.5}", "f64[3]", Tensor::from_vec(&[3], vec![-0.0f32, 2.5, f32::NAN]).unwrap()),
            ("string[3]", "keys_tensor=string[2]{\"x\",\"y\"}, values_tensor=string[2]{\"X\",\"\"}, default_tensor=string[1]{\"none\"}", "string[3]", s(&[3], &["y", "x", "z"])),
        ];
        for (xt, attrs, yt, x) in cases {
            let text = format!("graph(%x: {xt}) {{\n  %y = ai.onnx.ml.LabelEncoder{{{attrs}}}(%x) : {yt}\n  return %y\n}}");
            same_as_reference(&text, &[x], TOL);
        }
    }
}
