//! The C API: the hand-written header declares exactly the Rust functions, constants and
//! struct (types checked one by one), and the C example, compiled with the system C
//! compiler against the static and the shared library, runs a real compiled artifact and
//! prints what the Rust runtime computes.

use std::path::Path;
use std::process::Command;

use neoc_runtime::{Model, Tensor};
use neoc_tests::{compile_digits, digit_samples, profile_dir, root, scratch};

fn capi(rel: &str) -> String {
    std::fs::read_to_string(root().join("runtime/capi").join(rel)).expect(rel)
}

fn strip_c_comments(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("/*") {
        out.push_str(&rest[..i]);
        rest = rest[i..].find("*/").map_or("", |j| &rest[i + j + 2..]);
    }
    out.push_str(rest);
    out.lines().filter(|l| !l.trim_start().starts_with('#')).collect::<Vec<_>>().join("\n")
}

fn squash(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

/// A Rust FFI type as C spells it (whitespace removed).
fn c_type(rust: &str) -> String {
    let r = rust.trim();
    if let Some(inner) = r.strip_prefix("*const ") {
        let c = c_type(inner);
        return if inner.trim().starts_with('*') { format!("{c}const*") } else { format!("const{c}*") };
    }
    if let Some(inner) = r.strip_prefix("*mut ") {
        return format!("{}*", c_type(inner));
    }
    match r {
        "c_char" => "char",
        "c_void" | "()" => "void",
        "usize" => "size_t",
        "i64" => "int64_t",
        "i32" => "int32_t",
        "NeocStatus" => "neoc_status",
        "NeocModel" => "neoc_model",
        "NeocOutputs" => "neoc_outputs",
        "NeocTensorInfo" => "neoc_tensor_info",
        other => panic!("no C spelling for Rust type '{other}'"),
    }
    .to_string()
}

/// (name, return type, parameter types) of every `extern "C" fn` in the Rust source.
fn rust_functions(src: &str) -> Vec<(String, String, Vec<String>)> {
    let mut out = vec![];
    for part in src.split("extern \"C\" fn ").skip(1) {
        let name = part[..part.find('(').unwrap()].to_string();
        let close = part.find(')').unwrap();
        let params: Vec<String> = part[name.len() + 1..close]
            .split(',')
            .filter(|p| !p.trim().is_empty())
            .map(|p| c_type(p.split_once(':').expect("name: type").1))
            .collect();
        let after = &part[close + 1..part.find('{').unwrap()];
        let ret = after.trim().strip_prefix("->").map_or("void".to_string(), c_type);
        out.push((name, ret, params));
    }
    out.sort();
    out
}

/// The same from the header's prototypes.
fn c_functions(header: &str) -> Vec<(String, String, Vec<String>)> {
    let mut out = vec![];
    for stmt in strip_c_comments(header).split(';') {
        let s = stmt.trim();
        if s.starts_with("typedef") || !s.contains('(') || s.contains('{') {
            continue;
        }
        let open = s.find('(').unwrap();
        let head = &s[..open];
        let name_at = head.rfind(|c: char| !(c.is_alphanumeric() || c == '_')).map_or(0, |i| i + 1);
        let name = head[name_at..].to_string();
        let ret = squash(&head[..name_at]);
        let params: Vec<String> = s[open + 1..s.rfind(')').unwrap()]
            .split(',')
            .map(str::trim)
            .filter(|p| *p != "void" && !p.is_empty())
            .map(|p| {
                let cut = p.rfind(|c: char| !(c.is_alphanumeric() || c == '_')).expect("type then name");
                squash(&p[..=cut])
            })
            .collect();
        out.push((name, ret, params));
    }
    out.sort();
    out
}

#[test]
fn the_header_declares_exactly_the_rust_functions() {
    let rust = rust_functions(&capi("src/lib.rs"));
    let c = c_functions(&capi("include/neoc_runtime.h"));
    assert!(rust.len() >= 19, "{rust:?}");
    assert_eq!(c, rust, "include/neoc_runtime.h and src/lib.rs disagree");
}

#[test]
fn the_header_has_the_rust_status_codes_and_struct() {
    let src = capi("src/lib.rs");
    let header = strip_c_comments(&capi("include/neoc_runtime.h"));
    let mut rust_codes: Vec<(String, i32)> = src
        .lines()
        .filter_map(|l| l.strip_prefix("pub const NEOC_"))
        .map(|l| {
            let (name, v) = l.split_once(": NeocStatus = ").expect("status const");
            (format!("NEOC_{name}"), v.trim_end_matches(';').parse().unwrap())
        })
        .collect();
    let enum_body = &header[header.find("typedef enum neoc_status {").unwrap()..];
    let enum_body = &enum_body[enum_body.find('{').unwrap() + 1..enum_body.find('}').unwrap()];
    let mut c_codes: Vec<(String, i32)> = enum_body
        .split(',')
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let (n, v) = e.split_once('=').unwrap();
            (n.trim().to_string(), v.trim().parse().unwrap())
        })
        .collect();
    rust_codes.sort();
    c_codes.sort();
    assert_eq!(c_codes, rust_codes);

    let body = &src[src.find("pub struct NeocTensorInfo {").unwrap()..];
    let rust_fields: Vec<(String, String)> = body[body.find('{').unwrap() + 1..body.find('}').unwrap()]
        .split(',')
        .filter(|f| !f.trim().is_empty())
        .map(|f| {
            let (n, t) = f.trim().trim_start_matches("pub ").split_once(':').unwrap();
            (n.trim().to_string(), c_type(t))
        })
        .collect();
    let cbody = &header[header.find("typedef struct neoc_tensor_info {").unwrap()..];
    let c_fields: Vec<(String, String)> = cbody[cbody.find('{').unwrap() + 1..cbody.find('}').unwrap()]
        .split(';')
        .filter(|f| !f.trim().is_empty())
        .map(|f| {
            let f = f.trim();
            let cut = f.rfind(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap();
            (f[cut + 1..].to_string(), squash(&f[..=cut]))
        })
        .collect();
    assert_eq!(c_fields, rust_fields);
}

