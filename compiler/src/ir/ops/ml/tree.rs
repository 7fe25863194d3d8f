//! TreeEnsemble (ai.onnx.ml opset 5): sums (or averages, min, max) leaf weights per target
//! over a forest of binary decision trees.
//!
//! Node `i` compares feature `nodes_featureids[i]` with `nodes_splits[i]` (or, for
//! BRANCH_MEMBER, with its set from `membership_values`, sets listed in node order and
//! separated by NaN). A NaN feature takes the true branch where
//! `nodes_missing_value_tracks_true[i]` is 1. The true/false successors are node indices, or
//! leaf indices where `nodes_trueleafs[i]` / `nodes_falseleafs[i]` is 1. Values are computed in
//! f64 and rounded once to the input type; MIN/MAX start from the type's largest/smallest
//! finite value, like the ONNX reference. Only `post_transform` NONE is supported (the ONNX
//! reference implements no other). `nodes_hitrates` only guides optimisation and is ignored.

use super::{Ml, Op};
use crate::ir::{Attr, Attrs, NodeCtx, ValueType};
use crate::tensor::{ArrayD, DType, IxDyn, Tensor};
use anyhow::{Result, bail};

/// An f64 that compares by bits, so ops holding NaN thresholds still equal themselves.
#[derive(Clone, Copy, Debug)]
pub struct F(pub f64);

impl PartialEq for F {
    fn eq(&self, o: &F) -> bool {
        self.0.to_bits() == o.0.to_bits()
    }
}

/// A float list attribute with the type it was given in (for printing it back).
#[derive(Clone, Debug, PartialEq)]
pub struct Floats {
    pub dtype: DType,
    pub v: Vec<F>,
}

