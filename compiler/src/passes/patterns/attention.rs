//! `fuse-attention`: scaled dot-product attention over 4-D `[B, H, S, D]` operands →
//! `Attention` (opset 23+, `Attention::Sdpa`).
//!
//! Rule `attention`, matched from the last MatMul:
//! ```text
//! qk = MatMul(Q·c₁, Kᵀ·c₂)              c₁, c₂ optional splat constants
//! s  = qk·c₃ | qk/c₃                    optional
//! a  = s + M                           optional mask, either operand order
//! p  = Softmax(a, axis=-1)
//! p' = Where(IsNaN(p), 0, p)           optional (PyTorch's SDPA export)
//! y  = MatMul(p', V)
//! ```
//! → `Attention{scale=c₁·c₂·c₃}(Q, K, V, M)` with K = Kᵀ transposed back (composed into the
//! producing Transpose when there is one).
//!
//! Why the semantics match: Attention adds M to `scale·Q·Kᵀ` (broadcasting a float mask of
//! Q's type exactly like Add, as long as M's last dim is the key count: a shorter mask would
//! be padded with −∞ instead of broadcast), takes the softmax over the keys and multiplies
//! by V. It applies the scale as √scale to Q and K, as PyTorch's export does. One difference
//! remains: a row whose mask is −∞ everywhere gives zeros in Attention and NaN in a bare
//! Softmax. So with a mask, the rewrite needs either the `Where(IsNaN(p), 0, p)` guard (which
//! turns those NaNs into the same zeros) or a constant mask with only finite values.
//! Q, K, V must agree on B and H exactly (MatMul would broadcast them; Attention does not).

use super::super::PassCx;
use super::super::rewrite::{Rule, add_built, apply_rules, out, pair, single_use, splat};
use super::{install, is_unary};
use crate::ir::ops::binary::Binary;
use crate::ir::ops::matmul::MatMul;
use crate::ir::ops::movement::Movement;
use crate::ir::ops::softmax::{Softmax, SoftmaxKind};
use crate::ir::ops::unary::Unary;
use crate::ir::{Attr, Graph, NodeId, Op, ValueId};
use anyhow::Result;

fn is_matmul(g: &Graph, v: ValueId) -> bool {
    matches!(g.node(v.node).op(), Some(Op::MatMul(MatMul::MatMul)))
}

/// Peels an optional `v·c` / `c·v` / `v/c` (single reader, splat c, type kept): returns the
/// inner value and the factor.
fn peel_scale(g: &Graph, v: ValueId, allow_div: bool) -> (ValueId, f64) {
    let inner = || -> Option<(ValueId, f64)> {
        if !single_use(g, v) {
            return None;
        }
        let (a, b) = pair(g, v.node)?;
        let (x, f) = match g.node(v.node).op()? {
            Op::Binary(Binary::Mul) => match (splat(g, a), splat(g, b)) {
                (None, Some(c)) => (a, c),
                (Some(c), None) => (b, c),
                _ => return None,
            },
            Op::Binary(Binary::Div) if allow_div => (a, 1.0 / splat(g, b).filter(|c| *c != 0.0)?),
            _ => return None,
        };
        (g.ty(x) == g.ty(v)).then_some((x, f))
    };
    inner().unwrap_or((v, 1.0))
}

/// `Where(IsNaN(p), 0, p)`: returns p.
fn nan_guard(g: &Graph, v: ValueId) -> Option<ValueId> {
    if !matches!(g.node(v.node).op()?, Op::Binary(Binary::Where)) || !single_use(g, v) {
        return None;
    }
    let [Some(c), Some(zero), Some(p)] = g.node(v.node).inputs[..] else { return None };
    let ok = is_unary(g, c.node, Unary::IsNaN)
        && g.node(c.node).inputs[0] == Some(p)
        && single_use(g, c)
        && splat(g, zero) == Some(0.0)
        && g.ty(v) == g.ty(p)
        && g.users(p).iter().all(|(u, _)| *u == c.node || *u == v.node);
    ok.then_some(p)
}