fn cc() -> String {
    std::env::var("CC").unwrap_or_else(|_| "cc".into())
}

/// Compiles the example; `link` are the linker arguments for the library.
fn build_example(dir: &Path, out: &str, link: &[String]) -> std::path::PathBuf {
    let exe = dir.join(out);
    let status = Command::new(cc())
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-O2"])
        .arg(root().join("runtime/capi/examples/classify.c"))
        .arg("-I")
        .arg(root().join("runtime/capi/include"))
        .args(link)
        .arg("-o")
        .arg(&exe)
        .status()
        .expect("a C compiler (cc) is installed");
    assert!(status.success(), "compiling examples/classify.c failed");
    exe
}

#[test]
fn the_c_example_runs_a_compiled_model_and_matches_the_rust_runtime() {
    let dir = scratch("capi");
    let artifact = dir.join("digits.neo");
    std::fs::write(&artifact, compile_digits("host")).unwrap();
    let lib = profile_dir();
    assert!(lib.join("libneoc_runtime_c.a").is_file(), "{} has no libneoc_runtime_c.a: build it first with `cargo build --release -p neoc-runtime-c` (scripts/test.sh does)", lib.display());
    let static_exe = build_example(&dir, "classify_static", &[lib.join("libneoc_runtime_c.a").display().to_string(), "-lpthread".into(), "-ldl".into(), "-lm".into()]);
    let shared_exe = build_example(&dir, "classify_shared", &[format!("-L{}", lib.display()), "-lneoc_runtime_c".into(), format!("-Wl,-rpath,{}", lib.display())]);

    // What the Rust runtime computes for each sample.
    let (x, labels) = digit_samples();
    let model = Model::from_bytes(&std::fs::read(&artifact).unwrap()).unwrap();
    let expected: Vec<(usize, f32)> = x
        .chunks(64)
        .map(|s| {
            let out = model.run(&[Tensor::from_vec([1, 1, 8, 8], s.to_vec()).unwrap()]).unwrap();
            let p = out[0].as_slice::<f32>().unwrap().to_vec();
            let best = (0..p.len()).fold(0, |b, i| if p[i] > p[b] { i } else { b });
            (best, p[best])
        })
        .collect();

    for exe in [static_exe, shared_exe] {
        let out = Command::new(&exe)
            .arg(&artifact)
            .arg(root().join("models/digits/samples.npy"))
            .arg(root().join("models/digits/labels.npy"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{} failed:\n{text}\n{}", exe.display(), String::from_utf8_lossy(&out.stderr));
        assert!(text.contains("loading a missing file: NEOC_ERR_IO: cannot read /nonexistent/model.neo"), "{text}");
        assert!(text.contains("running with a short input: NEOC_ERR_INVALID_ARGUMENT: input 0 ('image'): 252 bytes given"), "{text}");
        assert!(text.contains("run_alloc matches run: yes"), "{text}");
        let mut seen = 0;
        for line in text.lines().filter_map(|l| l.strip_prefix("sample ")) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let i: usize = f[0].trim_end_matches(':').parse().unwrap();
            let (class, p): (usize, f32) = (f[1].parse().unwrap(), f[2].parse().unwrap());
            assert_eq!(class, expected[i].0, "sample {i}");
            assert!((p - expected[i].1).abs() < 1e-6, "sample {i}: C printed {p}, Rust computed {}", expected[i].1);
            assert_eq!(f[4].parse::<i64>().unwrap(), labels[i]);
            seen += 1;
        }
        assert_eq!(seen, labels.len());
        let correct = expected.iter().zip(&labels).filter(|(e, l)| e.0 as i64 == **l).count();
        assert!(text.contains(&format!("accuracy: {correct}/{}", labels.len())), "{text}");
        assert!(correct * 100 >= 95 * labels.len(), "accuracy {correct}/{}", labels.len());
    }
}
