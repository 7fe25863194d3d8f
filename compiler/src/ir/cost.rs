//! Cost estimates: floating-point operations per op, for `neoc inspect` and compile summaries.
//! A multiply-add counts as 2. Ops without a rule count one operation per output element.

use super::{Graph, NodeKind, OpImpl};

fn prod(s: &[usize]) -> u64 {
    s.iter().map(|&d| d as u64).product()
}

/// Estimated FLOPs of one op node.
pub fn node_flops(g: &Graph, n: super::NodeId) -> u64 {
    let node = g.node(n);
    let NodeKind::Op(op) = &node.kind else { return 0 };
    let shape = |i: usize| node.inputs.get(i).copied().flatten().map(|v| g.ty(v).shape.clone()).unwrap_or_default();
    let out: u64 = node.outputs.first().map(|o| prod(&o.ty.shape)).unwrap_or(0);
    match op.name() {
        "Conv" | "FusedConv" | "ConvInteger" | "QLinearConv" => {
            let w = shape(if op.name() == "QLinearConv" { 3 } else { 1 });
            2 * out * prod(w.get(1..).unwrap_or(&[]))
        }
        "ConvTranspose" => {
            let (x, w) = (shape(0), shape(1));
            2 * prod(&x) * prod(w.get(1..).unwrap_or(&[]))
        }
        "MatMul" | "MatMulInteger" | "Gemm" | "FusedMatMul" => {
            let a = shape(0);
            let k = match (op.name(), a.len()) {
                (_, 0) => 1,
                // FusedMatMul's 2-D form may be Gemm's, with A transposed.
                ("Gemm", _) | ("FusedMatMul", 2) => {
                    // K is the shared dim of A (which may be transposed); min(M,K) guess is
                    // avoided by using A's element count over the output rows.
                    let m = node.outputs.first().and_then(|o| o.ty.shape.first().copied()).unwrap_or(1).max(1);
                    prod(&a) / m as u64
                }
                _ => a[a.len() - 1] as u64,
            };
            2 * out * k
        }
        "QLinearMatMul" => {
            let a = shape(0);
            2 * out * a.last().copied().unwrap_or(1) as u64
        }
        "LSTM" | "GRU" | "RNN" => {
            let (x, w, r) = (shape(0), shape(1), shape(2));
            // Every (step, batch) row multiplies the input by W and the state by R, per direction.
            let rows = prod(&x[..x.len().saturating_sub(1)]);
            2 * rows * (prod(&w) + prod(&r))
        }
        "Attention" => {
            let (q, k) = (shape(0), shape(1));
            // Q·Kᵀ and P·V: 2 · 2 · (query elements) · (key sequence length).
            let kv_seq = if k.len() == 4 { k[2] } else { k.get(1).copied().unwrap_or(1) };
            4 * prod(&q) * kv_seq as u64
        }
        _ => out,
    }
}

/// Estimated FLOPs of the whole graph.
pub fn graph_flops(g: &Graph) -> u64 {
    g.node_ids().map(|n| node_flops(g, n)).sum()
}
