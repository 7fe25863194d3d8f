//! `neoc compile … --package out.tar.gz`: the artifact, a manifest and a README for the
//! device, in one archive.
//!
//! ```text
//! <stem>/<stem>.neo      the artifact
//! <stem>/manifest.json   target, ISA, CPU features (per code variant), inputs and outputs,
//!                        checksum, neoc version, the runtime version and features needed
//! <stem>/README.md       how to run it with the runtime from Rust, C and Python
//! ```

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, anyhow};
use neoc::target::Target;
use neoc_runtime::{Artifact, DType, TensorSig};
use serde_json::{Value, json};

/// Writes the package and returns what it holds, for the summary.
pub fn write(path: &Path, artifact_path: &Path, bytes: &[u8], target: &Target, model: &Path) -> Result<Value> {
    let art = Artifact::parse(bytes).map_err(|e| anyhow!("the artifact just written does not parse: {e}"))?;
    let stem = artifact_path.file_stem().and_then(|s| s.to_str()).unwrap_or("model").to_string();
    let file = format!("{stem}.neo");
    let manifest = manifest(&art, bytes.len(), &file, target, model);
    let readme = readme(&art, &file, target);
    let out = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let gz = flate2::write::GzEncoder::new(out, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let manifest_text = serde_json::to_string_pretty(&manifest)? + "\n";
    for (name, data) in [(file.as_str(), bytes), ("manifest.json", manifest_text.as_bytes()), ("README.md", readme.as_bytes())] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        tar.append_data(&mut h, format!("{stem}/{name}"), data).with_context(|| format!("adding {name} to {}", path.display()))?;
    }
    let mut gz = tar.into_inner().context("finishing the tar archive")?;
    gz.flush()?;
    gz.finish().context("finishing the gzip stream")?;
    let size = std::fs::metadata(path)?.len();
    Ok(json!({ "path": path, "bytes": size, "files": [format!("{stem}/{file}"), format!("{stem}/manifest.json"), format!("{stem}/README.md")], "manifest": manifest }))
}

fn sig_json(s: &TensorSig) -> Value {
    json!({ "name": s.name, "dtype": s.dtype.name(), "shape": s.shape })
}

fn manifest(art: &Artifact<'_>, len: usize, file: &str, target: &Target, model: &Path) -> Value {
    let m = &art.metadata;
    let variants: Vec<Value> = art.code_variants().iter().map(|(v, r)| json!({ "name": v.name, "cpu_features": v.cpu_features, "code_bytes": r.len() })).collect();
    json!({
        "package_format": 1,
        "artifact": file,
        "artifact_bytes": len,
        "checksum": { "algorithm": "xxh64", "value": format!("{:#018x}", art.checksum), "covers": "the whole artifact with its checksum field read as zero; the runtime verifies it at load" },
        "model": model.file_name().map(|n| n.to_string_lossy().to_string()),
        "target": { "name": target.name, "description": target.description, "isa": m.isa.as_str(), "cpu": target.cpu },
        "cpu_features": m.cpu_features,
        "code_variants": variants,
        "inputs": m.inputs.iter().map(sig_json).collect::<Vec<_>>(),
        "outputs": m.outputs.iter().map(sig_json).collect::<Vec<_>>(),
        "arena_bytes": m.arena_size,
        "neoc_version": art.neoc_version,
        "runtime": {
            "crate": "neoc-runtime",
            "min_version": env!("CARGO_PKG_VERSION"),
            "format_version": art.format_version,
            "kernel_abi_version": m.kernel_abi_version,
            "cargo_features": m.runtime_features,
        },
    })
}

fn numpy_dtype(d: DType) -> &'static str {
    match d {
        DType::F32 => "float32",
        DType::F64 => "float64",
        DType::F16 => "float16",
        DType::I8 => "int8",
        DType::I16 => "int16",
        DType::I32 => "int32",
        DType::I64 => "int64",
        DType::U8 => "uint8",
        DType::U16 => "uint16",
        DType::U32 => "uint32",
        DType::U64 => "uint64",
        DType::Bool => "bool_",
        _ => "object",
    }
}

fn readme(art: &Artifact<'_>, file: &str, target: &Target) -> String {
    let m = &art.metadata;
    let sigs = |l: &[TensorSig]| l.iter().map(|s| format!("- `{}`: {} {:?}", s.name, s.dtype.name(), s.shape)).collect::<Vec<_>>().join("\n");
    let py_inputs = m.inputs.iter().map(|s| format!("\"{}\": np.zeros({:?}, np.{})", s.name, s.shape, numpy_dtype(s.dtype))).collect::<Vec<_>>().join(", ");
    let first = m.inputs.first();
    let rust_input = first.map(|s| format!("Tensor::zeros(DType::{:?}, vec!{:?})?", s.dtype, s.shape)).unwrap_or_default();
    let features = if m.cpu_features.is_empty() { "none".to_string() } else { m.cpu_features.join(", ") };
    let variants = if art.code_variants().is_empty() {
        String::new()
    } else {
        format!("\nIt carries code for {}; the runtime runs the best one the CPU supports.\n", art.code_variants().iter().map(|(v, _)| v.name.clone()).collect::<Vec<_>>().join(", "))
    };
    format!(
        "# {file}\n\nCompiled by neoc {nv} for `{tname}` ({tdesc}): {isa}, CPU features required: {features}.\n{variants}\nInputs:\n{ins}\n\nOutputs:\n{outs}\n\n`manifest.json` has the same in JSON, the checksum, and the runtime needed: neoc-runtime {rv} or newer (artifact format {fv}, kernel ABI {kv}).\n\n## Rust\n\n```rust\nuse neoc_runtime::{{DType, Model, Tensor}};\nlet model = Model::load(\"{file}\")?;\nlet outputs = model.run(&[{rust_input}])?;   // one tensor per input, in order\n```\n\n## C\n\n```c\n#include \"neoc_runtime.h\"\nneoc_model *m = NULL;\nif (neoc_model_load(\"{file}\", &m) != NEOC_OK) {{ fprintf(stderr, \"%s\\n\", neoc_last_error()); return 1; }}\n/* inputs[i] / outputs[i]: your buffers, sizes in bytes */\nneoc_model_run(m, inputs, input_sizes, {nin}, outputs, output_sizes, {nout});\nneoc_model_free(m);\n```\n\nLink with `-lneoc_runtime_c` (the static library `libneoc_runtime_c.a` or the shared one); the header is `runtime/capi/include/neoc_runtime.h` in the neoc repository.\n\n## Python\n\n```python\nimport numpy as np, neoc_runtime\nmodel = neoc_runtime.Model(\"{file}\")\noutputs = model.run({{{py_inputs}}})   # {{name: ndarray}}\n```\n",
        nv = art.neoc_version,
        tname = target.name,
        tdesc = target.description,
        isa = m.isa,
        ins = sigs(&m.inputs),
        outs = sigs(&m.outputs),
        rv = env!("CARGO_PKG_VERSION"),
        fv = art.format_version,
        kv = m.kernel_abi_version,
        nin = m.inputs.len(),
        nout = m.outputs.len(),
    )
}