/// A constant whose values are all finite.
fn finite_constant(g: &Graph, v: ValueId) -> bool {
    g.konst(v).and_then(|c| c.tensor().ok()).and_then(|t| t.to_f64_vec().ok()).is_some_and(|xs| xs.iter().all(|x| x.is_finite()))
}

/// The key tensor `[B, H, S, D]` for a given `Kᵀ` `[B, H, D, S]`.
fn untranspose(g: &mut Graph, kt: ValueId, base: &str) -> Result<ValueId> {
    let swap = |p: &[i64]| vec![p[0], p[1], p[3], p[2]];
    if let Some(Op::Movement(Movement::Transpose { perm: Some(p) })) = g.node(kt.node).op()
        && p.len() == 4
        && single_use(g, kt)
    {
        let perm = swap(p);
        let src = g.node(kt.node).inputs[0];
        if let (true, Some(src)) = (perm == [0, 1, 2, 3], src) {
            return Ok(src);
        }
        return add_built(g, &format!("{base}.key"), "Transpose", &[("perm", Attr::Ints(perm))], &[src]);
    }
    add_built(g, &format!("{base}.key"), "Transpose", &[("perm", Attr::Ints(vec![0, 1, 3, 2]))], &[Some(kt)])
}

fn attention(g: &mut Graph, n: NodeId) -> Result<bool> {
    if !is_matmul(g, out(n)) {
        return Ok(false);
    }
    let Some((probs, v)) = pair(g, n) else { return Ok(false) };
    // Softmax, behind the optional NaN guard.
    let (sm, guarded) = match nan_guard(g, probs) {
        Some(p) => (p, true),
        None => (probs, false),
    };
    if !guarded && !single_use(g, sm) {
        return Ok(false);
    }
    let Some(Op::Softmax(Softmax { kind: SoftmaxKind::Softmax, axis, .. })) = g.node(sm.node).op() else { return Ok(false) };
    if g.ty(sm).rank() != 4 || !(*axis == -1 || *axis == 3) {
        return Ok(false);
    }
    let Some(a) = g.node(sm.node).inputs[0] else { return Ok(false) };
    // Optional mask.
    let mut scores = a;
    let mut mask = None;
    if matches!(g.node(a.node).op(), Some(Op::Binary(Binary::Add))) && single_use(g, a) {
        let (l, r) = pair(g, a.node).unwrap_or((a, a));
        let inner = |x: ValueId| is_matmul(g, peel_scale(g, x, true).0);
        let (s, m) = if inner(l) { (l, r) } else if inner(r) { (r, l) } else { return Ok(false) };
        scores = s;
        mask = Some(m);
    }
    let (qk, c3) = peel_scale(g, scores, true);
    if !is_matmul(g, qk) || !single_use(g, qk) {
        return Ok(false);
    }
    let Some((qs, kts)) = pair(g, qk.node) else { return Ok(false) };
    let ((q, c1), (kt, c2)) = (peel_scale(g, qs, false), peel_scale(g, kts, false));
    // Shapes: Q [b,h,sq,d], Kᵀ [b,h,d,skv], V [b,h,skv,dv].
    let (qt, ktt, vt) = (g.ty(q).clone(), g.ty(kt).clone(), g.ty(v).clone());
    if qt.rank() != 4 || ktt.rank() != 4 || vt.rank() != 4 {
        return Ok(false);
    }
    let (b, h, d, skv) = (qt.shape[0], qt.shape[1], qt.shape[3], ktt.shape[3]);
    let shapes_ok = ktt.shape[..3] == [b, h, d] && vt.shape[..3] == [b, h, skv];
    let float = matches!(qt.dtype, crate::tensor::DType::F32 | crate::tensor::DType::F64 | crate::tensor::DType::F16 | crate::tensor::DType::BF16);
    if !shapes_ok || !float || ktt.dtype != qt.dtype || vt.dtype != qt.dtype || g.ty(a) != g.ty(qk) {
        return Ok(false);
    }
    if let Some(m) = mask {
        let mt = g.ty(m);
        if mt.dtype != qt.dtype || mt.rank() > 4 || mt.shape.last() != Some(&skv) {
            return Ok(false);
        }
        if !guarded && !finite_constant(g, m) {
            return Ok(false);
        }
    }
    let scale = c1 * c2 * c3;
    if !(scale > 0.0 && scale.is_finite()) {
        return Ok(false);
    }
    let name = g.value_name(out(n)).to_string();
    let k = untranspose(g, kt, &name)?;
    install(g, out(n), "Attention", &[("scale", Attr::Float(scale as f32))], &[Some(q), Some(k), Some(v), mask])
}

