//! The bodies of the fuzz targets. `fuzz/fuzz_targets/*.rs` hand libFuzzer's inputs to
//! these functions (`cargo +nightly fuzz run <target>`), and `tests/fuzz_regressions.rs`
//! replays every input that ever crashed one of them (`fuzz/regressions/<target>/`) on the
//! stable toolchain, so each stays a regression test. A target fails by panicking (or by
//! crashing, which is what the fuzzer and the sanitizer look for).

use crate::graphs::random::generate_with;
use crate::graphs::{Rng, encode};
use crate::pipeline::{self, Outcome, PathOptions};
use bytes::Bytes;
use neoc::driver::{self, CompileOptions};
use neoc::onnx::{self, ImportOptions};
use neoc::target::Target;
use onnx_protobuf::{ModelProto, attribute_proto::AttributeType};

/// The targets, by name.
pub const TARGETS: &[(&str, fn(&[u8]))] = &[("onnx_import", onnx_import), ("compile_generated", compile_generated), ("artifact_load", artifact_load)];

/// Any bytes as an ONNX file: decode, import (shape inference, folding), then the opt-2
/// pipeline with the verifier after every pass. Errors are fine; panics are not.
pub fn onnx_import(data: &[u8]) {
    let Ok(m) = onnx::load::from_bytes(Bytes::copy_from_slice(data), None) else { return };
    let Ok(g) = onnx::import(&m, &ImportOptions::default()) else { return };
    if let Ok((g, _)) = driver::optimise(g, &Target::host(), &CompileOptions::default()) {
        if let Err(e) = neoc::ir::verify::verify(&g) {
            panic!("the passes left an invalid graph: {e:#}");
        }
    }
}

/// Values a hostile tweak writes: the edges of the ranges shape arithmetic deals with.
const EXTREMES: &[i64] = &[0, 1, -1, 2, 3, -2, 1 << 31, 1 << 32, 1 << 40, i64::MAX, i64::MIN, -(1 << 31), 65536];

/// Up to three hostile tweaks of a valid model: an int attribute, an element of an ints
/// attribute, an initializer's dims or int64 values, a graph input's dim, or a node input
/// renamed to another value, each set from the fuzzer's bytes.
pub fn tweak(m: &mut ModelProto, r: &mut Rng) {
    let Some(g) = m.graph.as_mut() else { return };
    for _ in 0..r.below(4) {
        let x = EXTREMES[r.below(EXTREMES.len())];
        match r.below(6) {
            0 | 1 if !g.node.is_empty() => {
                let k = r.below(g.node.len());
                let n = &mut g.node[k];
                if n.attribute.is_empty() {
                    continue;
                }
                let a = r.below(n.attribute.len());
                let a = &mut n.attribute[a];
                match a.type_.enum_value() {
                    Ok(AttributeType::INT) => a.i = x,
                    Ok(AttributeType::INTS) if !a.ints.is_empty() => {
                        let i = r.below(a.ints.len());
                        a.ints[i] = x;
                    }
                    _ => {}
                }
            }
            2 if !g.initializer.is_empty() => {
                let k = r.below(g.initializer.len());
                let t = &mut g.initializer[k];
                if !t.int64_data.is_empty() {
                    let i = r.below(t.int64_data.len());
                    t.int64_data[i] = x;
                } else if !t.dims.is_empty() {
                    let i = r.below(t.dims.len());
                    t.dims[i] = x;
                }
            }
            3 if !g.input.is_empty() => {
                let k = r.below(g.input.len());
                if let Some(t) = g.input[k].type_.as_mut().and_then(|t| t.value.as_mut()) {
                    if let onnx_protobuf::type_proto::Value::TensorType(tt) = t {
                        if let Some(s) = tt.shape.as_mut() {
                            if !s.dim.is_empty() {
                                let i = r.below(s.dim.len());
                                s.dim[i].set_dim_value(x.clamp(-1, 1 << 20));
                            }
                        }
                    }
                }
            }
            4 if g.node.len() > 1 => {
                // A node reads another node's output instead of its own operand: type clashes,
                // and cycles when the other node comes later.
                let (a, b) = (r.below(g.node.len()), r.below(g.node.len()));
                if let (Some(out), false) = (g.node[b].output.first().cloned(), g.node[a].input.is_empty()) {
                    let i = r.below(g.node[a].input.len());
                    g.node[a].input[i] = out;
                }
            }
            _ => {}
        }
    }
}

/// Structure-aware: the bytes steer the random-graph generator (every choice of ops, shapes,
/// attributes and constants) and then up to three hostile tweaks; the model, encoded by
/// rust-protobuf, goes through load → import → optimise → compile → run, and the compiled
/// outputs must equal the reference evaluator's (`PathOptions`' tolerance) whenever both run.
pub fn compile_generated(data: &[u8]) {
    let mut r = Rng::from_bytes(data);
    let rec = generate_with(&mut r, 8);
    let mut m = rec.model();
    tweak(&mut m, &mut r);
    let opts = PathOptions { opt_level: r.below(4) as u8, max_memory: Some(1 << 30), ..Default::default() };
    if let Outcome::Mismatch { detail } = pipeline::answer(&encode(&m), &opts) {
        panic!("compiled outputs differ from the reference at opt level {}: {detail}", opts.opt_level);
    }
}

/// Any bytes as an artifact. When the first byte is odd the rest gets its checksum stamped,
/// so mutations reach the header, section and metadata checks behind the checksum. Loading
/// maps the code of an accepted artifact but never runs it (an artifact is a program).
pub fn artifact_load(data: &[u8]) {
    let Some((&flag, rest)) = data.split_first() else { return };
    let mut b = rest.to_vec();
    if flag & 1 == 1 && b.len() >= neoc_runtime::artifact::FIXED_HEADER_LEN {
        neoc_runtime::artifact::stamp_checksum(&mut b);
    }
    let _ = neoc_runtime::Artifact::parse(&b);
    let _ = neoc_runtime::Model::from_bytes_with(&b, &neoc_runtime::LoadOptions::max_memory(Some(1 << 30)));
}
