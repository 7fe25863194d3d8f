//! `neoc inspect model.onnx [--input-shape name=dims]...`: signature, op histogram,
//! parameters and an estimate of FLOPs.

use anyhow::Result;
use neoc::onnx::{self, ImportOptions, proto::GraphProto};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    pub model: PathBuf,
    /// Bind an input's shape: name=1,3,224,224 (repeatable). Needed for FLOPs when the model
    /// has symbolic dimensions.
    #[arg(long = "input-shape")]
    pub input_shapes: Vec<String>,
    /// Also print the imported IR in its text form (constants over 64 elements elided).
    #[arg(long)]
    pub ir: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

fn histogram(g: &GraphProto, h: &mut BTreeMap<String, usize>) {
    for n in &g.node {
        let d = n.domain.as_deref().unwrap_or("");
        let key = if d.is_empty() || d == "ai.onnx" { n.op_type.clone().unwrap_or_default() } else { format!("{d}.{}", n.op_type.as_deref().unwrap_or("")) };
        *h.entry(key).or_default() += 1;
        for a in &n.attribute {
            a.g.iter().chain(&a.graphs).for_each(|sg| histogram(sg, h));
        }
    }
}

fn human(n: f64) -> String {
    match n {
        n if n >= 1e9 => format!("{:.2} G", n / 1e9),
        n if n >= 1e6 => format!("{:.2} M", n / 1e6),
        n if n >= 1e3 => format!("{:.2} k", n / 1e3),
        n => format!("{n}"),
    }
}

pub fn run(a: Args) -> Result<ExitCode> {
    let model = onnx::load(&a.model)?;
    let p = &model.proto;
    let g = p.graph.as_ref().expect("load checks for a graph");
    let producer = format!("{} {}", p.producer_name.as_deref().unwrap_or("?"), p.producer_version.as_deref().unwrap_or(""));
    let opsets: Vec<String> = p
        .opset_import
        .iter()
        .map(|o| format!("{}={}", o.domain.as_deref().filter(|d| !d.is_empty()).unwrap_or("ai.onnx"), o.version.unwrap_or(0)))
        .collect();
    let opts = ImportOptions { input_shapes: super::parse_shapes(&a.input_shapes)?, ..Default::default() };
    let imported = onnx::import(&model, &opts);
    let inits: std::collections::BTreeSet<&str> = g.initializer.iter().filter_map(|t| t.name.as_deref()).collect();
    let inputs: Vec<(String, String)> =
        g.input.iter().filter(|i| !inits.contains(i.name.as_deref().unwrap_or(""))).map(|i| (i.name.clone().unwrap_or_default(), describe(i))).collect();
    let outputs: Vec<(String, String)> = g.output.iter().map(|o| (o.name.clone().unwrap_or_default(), describe(o))).collect();
    let (mut params, mut bytes) = (0u64, 0u64);
    for t in &g.initializer {
        let n: u64 = t.dims.iter().map(|&d| d.max(0) as u64).product();
        params += n;
        let size = neoc::tensor::DType::from_onnx_i32(t.data_type.unwrap_or(0)).and_then(|d| d.size_of()).unwrap_or(0) as u64;
        bytes += n * size;
    }
    let mut h = BTreeMap::new();
    histogram(g, &mut h);
    let total: usize = h.values().sum();
    let mut rows: Vec<_> = h.into_iter().collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let folded = imported.as_ref().ok().map(|graph| (graph.op_count(), neoc::ir::cost::graph_flops(graph)));

    if a.json {
        let sig = |l: &[(String, String)]| l.iter().map(|(n, t)| serde_json::json!({ "name": n, "type": t })).collect::<Vec<_>>();
        super::print_json(&serde_json::json!({
            "model": a.model, "producer": producer.trim(), "ir_version": p.ir_version.unwrap_or(0), "opsets": opsets,
            "inputs": sig(&inputs), "outputs": sig(&outputs),
            "parameters": params, "parameter_bytes": bytes, "initializers": g.initializer.len(),
            "nodes": total, "ops": rows.iter().map(|(op, n)| serde_json::json!({ "op": op, "count": n })).collect::<Vec<_>>(),
            "ops_after_folding": folded.map(|f| f.0), "estimated_flops": folded.map(|f| f.1),
            "import_problems": imported.as_ref().err().map(|e| e.problems.len()),
            "ir": if a.ir { imported.as_ref().ok().map(|graph| neoc::ir::print::graph_text(graph, 0, true)) } else { None },
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("model:    {}", a.model.display());
    println!("producer: {producer}");
    println!("ir:       version {}, opsets {}", p.ir_version.unwrap_or(0), opsets.join(", "));
    println!("inputs:");
    for (n, t) in &inputs {
        println!("  {n}: {t}");
    }
    println!("outputs:");
    for (n, t) in &outputs {
        println!("  {n}: {t}");
    }
    println!("parameters: {} ({} initializers, {}B)", human(params as f64), g.initializer.len(), human(bytes as f64));
    println!("ops: {total} nodes");
    for (op, n) in rows {
        println!("  {op:<28} {n:>6}");
    }
    match imported {
        Ok(graph) => {
            println!("after import and constant folding: {} ops", graph.op_count());
            println!("estimated FLOPs: {} (multiply-add = 2)", human(neoc::ir::cost::graph_flops(&graph) as f64));
            if a.ir {
                println!("{}", neoc::ir::print::graph_text(&graph, 0, true));
            }
        }
        Err(e) => println!("estimated FLOPs: unknown, the model does not import ({} problems; see `neoc check`)", e.problems.len()),
    }
    Ok(ExitCode::SUCCESS)
}

fn describe(v: &neoc::onnx::proto::ValueInfoProto) -> String {
    use neoc::onnx::proto::{tensor_shape_proto::dimension::Value as D, type_proto::Value as T};
    match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(T::TensorType(tt)) => {
            let dt = neoc::tensor::DType::from_onnx_i32(tt.elem_type.unwrap_or(0)).map(|d| d.to_string()).unwrap_or("?".into());
            let dims: Vec<String> = tt
                .shape
                .as_ref()
                .map(|s| s.dim.iter().map(|d| match &d.value { Some(D::DimValue(v)) => v.to_string(), Some(D::DimParam(p)) => p.clone(), None => "?".into() }).collect())
                .unwrap_or_default();
            format!("{dt}[{}]", dims.join(","))
        }
        Some(_) => "non-tensor".into(),
        None => "untyped".into(),
    }
}
