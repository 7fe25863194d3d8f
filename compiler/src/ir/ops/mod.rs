//! Op families. Each file holds one family: its attribute type, its importers (by ONNX op
//! type and opset), shape inference, reference evaluation and unit tests.

use super::{Attrs, EvalInputs, InferCx, Importer, OpImpl, ValueType};
use crate::tensor::Tensor;
use anyhow::Result;

/// The op families, written once: `with_families!(m)` expands to `m! { Unary(unary::Unary),
/// … }`, one `Variant(module::Type)` per family. [`Op`] and its impls below follow from it, and
/// so do the lowering's module declarations and dispatch (`crate::lower`), whose family
/// modules carry the same names as these.
macro_rules! with_families {
    ($m:ident) => {
        $m! {
            Unary(unary::Unary),
            Binary(binary::Binary),
            Activation(activation::Activation),
            Softmax(softmax::Softmax),
            Cast(cast::Cast),
            Generate(generate::Generate),
            Reshape(reshape::Reshape),
            Movement(movement::Movement),
            Gather(gather::Gather),
            Index(index::Index),
            Resize(resize::Resize),
            MatMul(matmul::MatMul),
            Conv(conv::Conv),
            Pool(pool::Pool),
            Norm(norm::Norm),
            Reduce(reduce::Reduce),
            Rnn(rnn::Rnn),
            Quant(quant::Quant),
            Attention(attention::Attention),
            Loss(loss::Loss),
            Spatial(spatial::Spatial),
            Signal(signal::Signal),
            Text(text::Text),
            Training(training::Training),
            Ml(ml::Ml),
            LinearAttention(linear_attention::LinearAttention),
            If(control::If),
            Fused(fused::Fused),
        }
    };
}
pub(crate) use with_families;

/// The [`Op`] enum, its [`OpImpl`] (each method forwards to the family), `From` each family
/// type, and [`importers`].
macro_rules! families {
    ($($variant:ident($module:ident::$ty:ident)),* $(,)?) => {
        $(pub mod $module;)*

        /// An IR op: one variant per family, each holding that family's normalised attributes.
        #[derive(Clone, Debug, PartialEq)]
        pub enum Op {
            $($variant($module::$ty)),*
        }

        impl OpImpl for Op {
            fn name(&self) -> &'static str {
                match self { $(Op::$variant(o) => o.name()),* }
            }
            fn attrs(&self) -> Attrs {
                match self { $(Op::$variant(o) => o.attrs()),* }
            }
            fn infer(&self, cx: &InferCx) -> Result<Vec<ValueType>> {
                match self { $(Op::$variant(o) => o.infer(cx)),* }
            }
            fn eval(&self, inputs: &EvalInputs) -> Result<Vec<Tensor>> {
                match self { $(Op::$variant(o) => o.eval(inputs)),* }
            }
            fn fold_from_types(&self, inputs: &[Option<ValueType>]) -> Option<Vec<Tensor>> {
                match self { $(Op::$variant(o) => o.fold_from_types(inputs)),* }
            }
        }

        /// The families' names (the [`Op`] variants), in declaration order.
        pub const FAMILIES: &[&str] = &[$(stringify!($variant)),*];

        impl Op {
            /// The name of the op's family (its variant: `Unary`, `MatMul`, `Fused`, …).
            pub fn family(&self) -> &'static str {
                match self { $(Op::$variant(_) => stringify!($variant)),* }
            }
        }

        $(impl From<$module::$ty> for Op {
            fn from(o: $module::$ty) -> Op { Op::$variant(o) }
        })*

        /// Every importer of every family.
        pub fn importers() -> impl Iterator<Item = &'static Importer> {
            [$($module::IMPORTERS),*].into_iter().flatten()
        }
    };
}

with_families!(families);