pub const RULES: &[Rule] = &[Rule { name: "attention", apply: attention }];

pub fn fuse_attention(g: &mut Graph, cx: &PassCx) -> Result<usize> {
    apply_rules(g, cx, RULES, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::parse::parse_graph;
    use crate::target::Target;
    use crate::tensor::Tensor;

    fn input(shape: &[usize], seed: u32) -> Tensor {
        let n: usize = shape.iter().product();
        Tensor::from_vec(shape, (0..n).map(|i| ((i as f32 + seed as f32 * 7.3) * 0.37).sin()).collect()).unwrap()
    }

    #[test]
    fn pytorch_sdpa_export_fuses_and_matches() {
        // A mask with one row masked everywhere: the NaN guard makes it zeros, as Attention does.
        let text = "graph(%q: f32[1,2,3,4], %k: f32[1,2,3,4], %v: f32[1,2,3,4]) {\n  %c = const f32[]{0.70710677}\n  %mask = const f32[1,1,3,3]{0.0,-inf,0.0,0.0,0.0,-inf,-inf,-inf,-inf}\n  %zero = const f32[1]{0.0}\n  %kt = Transpose{perm=[0,1,3,2]}(%k) : f32[1,2,4,3]\n  %qs = Mul(%q, %c) : f32[1,2,3,4]\n  %ks = Mul(%kt, %c) : f32[1,2,4,3]\n  %s = MatMul(%qs, %ks) : f32[1,2,3,3]\n  %a = Add(%s, %mask) : f32[1,2,3,3]\n  %p = Softmax{axis=-1}(%a) : f32[1,2,3,3]\n  %nan = IsNaN(%p) : bool[1,2,3,3]\n  %w = Where(%nan, %zero, %p) : f32[1,2,3,3]\n  %y = MatMul(%w, %v) : f32[1,2,3,4]\n  return %y\n}";
        let before = parse_graph(text).unwrap();
        let mut g = before.clone();
        let t = Target::host();
        assert_eq!(fuse_attention(&mut g, &PassCx::new(&t, 2)).unwrap(), 1);
        crate::ir::verify::verify(&g).unwrap();
        assert!(g.to_string().contains("Attention{"), "{g}");
        let ins = [input(&[1, 2, 3, 4], 1), input(&[1, 2, 3, 4], 2), input(&[1, 2, 3, 4], 3)];
        let (x, y) = (crate::eval::run(&before, &ins).unwrap(), crate::eval::run(&g, &ins).unwrap());
        for (u, w) in x[0].to_f64_vec().unwrap().iter().zip(y[0].to_f64_vec().unwrap()) {
            assert!((u - w).abs() < 1e-5, "{u} vs {w}");
        }
    }

    #[test]
    fn a_computed_mask_without_the_nan_guard_refuses() {
        let text = "graph(%q: f32[1,2,3,4], %k: f32[1,2,4,3], %v: f32[1,2,3,4], %mask: f32[1,1,3,3]) {\n  %s = MatMul(%q, %k) : f32[1,2,3,3]\n  %a = Add(%mask, %s) : f32[1,2,3,3]\n  %p = Softmax{axis=-1}(%a) : f32[1,2,3,3]\n  %y = MatMul(%p, %v) : f32[1,2,3,4]\n  return %y\n}";
        let mut g = parse_graph(text).unwrap();
        let t = Target::host();
        assert_eq!(fuse_attention(&mut g, &PassCx::new(&t, 2)).unwrap(), 0);
    }
}