impl Floats {
    fn from_tensor(t: &Tensor) -> Result<Floats> {
        if !matches!(t.dtype(), DType::F32 | DType::F64 | DType::F16) {
            bail!("expected a float tensor, got {}", t.dtype());
        }
        Ok(Floats { dtype: t.dtype(), v: t.to_f64_vec()?.into_iter().map(F).collect() })
    }
    fn to_tensor(&self) -> Tensor {
        let a = ArrayD::from_shape_vec(IxDyn(&[self.v.len()]), self.v.iter().map(|f| f.0).collect()).expect("1-D");
        Tensor::from_f64_array(self.dtype, a).expect("float dtype")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeMode {
    Leq,
    Lt,
    Gte,
    Gt,
    Eq,
    Neq,
    Member,
}

const MODES: [NodeMode; 7] = [NodeMode::Leq, NodeMode::Lt, NodeMode::Gte, NodeMode::Gt, NodeMode::Eq, NodeMode::Neq, NodeMode::Member];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aggregate {
    Average,
    Sum,
    Min,
    Max,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TreeEnsemble {
    pub aggregate: Aggregate,
    pub tree_roots: Vec<usize>,
    pub modes: Vec<NodeMode>,
    pub featureids: Vec<usize>,
    pub splits: Floats,
    pub true_ids: Vec<usize>,
    pub true_leafs: Vec<bool>,
    pub false_ids: Vec<usize>,
    pub false_leafs: Vec<bool>,
    pub missing_tracks_true: Option<Vec<bool>>,
    pub membership: Option<Floats>,
    pub leaf_targetids: Vec<usize>,
    pub leaf_weights: Floats,
    pub n_targets: usize,
}

impl TreeEnsemble {
    /// The member set of each BRANCH_MEMBER node, by node index (sets are listed in node
    /// order, each ended by a NaN).
    pub(crate) fn member_sets(&self) -> Vec<Vec<f64>> {
        let mut sets = vec![vec![]; self.modes.len()];
        let mut groups = self.membership.iter().flat_map(|m| m.v.split(|f| f.0.is_nan()));
        for (i, m) in self.modes.iter().enumerate() {
            if *m == NodeMode::Member {
                sets[i] = groups.next().map(|g| g.iter().map(|f| f.0).collect()).unwrap_or_default();
            }
        }
        sets
    }

    /// The leaf one tree sends row `x` to.
    fn leaf(&self, root: usize, x: &[f64], sets: &[Vec<f64>]) -> Result<usize> {
        let mut i = root;
        // A well-formed tree visits each node at most once.
        for _ in 0..=self.modes.len() {
            let f = self.featureids[i];
            let Some(&v) = x.get(f) else { bail!("TreeEnsemble: feature {f} is out of range for {} features", x.len()) };
            let s = self.splits.v[i].0;
            let go_true = match self.modes[i] {
                NodeMode::Leq => v <= s,
                NodeMode::Lt => v < s,
                NodeMode::Gte => v >= s,
                NodeMode::Gt => v > s,
                NodeMode::Eq => v == s,
                NodeMode::Neq => v != s,
                NodeMode::Member => sets[i].contains(&v),
            } || (v.is_nan() && self.missing_tracks_true.as_ref().is_some_and(|m| m[i]));
            let (next, is_leaf) = if go_true { (self.true_ids[i], self.true_leafs[i]) } else { (self.false_ids[i], self.false_leafs[i]) };
            if is_leaf {
                return Ok(next);
            }
            i = next;
        }
        bail!("TreeEnsemble: the tree at root {root} has a cycle")
    }

    fn check_input(&self, x: &ValueType) -> Result<(usize, usize)> {
        if !matches!(x.dtype, DType::F32 | DType::F64 | DType::F16) {
            bail!("TreeEnsemble: {} input is not supported (float, double or float16)", x.dtype);
        }
        match x.shape[..] {
            [n, f] => {
                if let Some(bad) = self.featureids.iter().find(|&&id| id >= f) {
                    bail!("TreeEnsemble: feature {bad} is out of range for {f} features");
                }
                Ok((n, f))
            }
            _ => bail!("TreeEnsemble: the input must have shape [N, features], got {:?}", x.shape),
        }
    }

    pub(super) fn infer(&self, x: &ValueType) -> Result<ValueType> {
        let (n, _) = self.check_input(x)?;
        Ok(ValueType::new(x.dtype, vec![n, self.n_targets]))
    }

    pub(super) fn eval(&self, x: &Tensor) -> Result<Tensor> {
        let (n, f) = self.check_input(&ValueType::of(x))?;
        let data: Vec<f64> = x.to_f64_array()?.iter().copied().collect();
        let sets = self.member_sets();
        let start = match (self.aggregate, x.dtype()) {
            (Aggregate::Min, DType::F32) => f32::MAX as f64,
            (Aggregate::Min, DType::F16) => 65504.0,
            (Aggregate::Min, _) => f64::MAX,
            (Aggregate::Max, DType::F32) => f32::MIN as f64,
            (Aggregate::Max, DType::F16) => -65504.0,
            (Aggregate::Max, _) => f64::MIN,
            _ => 0.0,
        };
        let mut out = vec![start; n * self.n_targets];
        let trees = self.tree_roots.len() as f64;
        for r in 0..n {
            let row = &data[r * f..(r + 1) * f];
            for &root in &self.tree_roots {
                let leaf = self.leaf(root, row, &sets)?;
                let (w, t) = (self.leaf_weights.v[leaf].0, self.leaf_targetids[leaf]);
                let o = &mut out[r * self.n_targets + t];
                *o = match self.aggregate {
                    Aggregate::Sum => *o + w,
                    Aggregate::Average => *o + w / trees,
                    Aggregate::Min => o.min(w),
                    Aggregate::Max => o.max(w),
                };
            }
        }
        Tensor::from_f64_array(x.dtype(), ArrayD::from_shape_vec(IxDyn(&[n, self.n_targets]), out)?)
    }

    pub(super) fn attrs(&self, m: &mut Attrs) {
        let ints = |v: &[usize]| Attr::Ints(v.iter().map(|&i| i as i64).collect());
        let flags = |v: &[bool]| Attr::Ints(v.iter().map(|&b| b as i64).collect());
        let agg = [Aggregate::Average, Aggregate::Sum, Aggregate::Min, Aggregate::Max].iter().position(|a| *a == self.aggregate).unwrap_or(1);
        m.insert("aggregate_function".into(), Attr::Int(agg as i64));
        m.insert("post_transform".into(), Attr::Int(0));
        m.insert("tree_roots".into(), ints(&self.tree_roots));
        let modes: Vec<u8> = self.modes.iter().map(|md| MODES.iter().position(|x| x == md).unwrap_or(0) as u8).collect();
        m.insert("nodes_modes".into(), Attr::Tensor(Tensor::from_vec(&[modes.len()], modes).expect("1-D")));
        m.insert("nodes_featureids".into(), ints(&self.featureids));
        m.insert("nodes_splits".into(), Attr::Tensor(self.splits.to_tensor()));
        m.insert("nodes_truenodeids".into(), ints(&self.true_ids));
        m.insert("nodes_trueleafs".into(), flags(&self.true_leafs));
        m.insert("nodes_falsenodeids".into(), ints(&self.false_ids));
        m.insert("nodes_falseleafs".into(), flags(&self.false_leafs));
        if let Some(t) = &self.missing_tracks_true {
            m.insert("nodes_missing_value_tracks_true".into(), flags(t));
        }
        if let Some(mv) = &self.membership {
            m.insert("membership_values".into(), Attr::Tensor(mv.to_tensor()));
        }
        m.insert("leaf_targetids".into(), ints(&self.leaf_targetids));
        m.insert("leaf_weights".into(), Attr::Tensor(self.leaf_weights.to_tensor()));
        m.insert("n_targets".into(), Attr::Int(self.n_targets as i64));
    }
}

pub(super) fn import(ctx: &mut NodeCtx) -> Result<Op> {
    let req_ints = |name: &str| ctx.opt_ints(name)?.ok_or_else(|| anyhow::anyhow!("TreeEnsemble: attribute '{name}' is missing"));
    let req_tensor = |name: &str| ctx.opt_tensor(name)?.ok_or_else(|| anyhow::anyhow!("TreeEnsemble: attribute '{name}' is missing"));
    let index = |name: &str, v: Vec<i64>| -> Result<Vec<usize>> {
        v.into_iter().map(|i| usize::try_from(i).map_err(|_| anyhow::anyhow!("TreeEnsemble: {name} has a negative entry {i}"))).collect()
    };
    let flags = |name: &str, v: Vec<i64>| -> Result<Vec<bool>> {
        v.into_iter().map(|i| match i { 0 => Ok(false), 1 => Ok(true), _ => bail!("TreeEnsemble: {name} entries must be 0 or 1, got {i}") }).collect()
    };
    let aggregate = match ctx.int("aggregate_function", 1)? {
        0 => Aggregate::Average,
        1 => Aggregate::Sum,
        2 => Aggregate::Min,
        3 => Aggregate::Max,
        a => return Err(ctx.unsupported(format!("TreeEnsemble aggregate_function {a}"))),
    };
    match ctx.int("post_transform", 0)? {
        0 => {}
        p => return Err(ctx.unsupported(format!("TreeEnsemble post_transform {p} (only 0, NONE)"))),
    }
    ctx.ignore(&["nodes_hitrates"]);
    let modes = req_tensor("nodes_modes")?
        .to_i64_vec()?
        .into_iter()
        .map(|m| usize::try_from(m).ok().and_then(|m| MODES.get(m).copied()).ok_or_else(|| anyhow::anyhow!("TreeEnsemble: unknown node mode {m}")))
        .collect::<Result<Vec<_>>>()?;
    let t = TreeEnsemble {
        aggregate,
        tree_roots: index("tree_roots", req_ints("tree_roots")?)?,
        modes,
        featureids: index("nodes_featureids", req_ints("nodes_featureids")?)?,
        splits: Floats::from_tensor(&req_tensor("nodes_splits")?)?,
        true_ids: index("nodes_truenodeids", req_ints("nodes_truenodeids")?)?,
        true_leafs: flags("nodes_trueleafs", req_ints("nodes_trueleafs")?)?,
        false_ids: index("nodes_falsenodeids", req_ints("nodes_falsenodeids")?)?,
        false_leafs: flags("nodes_falseleafs", req_ints("nodes_falseleafs")?)?,
        missing_tracks_true: ctx.opt_ints("nodes_missing_value_tracks_true")?.map(|v| flags("nodes_missing_value_tracks_true", v)).transpose()?,
        membership: ctx.opt_tensor("membership_values")?.map(|t| Floats::from_tensor(&t)).transpose()?,
        leaf_targetids: index("leaf_targetids", req_ints("leaf_targetids")?)?,
        leaf_weights: Floats::from_tensor(&req_tensor("leaf_weights")?)?,
        n_targets: 0,
    };
    let n_targets = match ctx.opt_int("n_targets")? {
        Some(n) => usize::try_from(n).map_err(|_| anyhow::anyhow!("TreeEnsemble: n_targets {n} is negative"))?,
        None => t.leaf_targetids.iter().map(|&i| i + 1).max().unwrap_or(0),
    };
    let t = TreeEnsemble { n_targets, ..t };
    validate(&t)?;
    Ok(Ml::TreeEnsemble(Box::new(t)).into())
}

/// Checks every list length and index, so evaluation cannot go out of bounds.
fn validate(t: &TreeEnsemble) -> Result<()> {
    let n = t.modes.len();
    let lens = [t.featureids.len(), t.splits.v.len(), t.true_ids.len(), t.true_leafs.len(), t.false_ids.len(), t.false_leafs.len()];
    if lens.iter().any(|&l| l != n) || t.missing_tracks_true.as_ref().is_some_and(|m| m.len() != n) {
        bail!("TreeEnsemble: the nodes_* attributes must all have {n} entries");
    }
    let leaves = t.leaf_weights.v.len();
    if t.leaf_targetids.len() != leaves {
        bail!("TreeEnsemble: {} leaf_targetids for {leaves} leaf_weights", t.leaf_targetids.len());
    }
    if let Some(bad) = t.leaf_targetids.iter().find(|&&id| id >= t.n_targets) {
        bail!("TreeEnsemble: leaf target {bad} is out of range for {} targets", t.n_targets);
    }
    if let Some(bad) = t.tree_roots.iter().find(|&&r| r >= n) {
        bail!("TreeEnsemble: tree root {bad} is out of range for {n} nodes");
    }
    for i in 0..n {
        for (id, leaf) in [(t.true_ids[i], t.true_leafs[i]), (t.false_ids[i], t.false_leafs[i])] {
            if id >= if leaf { leaves } else { n } {
                bail!("TreeEnsemble: node {i} points to {} {id}, which does not exist", if leaf { "leaf" } else { "node" });
            }
        }
    }
    let members = t.modes.iter().filter(|m| **m == NodeMode::Member).count();
    let sets = t.membership.as_ref().map_or(0, |m| m.v.iter().filter(|f| f.0.is_nan()).count());
    if members > 0 && sets != members {
        bail!("TreeEnsemble: {members} BRANCH_MEMBER nodes need as many NaN-terminated sets in membership_values, found {sets}");
    }
    Ok(())
}
