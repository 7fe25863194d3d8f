//! Two independent protobuf decoders agree on every test model: neoc's own (prost, with
//! zero-copy raw data) and `onnx-protobuf` (rust-protobuf). Each decoding is written out as
//! one canonical text (every graph, node, attribute, initializer and value type, with tensor
//! data as XXH64 hashes, nested graphs included; proto2's absent fields read as proto3's
//! defaults) and the two texts must be equal. Covered: every ONNX conformance model and test
//! tensor (`.pb`), the real models (full weights), the test models and the demo model. Then
//! each model re-encoded by rust-protobuf must decode with prost to the same text again.

use neoc::onnx::proto as pp;
use neoc_runtime::xxh64;
use neoc_tests::{cases_dir, root};
use onnx_protobuf as op;
use prost::Message as _;
use protobuf::Message as _;
use std::fmt::Write;
use std::path::{Path, PathBuf};

fn h(bytes: &[u8]) -> String {
    format!("{:016x}/{}", xxh64(bytes, 0), bytes.len())
}

fn nums<T: Copy>(v: &[T], f: impl Fn(T) -> [u8; 8]) -> String {
    let b: Vec<u8> = v.iter().flat_map(|&x| f(x)).collect();
    h(&b)
}

// ---- prost ----

fn p_tensor(t: &pp::TensorProto) -> String {
    format!(
        "tensor {} dt={} dims={:?} raw={} f={} i32={} i64={} d={} u64={} s={} loc={} ext={:?}",
        t.name.as_deref().unwrap_or(""),
        t.data_type.unwrap_or(0),
        t.dims,
        h(t.raw_data.as_deref().unwrap_or(&[])),
        nums(&t.float_data, |x| (x.to_bits() as u64).to_le_bytes()),
        nums(&t.int32_data, |x| (x as i64).to_le_bytes()),
        nums(&t.int64_data, |x| x.to_le_bytes()),
        nums(&t.double_data, |x| x.to_bits().to_le_bytes()),
        nums(&t.uint64_data, |x| x.to_le_bytes()),
        h(&t.string_data.concat()),
        t.data_location.unwrap_or(0),
        t.external_data.iter().map(|e| format!("{}={}", e.key.as_deref().unwrap_or(""), e.value.as_deref().unwrap_or(""))).collect::<Vec<_>>(),
    )
}

fn p_type(t: Option<&pp::TypeProto>) -> String {
    match t.and_then(|t| t.value.as_ref()) {
        Some(pp::type_proto::Value::TensorType(tt)) => {
            let dims = tt.shape.as_ref().map(|s| {
                s.dim
                    .iter()
                    .map(|d| match &d.value {
                        Some(pp::tensor_shape_proto::dimension::Value::DimValue(v)) => v.to_string(),
                        Some(pp::tensor_shape_proto::dimension::Value::DimParam(p)) => format!("'{p}'"),
                        None => "?".into(),
                    })
                    .collect::<Vec<_>>()
            });
            format!("tensor<{}>{dims:?}", tt.elem_type.unwrap_or(0))
        }
        Some(_) => "other".into(),
        None => "none".into(),
    }
}

