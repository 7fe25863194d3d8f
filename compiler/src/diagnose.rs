//! Hints that turn an import problem into the fix: for an unbound dimension the exact
//! `--input-shape` flag (with the input's name and plausible sizes), for an unsupported op
//! the opsets neoc imports it at, or that it does not import it at all.
//!
//! The CLI (`check`, `compile`) prints them under each problem and puts them in `--json`.

use crate::ir::op::LATEST_OPSET;
use crate::onnx::OnnxModel;
use crate::onnx::import::{Problem, ProblemKind};
use crate::onnx::proto::{ValueInfoProto, tensor_shape_proto::dimension::Value as Dim, type_proto::Value as Ty};

/// The fix for `p`, when there is one to suggest.
pub fn hint(model: &OnnxModel, p: &Problem) -> Option<String> {
    match p.kind {
        ProblemKind::UnboundDim => unbound_hint(model, p),
        ProblemKind::Unsupported if !p.op_type.is_empty() => op_hint(p),
        _ => None,
    }
}

/// `--input-shape` flags binding every graph input that has an unknown dimension (all of
/// them, so one copy-paste fixes the model), with plausible sizes.
pub fn input_shape_flags(model: &OnnxModel) -> Vec<String> {
    let Some(g) = model.proto.graph.as_ref() else { return vec![] };
    let inits: std::collections::HashSet<&str> = g.initializer.iter().filter_map(|t| t.name.as_deref()).collect();
    g.input.iter().filter(|i| !inits.contains(i.name.as_deref().unwrap_or(""))).filter_map(flag_for).collect()
}

fn unbound_hint(model: &OnnxModel, p: &Problem) -> Option<String> {
    let g = model.proto.graph.as_ref()?;
    let input = g.input.iter().find(|i| i.name.as_deref().is_some_and(|n| p.message.contains(&format!("input '{n}'"))))?;
    let flag = flag_for(input)?;
    let all = input_shape_flags(model);
    let rest = if all.len() > 1 { format!(" (all unbound inputs: {})", all.join(" ")) } else { String::new() };
    Some(format!("add {flag}{rest}, using your real sizes"))
}

/// `--input-shape name=d0,d1,...` for an input with an unknown dimension.
fn flag_for(input: &ValueInfoProto) -> Option<String> {
    let name = input.name.as_deref()?;
    let dims: Vec<(Option<i64>, String)> = match input.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(Ty::TensorType(tt)) => match &tt.shape {
            Some(s) => s
                .dim
                .iter()
                .map(|d| match &d.value {
                    Some(Dim::DimValue(v)) if *v >= 0 => (Some(*v), String::new()),
                    Some(Dim::DimParam(p)) => (None, p.to_lowercase()),
                    _ => (None, String::new()),
                })
                .collect(),
            None => return Some(format!("--input-shape {name}=d0,d1,... (the model gives no rank for '{name}')")),
        },
        _ => return None,
    };
    if dims.iter().all(|d| d.0.is_some()) {
        return None;
    }
    let rank = dims.len();
    let guess = |axis: usize, p: &str| -> i64 {
        let has = |w: &[&str]| w.iter().any(|w| p.contains(w));
        if has(&["batch"]) || p == "n" || (axis == 0 && p.is_empty()) {
            1
        } else if has(&["seq", "len", "token", "time", "step", "frame"]) {
            128
        } else if has(&["height", "width"]) || p == "h" || p == "w" || (rank == 4 && axis >= 2) {
            224
        } else if has(&["channel"]) || p == "c" {
            3
        } else if axis == 0 {
            1
        } else {
            128
        }
    };
    let values: Vec<String> = dims.iter().enumerate().map(|(axis, (v, p))| v.unwrap_or_else(|| guess(axis, p)).to_string()).collect();
    Some(format!("--input-shape {name}={}", values.join(",")))
}

fn op_hint(p: &Problem) -> Option<String> {
    let domain = if p.domain == "ai.onnx" { "" } else { p.domain.as_str() };
    let shown = if domain.is_empty() { "ai.onnx" } else { domain };
    let mut since: Vec<i64> = crate::ir::ops::importers().filter(|i| i.op_type == p.op_type && i.domain == domain).map(|i| i.since).collect();
    since.sort();
    let Some(&oldest) = since.first() else {
        return Some(format!(
            "neoc does not import {} ({shown}) at any opset yet: the op is unsupported; the reference evaluator and the backends cannot run this model until it is added",
            p.op_type
        ));
    };
    if p.opset < oldest {
        return Some(format!(
            "neoc imports {} from opset {oldest} on (versions: {}); convert the model, e.g. onnx.version_converter.convert_version(model, {oldest})",
            p.op_type,
            since.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ")
        ));
    }
    if domain.is_empty() && p.opset > LATEST_OPSET {
        return Some(format!("neoc knows ai.onnx opsets up to {LATEST_OPSET}; the model uses {}: export it at opset {LATEST_OPSET} or older", p.opset));
    }
    if p.message.contains("version ") && p.message.contains("importer predates it") {
        let newest = since.last().copied().unwrap_or(oldest);
        return Some(format!("{} is supported up to its opset-{newest} version; export the model at an older opset", p.op_type));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::proto::{GraphProto, ModelProto, TensorShapeProto, TypeProto, tensor_shape_proto, type_proto};

    fn input(name: &str, dims: &[Result<i64, &str>]) -> ValueInfoProto {
        let dim = dims
            .iter()
            .map(|d| tensor_shape_proto::Dimension {
                value: Some(match d {
                    Ok(v) => Dim::DimValue(*v),
                    Err(p) => Dim::DimParam(p.to_string()),
                }),
                ..Default::default()
            })
            .collect();
        ValueInfoProto {
            name: Some(name.into()),
            r#type: Some(TypeProto {
                value: Some(Ty::TensorType(type_proto::Tensor { elem_type: Some(7), shape: Some(TensorShapeProto { dim }) })),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn unbound_dims_get_a_flag_with_plausible_sizes() {
        let g = GraphProto { input: vec![input("input_ids", &[Err("batch"), Err("sequence")]), input("image", &[Err("N"), Ok(3), Err("height"), Err("width")])], ..Default::default() };
        let model = OnnxModel { proto: ModelProto { graph: Some(g), ..Default::default() }, external: Default::default() };
        assert_eq!(input_shape_flags(&model), ["--input-shape input_ids=1,128", "--input-shape image=1,3,224,224"]);
        let p = Problem { kind: ProblemKind::UnboundDim, node: String::new(), op_type: String::new(), domain: String::new(), opset: 0, message: "input 'image' axis 0 ('N') has no static size".into() };
        let h = hint(&model, &p).unwrap();
        assert!(h.starts_with("add --input-shape image=1,3,224,224"), "{h}");
    }

    #[test]
    fn unsupported_ops_name_their_opsets() {
        let p = |op: &str, opset| Problem { kind: ProblemKind::Unsupported, node: "n".into(), op_type: op.into(), domain: String::new(), opset, message: String::new() };
        let h = op_hint(&p("NoSuchOp", 17)).unwrap();
        assert!(h.contains("does not import NoSuchOp"), "{h}");
        assert!(op_hint(&p("Relu", 17)).is_none());
    }
}
