//! Pattern recognition: decomposed subgraphs that exporters write become the single IR op
//! the ONNX importer would make for the fused op at the latest opset (GELU, LayerNorm,
//! Softmax, HardSwish, SiLU, scaled dot-product attention).
//!
//! Products (`a·b·c`, written by exporters in every association and order, sometimes with a
//! division by a constant) are matched as a whole: [`flatten_product`] turns a tree of Mul
//! (and Div-by-constant) nodes into a constant coefficient times a multiset of leaves, and
//! [`product_roots`] finds the candidate tops of such a tree above a given value.

pub mod activation;
pub mod attention;
pub mod gelu;
pub mod layernorm;
pub mod softmax;

use super::rewrite::{op_of, out, pair, replace, single_use, splat};
use crate::ir::ops::binary::Binary;
use crate::ir::ops::unary::Unary;
use crate::ir::{Graph, NodeId, Op, ValueId};

/// A product `coef · Π leaves`.
#[derive(Debug, Default)]
pub struct Product {
    pub coef: f64,
    pub leaves: Vec<ValueId>,
}

impl Product {
    /// Whether the leaves are exactly `want`, as multisets.
    pub fn leaves_are(&self, want: &[ValueId]) -> bool {
        let mut a = self.leaves.clone();
        let mut b = want.to_vec();
        a.sort();
        b.sort();
        a == b
    }
}

/// At most this many leaves: patterns here need no more, and it bounds the walk.
const MAX_LEAVES: usize = 6;

/// Flattens the product tree rooted at `v`. Inner nodes (every node but the root must have a
/// single reader) are Mul, Div by a splat constant, and Pow by a splat 2 or 3; splat
/// constants multiply into `coef`. `None` when the tree is too big or a divisor is 0.
pub fn flatten_product(g: &Graph, v: ValueId) -> Option<Product> {
    let mut p = Product { coef: 1.0, leaves: vec![] };
    walk(g, v, true, &mut p)?;
    Some(p)
}

fn walk(g: &Graph, v: ValueId, root: bool, p: &mut Product) -> Option<()> {
    if let Some(c) = splat(g, v) {
        p.coef *= c;
        return Some(());
    }
    let expand = root || single_use(g, v);
    match (expand, op_of(g, v)) {
        (true, Some(Op::Binary(Binary::Mul))) => {
            let (a, b) = pair(g, v.node)?;
            walk(g, a, false, p)?;
            walk(g, b, false, p)?;
        }
        (true, Some(Op::Binary(Binary::Div))) => {
            let (a, b) = pair(g, v.node)?;
            let c = splat(g, b).filter(|c| *c != 0.0)?;
            walk(g, a, false, p)?;
            p.coef /= c;
        }
        (true, Some(Op::Binary(Binary::Pow))) => {
            let (a, b) = pair(g, v.node)?;
            let k = splat(g, b).filter(|k| *k == 2.0 || *k == 3.0)?;
            if g.konst(a).is_some() {
                return None;
            }
            for _ in 0..k as usize {
                p.leaves.push(a);
            }
        }
        _ => p.leaves.push(v),
    }
    (p.leaves.len() <= MAX_LEAVES).then_some(())
}

/// The values a product containing `v` could end at: walking up from `v` while the value
/// has a single reader that is a Mul, or a Div whose divisor is a splat constant. Nearest
/// first; at most four levels.
pub fn product_roots(g: &Graph, v: ValueId) -> Vec<ValueId> {
    let mut out_vals = vec![];
    let mut cur = v;
    for _ in 0..4 {
        if !single_use(g, cur) {
            break;
        }
        let (user, slot) = g.users(cur)[0];
        let ok = match g.node(user).op() {
            Some(Op::Binary(Binary::Mul)) => true,
            Some(Op::Binary(Binary::Div)) => slot == 0 && pair(g, user).is_some_and(|(_, b)| splat(g, b).is_some()),
            _ => false,
        };
        if !ok {
            break;
        }
        cur = out(user);
        out_vals.push(cur);
    }
    out_vals
}

/// The top-most root above `v` whose product is `coef ≈ want_coef` times exactly `leaves`
/// (and whose type is `x`'s, so nothing broadcasts).
pub fn find_product(g: &Graph, v: ValueId, want_coef: f64, leaves: &[ValueId], x: ValueId) -> Option<ValueId> {
    let dtype = g.ty(x).dtype;
    product_roots(g, v).into_iter().rev().find(|&r| {
        g.ty(r) == g.ty(x)
            && flatten_product(g, r).is_some_and(|p| super::rewrite::near(p.coef, want_coef, dtype) && p.leaves_are(leaves))
    })
}

/// `Add(a, c)` or `Add(c, a)` with `c` a splat ≈ `want`: returns `a`.
pub fn add_const_operand(g: &Graph, n: NodeId, want: f64) -> Option<ValueId> {
    if !matches!(g.node(n).op(), Some(Op::Binary(Binary::Add))) {
        return None;
    }
    let (a, b) = pair(g, n)?;
    let dtype = g.ty(out(n)).dtype;
    let is = |v: ValueId| splat(g, v).is_some_and(|c| super::rewrite::near(c, want, dtype));
    if is(b) {
        Some(a)
    } else if is(a) {
        Some(b)
    } else {
        None
    }
}

/// The single reader of `v`, when there is exactly one and `v` is not a graph output.
pub fn sole_user(g: &Graph, v: ValueId) -> Option<NodeId> {
    single_use(g, v).then(|| g.users(v)[0].0)
}

pub fn is_unary(g: &Graph, n: NodeId, k: Unary) -> bool {
    matches!(g.node(n).op(), Some(Op::Unary(u)) if *u == k)
}

/// Adds the fused op and makes it replace `root`.
pub fn install(g: &mut Graph, root: ValueId, op_type: &str, attrs: &[(&str, crate::ir::Attr)], inputs: &[Option<ValueId>]) -> anyhow::Result<bool> {
    let name = g.value_name(root).to_string();
    let v = super::rewrite::add_built(g, &name, op_type, attrs, inputs)?;
    if g.ty(v) != g.ty(root) {
        anyhow::bail!("the fused {op_type} has type {}, the subgraph it replaces {}", g.ty(v), g.ty(root));
    }
    Ok(replace(g, root, v, true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::parse::parse_graph;

    #[test]
    fn products_flatten_across_associations() {
        let g = parse_graph(
            "graph(%x: f32[3], %y: f32[3]) {\n  %h = const f32[]{0.5}\n  %two = const f32[]{2.0}\n  %a = Mul(%x, %h) : f32[3]\n  %b = Mul(%a, %y) : f32[3]\n  %c = Div(%b, %two) : f32[3]\n  %d = Pow(%c, %two) : f32[3]\n  return %c, %d\n}",
        )
        .unwrap();
        let (x, y) = (g.find_value("x").unwrap(), g.find_value("y").unwrap());
        let p = flatten_product(&g, g.find_value("c").unwrap()).unwrap();
        assert_eq!(p.coef, 0.25);
        assert!(p.leaves_are(&[y, x]));
        // %c is a graph output, so it is a leaf of the Pow above it.
        let p = flatten_product(&g, g.find_value("d").unwrap()).unwrap();
        assert_eq!(p.leaves.len(), 2);
        // Up from x: a, b, then c (a Div by a constant); c is an output, so the walk stops.
        let names: Vec<&str> = product_roots(&g, x).into_iter().map(|v| g.value_name(v)).collect();
        assert_eq!(names, ["a", "b", "c"]);
    }
}