fn p_graph(g: &pp::GraphProto, out: &mut String, depth: usize) {
    let pad = " ".repeat(depth);
    let _ = writeln!(out, "{pad}graph {}", g.name.as_deref().unwrap_or(""));
    for (k, list) in [("in", &g.input), ("out", &g.output), ("vi", &g.value_info)] {
        for v in list {
            let _ = writeln!(out, "{pad} {k} {} {}", v.name.as_deref().unwrap_or(""), p_type(v.r#type.as_ref()));
        }
    }
    for t in &g.initializer {
        let _ = writeln!(out, "{pad} init {}", p_tensor(t));
    }
    let _ = writeln!(out, "{pad} sparse {}", g.sparse_initializer.len());
    for n in &g.node {
        let _ = writeln!(
            out,
            "{pad} node {} {}:{} {:?} -> {:?}",
            n.name.as_deref().unwrap_or(""),
            n.domain.as_deref().unwrap_or(""),
            n.op_type.as_deref().unwrap_or(""),
            n.input,
            n.output
        );
        for a in &n.attribute {
            let _ = writeln!(
                out,
                "{pad}  attr {} ty={} ref={} f={} i={} s={} floats={} ints={:?} strings={} tensors={}",
                a.name.as_deref().unwrap_or(""),
                a.r#type.unwrap_or(0),
                a.ref_attr_name.as_deref().unwrap_or(""),
                a.f.unwrap_or(0.0).to_bits(),
                a.i.unwrap_or(0),
                h(a.s.as_deref().unwrap_or(&[])),
                nums(&a.floats, |x| (x.to_bits() as u64).to_le_bytes()),
                a.ints,
                h(&a.strings.concat()),
                a.tensors.len()
            );
            if let Some(t) = &a.t {
                let _ = writeln!(out, "{pad}   {}", p_tensor(t));
            }
            for g in a.g.iter().chain(&a.graphs) {
                p_graph(g, out, depth + 3);
            }
        }
    }
}

fn p_model(m: &pp::ModelProto) -> String {
    let mut out = format!("ir {} producer {}\n", m.ir_version.unwrap_or(0), m.producer_name.as_deref().unwrap_or(""));
    for o in &m.opset_import {
        let _ = writeln!(out, "opset {}={}", o.domain.as_deref().unwrap_or(""), o.version.unwrap_or(0));
    }
    let _ = writeln!(out, "functions {}", m.functions.len());
    if let Some(g) = &m.graph {
        p_graph(g, &mut out, 0);
    }
    out
}

// ---- rust-protobuf ----

fn o_tensor(t: &op::TensorProto) -> String {
    format!(
        "tensor {} dt={} dims={:?} raw={} f={} i32={} i64={} d={} u64={} s={} loc={} ext={:?}",
        t.name,
        t.data_type,
        t.dims,
        h(&t.raw_data),
        nums(&t.float_data, |x| (x.to_bits() as u64).to_le_bytes()),
        nums(&t.int32_data, |x| (x as i64).to_le_bytes()),
        nums(&t.int64_data, |x| x.to_le_bytes()),
        nums(&t.double_data, |x| x.to_bits().to_le_bytes()),
        nums(&t.uint64_data, |x| x.to_le_bytes()),
        h(&t.string_data.concat()),
        t.data_location.value(),
        t.external_data.iter().map(|e| format!("{}={}", e.key, e.value)).collect::<Vec<_>>(),
    )
}

fn o_type(t: Option<&op::TypeProto>) -> String {
    match t.and_then(|t| t.value.as_ref()) {
        Some(op::type_proto::Value::TensorType(tt)) => {
            let dims = tt.shape.as_ref().map(|s| {
                s.dim
                    .iter()
                    .map(|d| match &d.value {
                        Some(op::tensor_shape_proto::dimension::Value::DimValue(v)) => v.to_string(),
                        Some(op::tensor_shape_proto::dimension::Value::DimParam(p)) => format!("'{p}'"),
                        None => "?".into(),
                        #[allow(unreachable_patterns)]
                        Some(_) => "?".into(),
                    })
                    .collect::<Vec<_>>()
            });
            format!("tensor<{}>{dims:?}", tt.elem_type)
        }
        Some(_) => "other".into(),
        None => "none".into(),
    }
}

fn o_graph(g: &op::GraphProto, out: &mut String, depth: usize) {
    let pad = " ".repeat(depth);
    let _ = writeln!(out, "{pad}graph {}", g.name);
    for (k, list) in [("in", &g.input), ("out", &g.output), ("vi", &g.value_info)] {
        for v in list {
            let _ = writeln!(out, "{pad} {k} {} {}", v.name, o_type(v.type_.as_ref()));
        }
    }
    for t in &g.initializer {
        let _ = writeln!(out, "{pad} init {}", o_tensor(t));
    }
    let _ = writeln!(out, "{pad} sparse {}", g.sparse_initializer.len());
    for n in &g.node {
        let _ = writeln!(out, "{pad} node {} {}:{} {:?} -> {:?}", n.name, n.domain, n.op_type, n.input, n.output);
        for a in &n.attribute {
            let _ = writeln!(
                out,
                "{pad}  attr {} ty={} ref={} f={} i={} s={} floats={} ints={:?} strings={} tensors={}",
                a.name,
                a.type_.value(),
                a.ref_attr_name,
                a.f.to_bits(),
                a.i,
                h(&a.s),
                nums(&a.floats, |x| (x.to_bits() as u64).to_le_bytes()),
                a.ints,
                h(&a.strings.concat()),
                a.tensors.len()
            );
            if let Some(t) = a.t.as_ref() {
                let _ = writeln!(out, "{pad}   {}", o_tensor(t));
            }
            for g in a.g.as_ref().into_iter().chain(&a.graphs) {
                o_graph(g, out, depth + 3);
            }
        }
    }
}

fn o_model(m: &op::ModelProto) -> String {
    let mut out = format!("ir {} producer {}\n", m.ir_version, m.producer_name);
    for o in &m.opset_import {
        let _ = writeln!(out, "opset {}={}", o.domain, o.version);
    }
    let _ = writeln!(out, "functions {}", m.functions.len());
    if let Some(g) = m.graph.as_ref() {
        o_graph(g, &mut out, 0);
    }
    out
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else if p.extension().is_some_and(|x| x == "onnx" || x == "pb") {
            out.push(p);
        }
    }
}

/// The first line where two texts differ.
fn first_diff(a: &str, b: &str) -> String {
    a.lines().zip(b.lines()).find(|(x, y)| x != y).map(|(x, y)| format!("prost: {x}\nrust-protobuf: {y}")).unwrap_or_else(|| "lengths differ".into())
}

#[test]
fn prost_and_rust_protobuf_decode_every_test_model_alike() {
    let mut files = vec![root().join("models/digits.onnx")];
    files_under(&root().join("tests/models"), &mut files);
    files_under(&cases_dir(), &mut files);
    files.sort();
    let (mut models, mut tensors, mut bytes) = (0, 0, 0u64);
    let mut bad = vec![];
    for f in &files {
        let data = std::fs::read(f).expect("readable");
        bytes += data.len() as u64;
        let (a, b) = if f.extension().is_some_and(|x| x == "onnx") {
            models += 1;
            let p = pp::ModelProto::decode(bytes::Bytes::from(data.clone())).map(|m| p_model(&m));
            let o = op::ModelProto::parse_from_bytes(&data);
            // Round trip across the implementations: rust-protobuf's encoding, read by prost.
            if let Ok(m) = &o {
                let again = pp::ModelProto::decode(bytes::Bytes::from(m.write_to_bytes().expect("encodes"))).map(|m| p_model(&m));
                if let (Ok(x), Ok(y)) = (&p, &again) {
                    if x != y {
                        bad.push(format!("{}: re-encoded by rust-protobuf, prost reads it differently:\n{}", f.display(), first_diff(x, y)));
                    }
                }
            }
            (p.map_err(|e| e.to_string()), o.map(|m| o_model(&m)).map_err(|e| e.to_string()))
        } else {
            tensors += 1;
            (
                pp::TensorProto::decode(bytes::Bytes::from(data.clone())).map(|t| p_tensor(&t)).map_err(|e| e.to_string()),
                op::TensorProto::parse_from_bytes(&data).map(|t| o_tensor(&t)).map_err(|e| e.to_string()),
            )
        };
        match (a, b) {
            (Ok(x), Ok(y)) if x == y => {}
            (Ok(x), Ok(y)) => bad.push(format!("{}: the decoders disagree:\n{}", f.display(), first_diff(&x, &y))),
            (x, y) => bad.push(format!("{}: prost {:?}, rust-protobuf {:?}", f.display(), x.err(), y.err())),
        }
    }
    println!("{models} models and {tensors} tensors ({:.0} MB) decode alike with prost and rust-protobuf", bytes as f64 / 1e6);
    assert!(models > 1000, "only {models} models found");
    assert!(bad.is_empty(), "{} of {} files:\n{}", bad.len(), files.len(), bad.join("\n"));
}
