//! `neoc profile`: every step appears once, the shares sum to 100%, the trace is Chrome/
//! Perfetto JSON with one complete event per step and run; and the runtime's step-by-step
//! run (`Model::run_profiled`) computes the same bits as the normal run. No timing is
//! asserted.

use std::path::{Path, PathBuf};
use std::process::Command;

use neoc_runtime::{Model, Tensor, TensorMut};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn tmp(name: &str) -> String {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("profile");
    std::fs::create_dir_all(&d).unwrap();
    d.join(name).display().to_string()
}

fn neoc(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_neoc")).args(args).current_dir(root()).output().expect("neoc runs");
    assert!(out.status.success(), "neoc {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// Compiles the digits model for `target` and profiles it with `--json` and a trace.
fn profile(target: &str) {
    let art = tmp(&format!("digits-{target}.neo"));
    let trace = tmp(&format!("digits-{target}.trace.json"));
    neoc(&["compile", "models/digits.onnx", "--target", target, "-o", &art]);
    let model = Model::load(&art).unwrap();
    let steps = model.steps().expect("a step table").len();
    assert!(steps >= 3, "{steps} steps");

    let v: Value = serde_json::from_str(&neoc(&["profile", &art, "--threads", "1", "--runs", "3", "--warmup", "1", "--json", "--trace", &trace])).unwrap();
    let rows = v["steps"].as_array().unwrap();
    let mut seen: Vec<u64> = rows.iter().map(|r| r["step"].as_u64().unwrap()).collect();
    seen.sort();
    assert_eq!(seen, (0..steps as u64).collect::<Vec<_>>(), "every step once");
    let shares: f64 = rows.iter().map(|r| r["share"].as_f64().unwrap()).sum();
    assert!((shares - 1.0).abs() < 1e-9, "shares sum to {shares}");
    let times: Vec<f64> = rows.iter().map(|r| r["median_ms"].as_f64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "sorted, slowest first: {times:?}");
    // The digits MLP's GEMMs carry its FLOPs.
    let flops: u64 = rows.iter().map(|r| r["flops"].as_u64().unwrap()).sum();
    assert!(flops > 10_000, "{flops} FLOPs");
    assert!(rows.iter().any(|r| r["kind"].as_str().unwrap().starts_with("call sgemm")), "{rows:?}");

    let t: Value = serde_json::from_slice(&std::fs::read(&trace).unwrap()).expect("the trace parses");
    let events = t["traceEvents"].as_array().unwrap();
    assert_eq!(events.len(), 3 * steps, "one event per step and run");
    for e in events {
        assert_eq!(e["ph"], "X");
        assert!(e["ts"].as_f64().unwrap() >= 0.0 && e["dur"].as_f64().unwrap() >= 0.0, "{e}");
    }
    // Text output: a header and the slowest step.
    let text = neoc(&["profile", &art, "--runs", "1", "--warmup", "0"]);
    assert!(text.contains(&format!("{steps} steps")) && text.contains("GFLOP/s"), "{text}");
}

#[test]
fn profile_lists_every_step_with_shares_summing_to_one() {
    profile("host");
}

#[test]
fn profile_works_on_a_portable_artifact() {
    profile("x86-64"); // one offset list per code variant; the host's variant is timed
}

#[test]
fn the_step_by_step_run_gives_the_normal_runs_bits() {
    let art = tmp("digits-bits.neo");
    neoc(&["compile", "models/digits.onnx", "--target", "host", "-o", &art]);
    let model = Model::load(&art).unwrap();
    let image = Tensor::from_vec([1, 1, 8, 8], (0..64).map(|i| (i % 17) as f32 / 16.0).collect::<Vec<f32>>()).unwrap();
    let normal = model.run(std::slice::from_ref(&image)).unwrap();
    let sig = &model.outputs()[0];
    let mut out = Tensor::zeros(sig.dtype, sig.shape.clone()).unwrap();
    let mut order = Vec::new();
    {
        let mut outs: Vec<TensorMut<'_>> = vec![out.view_mut()];
        model.run_profiled(&[image.view()], &mut outs, &mut |i, r| order.push((i, r.end >= r.start))).unwrap();
    }
    assert_eq!(order, (0..model.steps().unwrap().len()).map(|i| (i, true)).collect::<Vec<_>>(), "each step once, in order");
    assert_eq!(out.as_slice::<f32>().unwrap(), normal[0].as_slice::<f32>().unwrap());
}
