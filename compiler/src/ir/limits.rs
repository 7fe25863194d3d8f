//! Size and work limits: the one place where neoc decides how large a value, an index map
//! or a compile-time evaluation may be. Every size that comes from a model (dims of
//! initializers and graph inputs, shapes computed from attribute or input values, fold
//! results) goes through these checked helpers before anything is allocated for it, so a
//! hostile model gets an error naming the limit instead of an overflow or an abort.
//!
//! | limit | value | what it bounds |
//! | --- | --- | --- |
//! | [`MAX_VALUE_BYTES`] | 16 GiB | one value (initializer, graph input, inferred output) |
//! | [`MAX_ELEMENTS`] | 2^34 | elements of one value (16 GiB of bytes or bools) |
//! | [`MAX_INDEX_MAP`] | 2^27 | entries of the per-axis index maps of Slice/Pad/Tile/Split/CenterCropPad (16 bytes each) |
//! | [`FOLD_LIMIT_BYTES`] | 1 GiB | results of folding one node, at import and in `fold-constants` alike |
//! | [`FOLD_TOTAL_BYTES`] | 4 GiB | results of folding at import, all nodes together |
//! | [`FOLD_LIMIT_WORK`] | 2^31 | estimated operations of one folded op (see [`fold_work`]) |

use super::{Graph, NodeKind, OpImpl, Unsupported, ValueType};
use crate::tensor::DType;
use anyhow::{Result, anyhow};

/// The highest rank a value may have (numpy's limit).
pub const MAX_RANK: usize = 64;
/// The largest single value the IR accepts.
pub const MAX_VALUE_BYTES: usize = 16 << 30;
/// The most elements one value may have.
pub const MAX_ELEMENTS: usize = 1 << 34;
/// The most entries the index maps of one movement op may have together. A map entry is 16
/// bytes, so this bounds the compiler's memory for one op at 2 GiB; a real model's Slice or
/// Pad maps hold the sum of its dims, far below this.
pub const MAX_INDEX_MAP: usize = 1 << 27;
/// Folded results larger than this (all outputs of one node together) are not materialised,
/// so a hostile graph cannot make the compiler allocate more than this per node; the node
/// stays and is compiled (or refused, for ops only the compiler computes). Real models fold
/// weights generated from shapes (the ONNX `light` models: VGG-19's 411 MB fc6 weight).
/// `Constant` nodes are exempt: their value is already in the model.
pub const FOLD_LIMIT_BYTES: usize = 1 << 30;
/// The most bytes the importer folds in all (many nodes each under [`FOLD_LIMIT_BYTES`]).
pub const FOLD_TOTAL_BYTES: usize = 4 << 30;
/// The most work (estimated element operations, [`fold_work`]) one folded node may cost: at
/// the reference evaluator's speed (10⁸–10⁹ simple operations a second) about a few seconds.
pub const FOLD_LIMIT_WORK: u64 = 1 << 31;

/// A limit error: `not supported: <what>` (the model is not necessarily wrong, but neoc
/// will not allocate it).
pub fn too_large(what: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Unsupported(what.into()))
}

/// The element count of `shape`, checked for overflow and against [`MAX_ELEMENTS`].
pub fn elements(shape: &[usize]) -> Result<usize> {
    match shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) {
        Some(n) if n <= MAX_ELEMENTS => Ok(n),
        _ => Err(too_large(format!("shape {shape:?} has more than 2^34 elements"))),
    }
}

/// Bytes of a dense value of `dtype` and `shape` (sub-byte types packed, 8 per string
/// handle), checked for overflow and against [`MAX_VALUE_BYTES`].
pub fn value_bytes(dtype: DType, shape: &[usize]) -> Result<usize> {
    let n = elements(shape).map_err(|_| too_large(format!("a value of type {}, larger than the 16 GiB limit for one value", ValueType::new(dtype, shape))))?;
    match n.checked_mul(dtype.bits()).map(|b| b.div_ceil(8)) {
        Some(b) if b <= MAX_VALUE_BYTES => Ok(b),
        _ => Err(too_large(format!("a value of type {}, larger than the {} GiB limit for one value", ValueType::new(dtype, shape), MAX_VALUE_BYTES >> 30))),
    }
}

/// Checks a value type against the limits (rank and size).
pub fn check_type(t: &ValueType) -> Result<()> {
    if t.rank() > MAX_RANK {
        return Err(too_large(format!("a value of rank {}, higher than the limit of {MAX_RANK}", t.rank())));
    }
    value_bytes(t.dtype, &t.shape).map(|_| ())
}

/// A dimension computed from model values (an attribute, a constant input): must be in
/// `0..=MAX_ELEMENTS`.
pub fn dim(v: i128, what: &str) -> Result<usize> {
    if (0..=MAX_ELEMENTS as i128).contains(&v) {
        Ok(v as usize)
    } else if v < 0 {
        Err(anyhow!("{what}: dimension {v} is negative"))
    } else {
        Err(too_large(format!("{what}: dimension {v} is larger than 2^34")))
    }
}

/// A dimension given as i64 by a model (initializer dims, graph input dims).
pub fn dim_i64(v: i64, what: &str) -> Result<usize> {
    dim(v as i128, what)
}

/// Checks that index maps of these lengths may be built (before building them).
pub fn index_maps(lens: &[usize], op: &str) -> Result<()> {
    let total = lens.iter().try_fold(0usize, |a, &l| a.checked_add(l));
    match total {
        Some(t) if t <= MAX_INDEX_MAP => Ok(()),
        _ => Err(too_large(format!("{op}: output dims {lens:?} need index maps larger than 2^27 entries"))),
    }
}

