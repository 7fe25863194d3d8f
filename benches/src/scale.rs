//! `neoc-benches scale [--sizes 10000,50000,200000] [--opt-level N] [--chain-ops A,B,..] [--write DIR]`: compile time against
//! graph size. Builds two graph families of N nodes as ONNX models and times each stage of
//! compiling them for the host:
//!
//! - **chain**: `x: f32[4,4]` through N elementwise ops in a row (Relu, Neg, Abs, Neg, or the
//!   ops `--chain-ops Sigmoid,Tanh,...` names: transcendental ones cost more code per op);
//! - **wide**: N/2 branches `x · cᵢ` (each with its own constant), summed pairwise in a
//!   balanced tree of N/2 − 1 Adds.
//!
//! Prints one line per graph: load, import, optimise, lower (+ memory plan), code generation
//! and the total, in seconds. A benchmark, not a test: nothing is asserted. `--write DIR`
//! only writes the models (`chain_N.onnx`, `wide_N.onnx`), to time `neoc compile` on them.

use anyhow::{Context, Result};
use neoc::driver::{self, CompileOptions};
use neoc::onnx::proto::{
    ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto, tensor_shape_proto, type_proto,
};
use neoc::onnx::{self, ImportOptions};
use neoc::target::Target;
use prost::Message;
use std::time::Instant;

fn info(name: &str, dims: &[i64]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|&d| tensor_shape_proto::Dimension { value: Some(tensor_shape_proto::dimension::Value::DimValue(d)), ..Default::default() })
        .collect();
    let tensor = type_proto::Tensor { elem_type: Some(1), shape: Some(TensorShapeProto { dim }) };
    ValueInfoProto { name: Some(name.into()), r#type: Some(TypeProto { value: Some(type_proto::Value::TensorType(tensor)), ..Default::default() }), ..Default::default() }
}

fn node(op: &str, inputs: &[&str], output: &str) -> NodeProto {
    NodeProto {
        op_type: Some(op.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        ..Default::default()
    }
}

fn model(nodes: Vec<NodeProto>, inits: Vec<TensorProto>, out: &str) -> Vec<u8> {
    let graph = neoc::onnx::proto::GraphProto {
        node: nodes,
        initializer: inits,
        input: vec![info("x", &[4, 4])],
        output: vec![ValueInfoProto { name: Some(out.into()), ..Default::default() }],
        name: Some("scale".into()),
        ..Default::default()
    };
    let m = ModelProto {
        ir_version: Some(10),
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(21) }],
        graph: Some(graph),
        ..Default::default()
    };
    m.encode_to_vec()
}

/// The chain's ops by default: cheap elementwise ops (one or two instructions each).
pub const CHAIN_OPS: &[&str] = &["Relu", "Neg", "Abs", "Neg"];

/// N elementwise ops in a row, cycling through `ops`.
pub fn chain(n: usize, ops: &[&str]) -> Vec<u8> {
    let name = |i: usize| if i == n { "y".to_string() } else { format!("t{i}") };
    let nodes = (1..=n).map(|i| node(ops[i % ops.len()], &[&if i == 1 { "x".to_string() } else { name(i - 1) }], &name(i))).collect();
    model(nodes, vec![], "y")
}

/// N/2 products `x · cᵢ`, summed in a balanced tree.
pub fn wide(n: usize) -> Vec<u8> {
    let branches = (n / 2).max(2);
    let mut nodes = Vec::with_capacity(n);
    let mut inits = Vec::with_capacity(branches);
    let mut level: Vec<String> = Vec::with_capacity(branches);
    for i in 0..branches {
        let c = format!("c{i}");
        inits.push(TensorProto { name: Some(c.clone()), data_type: Some(1), dims: vec![], float_data: vec![1.0 + i as f32 * 1e-6], ..Default::default() });
        let b = format!("b{i}");
        nodes.push(node("Mul", &["x", &c], &b));
        level.push(b);
    }
    let mut k = 0;
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len().div_ceil(2));
        for pair in level.chunks(2) {
            if let [a, b] = pair {
                let s = format!("s{k}");
                k += 1;
                nodes.push(node("Add", &[a, b], &s));
                next.push(s);
            } else {
                next.push(pair[0].clone());
            }
        }
        level = next;
    }
    nodes.push(node("Identity", &[&level[0]], "y"));
    model(nodes, inits, "y")
}

pub fn run(args: &[String]) -> Result<()> {
    let sizes: Vec<usize> = match args.iter().position(|a| a == "--sizes").and_then(|i| args.get(i + 1)) {
        Some(s) => s.split(',').map(|v| v.parse().context("--sizes takes numbers")).collect::<Result<_>>()?,
        None => vec![10_000, 50_000, 200_000],
    };
    let opt_level = args.iter().position(|a| a == "--opt-level").and_then(|i| args.get(i + 1)).map(|s| s.parse()).transpose()?.unwrap_or(2);
    let ops: Vec<&str> = match args.iter().position(|a| a == "--chain-ops").and_then(|i| args.get(i + 1)) {
        Some(s) => s.split(',').collect(),
        None => CHAIN_OPS.to_vec(),
    };
    if let Some(dir) = args.iter().position(|a| a == "--write").and_then(|i| args.get(i + 1)) {
        // The models only, e.g. to time another build of `neoc compile` on them.
        std::fs::create_dir_all(dir)?;
        for &n in &sizes {
            std::fs::write(format!("{dir}/chain_{n}.onnx"), chain(n, &ops))?;
            std::fs::write(format!("{dir}/wide_{n}.onnx"), wide(n))?;
        }
        println!("wrote chain_N.onnx and wide_N.onnx for N in {sizes:?} to {dir}");
        return Ok(());
    }
    let host = Target::host();
    println!("{:<6} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8}  (seconds, opt level {opt_level})", "graph", "nodes", "load", "import", "optimise", "lower", "codegen", "total");
    for &n in &sizes {
        for (family, bytes) in [("chain", chain(n, &ops)), ("wide", wide(n))] {
            let t0 = Instant::now();
            let m = onnx::load::from_bytes(bytes.into(), None)?;
            let t1 = Instant::now();
            let g = onnx::import(&m, &ImportOptions::default())?;
            let nodes = g.op_count();
            let t2 = Instant::now();
            let opts = CompileOptions { opt_level, ..Default::default() };
            let (g, _) = driver::optimise(g, &host, &opts)?;
            let t3 = Instant::now();
            let art = driver::compile(&g, &host, &opts)?;
            let t4 = Instant::now();
            let s = |a: Instant, b: Instant| (b - a).as_secs_f64();
            println!(
                "{family:<6} {nodes:>8} {:>8.3} {:>8.3} {:>9.3} {:>8.3} {:>8.3} {:>8.3}",
                s(t0, t1),
                s(t1, t2),
                s(t2, t3),
                art.report.lower_ms / 1e3,
                art.report.codegen_ms / 1e3,
                s(t0, t4)
            );
        }
    }
    Ok(())
}