/// Finds the importer for `op_type` in `domain` ("" or "ai.onnx" for the default domain).
/// Errors name the op, the domain and the opset, and say whether only the opset is wrong.
pub fn find_importer(op_type: &str, domain: &str, opset: i64) -> Result<&'static Importer> {
    let domain = if domain == "ai.onnx" { "" } else { domain };
    let mut candidates: Vec<&'static Importer> =
        importers().filter(|i| i.op_type == op_type && i.domain == domain).collect();
    if candidates.is_empty() {
        let d = if domain.is_empty() { "ai.onnx" } else { domain };
        return Err(anyhow::Error::new(super::Unsupported(format!("op {op_type} (domain {d})"))));
    }
    candidates.sort_by_key(|i| std::cmp::Reverse(i.since));
    let latest = super::op::LATEST_OPSET;
    let imp = candidates.into_iter().find(|i| i.since <= opset && (!domain.is_empty() || opset <= latest)).ok_or_else(|| {
        anyhow::Error::new(super::Unsupported(format!("op {op_type} at opset {opset}")))
    })?;
    // An op version newer than the importers were written against is only accepted when an
    // importer entry names it (its `since` is at least that version).
    if domain.is_empty() {
        if let Some((_, v)) = VERSIONS_AFTER_25.iter().find(|(n, v)| *n == op_type && *v <= opset) {
            if imp.since < *v {
                return Err(anyhow::Error::new(super::Unsupported(format!("op {op_type} version {v} (the model's opset is {opset}; the importer predates it: once the family handles version {v}, it registers an Importer entry with since: {v})"))));
            }
        }
    }
    Ok(imp)
}

/// Default-domain op versions introduced after opset 25 (onnx 1.23 knows opsets up to 28).
/// Importers written before then are trusted up to 25; a family that handles one of these
/// versions registers an importer entry whose `since` is that version.
const VERSIONS_AFTER_25: &[(&str, i64)] = &[
    ("BitCast", 26),
    ("BitShift", 28),
    ("Cast", 28),
    ("CausalConvWithState", 27),
    ("Celu", 28),
    ("Compress", 28),
    ("CumProd", 26),
    ("DepthToSpace", 28),
    ("DequantizeLinear", 28),
    ("Einsum", 28),
    ("LinearAttention", 27),
    ("Mod", 28),
    ("OneHot", 28),
    ("Optional", 28),
    ("OptionalGetElement", 28),
    ("OptionalHasElement", 28),
    ("QuantizeLinear", 28),
    ("Range", 27),
    ("ReduceLogSum", 28),
    ("ReduceLogSumExp", 28),
    ("ReverseSequence", 28),
    ("SpaceToDepth", 28),
    ("SwiGLU", 28),
    ("Unique", 28),
];

/// Builds an IR op the way the ONNX importer does: finds the importer, runs it, and rejects
/// attributes it did not read. The text-form parser and round-trip tests use this too.
pub fn build(
    op_type: &str,
    domain: &str,
    opset: i64,
    node_name: &str,
    attrs: &Attrs,
    inputs: Vec<Option<super::NodeInput>>,
    n_outputs: usize,
) -> Result<(Op, Vec<Option<super::NodeInput>>)> {
    let imp = find_importer(op_type, domain, opset)?;
    let mut cx = super::NodeCtx::new(node_name, op_type, domain, opset, inputs, n_outputs, attrs);
    let op = (imp.build)(&mut cx)?;
    let unread = cx.unread_attrs();
    if !unread.is_empty() {
        return Err(anyhow::Error::new(super::Unsupported(format!(
            "attribute{} {} of {op_type}",
            if unread.len() > 1 { "s" } else { "" },
            unread.iter().map(|a| format!("'{a}'")).collect::<Vec<_>>().join(", ")
        ))));
    }
    Ok((op, cx.inputs))
}

/// The domain an IR op name belongs to ("" for the default domain, which wins ties).
pub fn domain_of(op_type: &str) -> &'static str {
    let mut domains = importers().filter(|i| i.op_type == op_type).map(|i| i.domain);
    let first = domains.next().unwrap_or("");
    if first.is_empty() { first } else { domains.find(|d| d.is_empty()).unwrap_or(first) }
}

/// The opset the text form and `rebuild` build ops at, per domain: the latest for the default
/// domain, and the newest any importer knows for the others.
pub fn latest_opset(domain: &str) -> i64 {
    if domain.is_empty() {
        super::op::LATEST_OPSET
    } else {
        importers().filter(|i| i.domain == domain).map(|i| i.since).max().unwrap_or(1)
    }
}

/// Rebuilds `op` from its printed attributes at the latest opset, with `inputs` as operands.
/// Round-trip tests assert that the result equals `op`.
pub fn rebuild(op: &Op, inputs: Vec<Option<super::NodeInput>>, n_outputs: usize) -> Result<Op> {
    let domain = domain_of(op.name());
    Ok(build(op.name(), domain, latest_opset(domain), "rebuild", &op.attrs(), inputs, n_outputs)?.0)
}
