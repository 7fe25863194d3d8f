//! The command line's machine-readable side: `--json` on every subcommand prints exactly one
//! JSON object on stdout, errors included; `neoc run` scores a stack of samples, and with
//! `--qemu` runs an aarch64 artifact here; compile --package writes an archive with the
//! artifact, a manifest and a README.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Runs neoc with `args` and parses stdout as one JSON object; returns it and the exit status.
fn neoc_json(args: &[&str]) -> (Value, bool) {
    let out = Command::new(env!("CARGO_BIN_EXE_neoc")).args(args).current_dir(root()).output().expect("neoc runs");
    let stdout = String::from_utf8(out.stdout).expect("UTF-8");
    let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("neoc {args:?}: stdout is not one JSON object ({e}):\n{stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr)));
    assert!(v.is_object(), "neoc {args:?}: {v}");
    (v, out.status.success())
}

fn tmp(name: &str) -> String {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli");
    std::fs::create_dir_all(&d).unwrap();
    d.join(name).display().to_string()
}

#[test]
fn every_subcommand_prints_one_json_object() {
    let art = tmp("digits.neo");
    let (v, ok) = neoc_json(&["compile", "models/digits.onnx", "--target", "host", "-o", &art, "--json"]);
    assert!(ok && v["ok"] == true && v["artifact_bytes"].as_u64().unwrap() > 0, "{v}");

    let (v, ok) = neoc_json(&["run", &art, "--input", "image=models/digits/samples.npy", "--labels", "models/digits/labels.npy", "--json"]);
    assert!(ok, "{v}");
    assert_eq!(v["samples"].as_array().unwrap().len(), 100);
    assert!(v["accuracy"]["correct"].as_u64().unwrap() >= 95, "{}", v["accuracy"]);
    assert_eq!(v["samples"][0]["outputs"][0]["top"][0]["class"], v["samples"][0]["label"]);

    let (v, ok) = neoc_json(&["bench", &art, "--runs", "3", "--warmup", "1", "--json"]);
    assert!(ok && v["median_ms"].as_f64().unwrap() > 0.0, "{v}");

    let (v, ok) = neoc_json(&["check", "models/digits.onnx", "--json"]);
    assert!(ok && v["ok"] == true, "{v}");

    let (v, ok) = neoc_json(&["inspect", "models/digits.onnx", "--json"]);
    assert!(ok && v["inputs"][0]["name"] == "image" && v["ops_after_folding"].as_u64().unwrap() > 0, "{v}");

    let (v, ok) = neoc_json(&["eval", "models/digits.onnx", "--input", "image=models/digits/sample_7.npy", "--top", "1", "--json"]);
    assert!(ok && v["outputs"][0]["top"][0]["class"] == 7, "{v}");

    let (v, ok) = neoc_json(&["targets", "--json"]);
    let targets = v["targets"].as_array().unwrap();
    assert!(ok && targets.len() > 40);
    for t in targets {
        for key in ["name", "isa", "status", "reason"] {
            assert!(t.get(key).is_some(), "{t} lacks {key}");
        }
    }

    let cases = std::env::var_os("NEOC_CASES").map(PathBuf::from).unwrap_or_else(|| root().join("build-cases"));
    let relu = cases.join("node/test_relu");
    assert!(relu.is_dir(), "{} is missing; run `bash scripts/setup.sh`", relu.display());
    let (v, ok) = neoc_json(&["conformance", relu.to_str().unwrap(), "--backend", "cpu", "--json"]);
    assert!(ok && v["ok"] == true && v["passed"] == 1, "{v}");
    // An aarch64 target runs under qemu (`--backend qemu` is its alias); an x86-64 one on
    // this machine; a target goes with the cpu backend only.
    for args in [["--backend", "cpu", "--target", "rasp4b"], ["--backend", "qemu", "--target", "rasp4b"], ["--backend", "cpu", "--target", "x86-64"]] {
        let mut all = vec!["conformance", relu.to_str().unwrap(), "--json"];
        all.extend(args);
        let (v, ok) = neoc_json(&all);
        assert!(ok && v["ok"] == true && v["passed"] == 1 && v["backend"] == "cpu" && v["target"] == args[3], "{args:?}: {v}");
    }
    let (v, ok) = neoc_json(&["conformance", relu.to_str().unwrap(), "--backend", "reference", "--target", "rasp4b", "--json"]);
    assert!(!ok && v["error"].as_str().unwrap().contains("goes with --backend cpu"), "{v}");
}

/// `neoc run --qemu`: the digits compiled for rasp4b, run under qemu on the 100 held-out
/// samples, give the host artifact's classes and probabilities (within 1e-4 of the largest,
/// 1.0: the two ISAs' code sums in different orders), and a plain `run` of it says to add
/// `--qemu`. Needs qemu-aarch64-static and aarch64-linux-gnu-gcc (scripts/setup.sh).
#[test]
fn run_qemu_runs_an_aarch64_artifact_here() {
    let (host, arm) = (tmp("digits-host.neo"), tmp("digits-rasp4b.neo"));
    for (art, target) in [(&host, "host"), (&arm, "rasp4b")] {
        let (v, ok) = neoc_json(&["compile", "models/digits.onnx", "--target", target, "-o", art, "--json"]);
        assert!(ok, "{v}");
    }
    let run = |art: &str, qemu: bool| {
        let mut args = vec!["run", art, "--input", "image=models/digits/samples.npy", "--labels", "models/digits/labels.npy", "--json"];
        if qemu {
            args.push("--qemu");
        }
        let (v, ok) = neoc_json(&args);
        assert!(ok, "{v}");
        v
    };
    let (want, got) = (run(&host, false), run(&arm, true));
    assert_eq!(got["qemu"], true);
    assert_eq!(got["accuracy"], want["accuracy"]);
    let probs = |v: &Value, i: usize| -> Vec<f64> { v["samples"][i]["outputs"][0]["values"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect() };
    for i in 0..100 {
        let (w, g) = (probs(&want, i), probs(&got, i));
        assert!(w.len() == 10 && g.len() == 10, "sample {i}: {w:?} {g:?}");
        assert!(w.iter().zip(&g).all(|(a, b)| (a - b).abs() <= 1e-4), "sample {i}: host {w:?}, rasp4b under qemu {g:?}");
    }
    let (v, ok) = neoc_json(&["run", &arm, "--input", "image=models/digits/sample_7.npy", "--json"]);
    assert!(!ok && v["error"].as_str().unwrap().contains("add --qemu"), "{v}");
}

#[test]
fn errors_under_json_are_one_object_too_and_say_why() {
    let (v, ok) = neoc_json(&["compile", "models/digits.onnx", "--target", "rasp3b", "--json"]);
    assert!(!ok && v["ok"] == false);
    assert!(v["error"].as_str().unwrap().contains("32-bit ARM"), "{v}");
    let (v, ok) = neoc_json(&["compile", "models/digits.onnx", "--target-platform", "os=linux,arch=arm64,accelerator=nvidia", "--json"]);
    assert!(!ok && v["error"].as_str().unwrap().contains("CUDA backend is not built yet"), "{v}");
    let (v, ok) = neoc_json(&["check", "tests/models/bert.onnx", "--json"]);
    assert!(!ok, "{v}");
    let hints: Vec<&str> = v["problems"].as_array().unwrap().iter().filter_map(|p| p["hint"].as_str()).collect();
    assert!(hints.iter().any(|h| h.contains("--input-shape input_ids=1,128")), "{hints:?}");
}

#[test]
fn compile_package_bundles_artifact_manifest_and_readme() {
    let art = tmp("digits-rasp4b.neo");
    let pkg = tmp("digits-rasp4b.tar.gz");
    let (v, ok) = neoc_json(&["compile", "models/digits.onnx", "--target", "rasp4b", "-o", &art, "--package", &pkg, "--json"]);
    assert!(ok, "{v}");
    let m = &v["package"]["manifest"];
    assert_eq!(m["target"]["name"], "rasp4b");
    assert_eq!(m["target"]["isa"], "aarch64");
    assert_eq!(m["inputs"][0]["name"], "image");
    assert!(m["checksum"]["value"].as_str().unwrap().starts_with("0x"));
    assert!(m["runtime"]["kernel_abi_version"].as_u64().unwrap() > 0);
    let list = Command::new("tar").args(["tzf", &pkg]).output().expect("tar is installed");
    let names = String::from_utf8_lossy(&list.stdout);
    for f in ["digits-rasp4b/digits-rasp4b.neo", "digits-rasp4b/manifest.json", "digits-rasp4b/README.md"] {
        assert!(names.lines().any(|l| l == f), "{f} not in:\n{names}");
    }
    let readme = Command::new("tar").args(["xzOf", &pkg, "digits-rasp4b/README.md"]).output().unwrap();
    let readme = String::from_utf8_lossy(&readme.stdout);
    for needle in ["Model::load(\"digits-rasp4b.neo\")", "neoc_model_load(", "neoc_runtime.Model(\"digits-rasp4b.neo\")", "\"image\": np.zeros([1, 1, 8, 8], np.float32)"] {
        assert!(readme.contains(needle), "README lacks {needle}:\n{readme}");
    }
    // The archived artifact is the one written beside it.
    let archived = Command::new("tar").args(["xzOf", &pkg, "digits-rasp4b/digits-rasp4b.neo"]).output().unwrap().stdout;
    assert_eq!(archived, std::fs::read(&art).unwrap());
}