/// Why a node with these outputs and this estimated work must not be folded, if it must not.
pub fn fold_refusal(op_name: &str, outputs: &[ValueType], work: u64) -> Option<String> {
    if op_name == "Constant" {
        return None;
    }
    let bytes = outputs.iter().try_fold(0usize, |a, t| value_bytes(t.dtype, &t.shape).ok().and_then(|b| a.checked_add(b)));
    match bytes {
        Some(b) if b <= FOLD_LIMIT_BYTES => {}
        _ => return Some(format!("its result is larger than the {} MiB folding limit", FOLD_LIMIT_BYTES >> 20)),
    }
    if work > FOLD_LIMIT_WORK {
        return Some(format!("evaluating it would take about {work} operations, over the folding limit of 2^31"));
    }
    None
}

fn numel(s: &[usize]) -> u64 {
    s.iter().fold(1u64, |a, &d| a.saturating_mul(d as u64))
}

/// Estimated element operations of evaluating `op` with the reference evaluator on inputs
/// of `inputs` types giving `outputs`: the ops whose cost grows faster than their inputs and
/// outputs are counted by their loops (products, convolutions, per-line quadratic ops,
/// loops over a body); every other op by the elements it reads and writes. `trip` is a
/// Loop's constant trip count, if known. Saturates instead of overflowing.
pub fn fold_work(op: &crate::ir::Op, inputs: &[Option<&ValueType>], outputs: &[ValueType], trip: Option<i64>) -> u64 {
    let shape = |i: usize| inputs.get(i).copied().flatten().map(|t| t.shape.as_slice()).unwrap_or(&[]);
    let ins: u64 = inputs.iter().flatten().fold(0u64, |a, t| a.saturating_add(numel(&t.shape)));
    let outs: u64 = outputs.iter().fold(0u64, |a, t| a.saturating_add(numel(&t.shape)));
    let linear = ins.saturating_add(outs).max(1);
    let out0 = outputs.first().map(|t| numel(&t.shape)).unwrap_or(0);
    let body = |g: &Graph| -> u64 {
        g.node_ids()
            .filter(|n| matches!(g.node(*n).kind, NodeKind::Op(_)))
            .fold(1u64, |a, n| a.saturating_add(g.node(n).outputs.iter().fold(1u64, |b, o| b.saturating_add(numel(&o.ty.shape)))))
    };
    match op.name() {
        "MatMul" | "MatMulInteger" | "QLinearMatMul" | "Gemm" | "FusedMatMul" => {
            let a = shape(0);
            out0.saturating_mul(a.iter().copied().max().unwrap_or(1) as u64).max(linear)
        }
        "Conv" | "ConvInteger" | "QLinearConv" | "ConvTranspose" | "FusedConv" | "DeformConv" => {
            let w = shape(if op.name() == "QLinearConv" { 3 } else { 1 });
            let x = shape(0);
            out0.max(numel(x)).saturating_mul(numel(w.get(1..).unwrap_or(&[])).max(1)).max(linear)
        }
        "Loop" => match trip {
            // A loop with no constant trip count may run 2^31 times before the evaluator stops.
            None => u64::MAX,
            Some(t) => (t.max(0) as u64).saturating_mul(body_work(op, body)).max(linear),
        },
        "Scan" => {
            let len = inputs.iter().flatten().map(|t| t.shape.first().copied().unwrap_or(1) as u64).max().unwrap_or(1);
            len.saturating_mul(body_work(op, body)).max(linear)
        }
        // Per-line or pairwise work: quadratic in the largest input.
        "TopK" | "DFT" | "STFT" | "NonMaxSuppression" | "Unique" | "Einsum" | "Attention" | "LSTM" | "GRU" | "RNN"
        | "TfIdfVectorizer" | "Col2Im" | "RoiAlign" | "MelWeightMatrix" | "LinearAttention" => {
            let big = inputs.iter().flatten().map(|t| numel(&t.shape)).max().unwrap_or(1).max(out0);
            big.saturating_mul(big).max(linear)
        }
        _ => linear,
    }
}

/// The work of one run of the op's body (its first graph attribute), at least 1.
fn body_work(op: &crate::ir::Op, body: impl Fn(&Graph) -> u64) -> u64 {
    op.attrs().values().find_map(|a| match a {
        super::Attr::Graph(g) => Some(body(g)),
        _ => None,
    }).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_checked_not_wrapped() {
        assert_eq!(elements(&[2, 3]).unwrap(), 6);
        assert_eq!(elements(&[]).unwrap(), 1);
        assert!(elements(&[1 << 40, 1 << 40]).is_err());
        assert!(elements(&[usize::MAX, 2]).is_err());
        assert_eq!(value_bytes(DType::I4, &[3]).unwrap(), 2);
        assert!(value_bytes(DType::F32, &[1 << 33]).is_err());
        assert!(dim(-1, "x").is_err() && dim(1 << 40, "x").is_err());
        assert!(index_maps(&[1 << 26, 1 << 26, 1], "Tile").is_err());
        assert!(index_maps(&[usize::MAX, 2], "Tile").is_err());
    }

    #[test]
    fn folding_is_bounded_by_bytes_and_work() {
        let small = [ValueType::new(DType::F32, vec![4])];
        assert!(fold_refusal("Add", &small, 8).is_none());
        assert!(fold_refusal("Add", &[ValueType::new(DType::F32, vec![1 << 29])], 1).is_some());
        assert!(fold_refusal("Constant", &[ValueType::new(DType::F32, vec![1 << 29])], 1).is_none());
        assert!(fold_refusal("Add", &small, FOLD_LIMIT_WORK + 1).is_some());
    }
}
