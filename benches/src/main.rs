//! neoc benchmarks. Speed is measured, never asserted in tests.
//!
//! `cargo run --release -p neoc-benches -- load MODEL.onnx [--runs N] [name=d0,d1,...]...`
//!   Times loading (mmap + protobuf decode) and import (IR + inference + folding) of a model,
//!   and shows that no weight was copied: every large constant still points into the file's
//!   memory map and none has been decoded.
//!
//! `cargo run --release -p neoc-benches -- scale [--sizes 10000,50000,200000] [--opt-level N]`
//!   Compile time against graph size: chains and wide graphs of N nodes (see `scale.rs`).

mod scale;

use anyhow::{Context, Result, bail};
use neoc::ir::NodeKind;
use neoc::onnx::{self, ImportOptions};
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn bench_load(path: &str, runs: usize, opts: &ImportOptions) -> Result<()> {
    let size = std::fs::metadata(path).with_context(|| format!("{path}"))?.len();
    let (mut load_ms, mut import_ms) = (vec![], vec![]);
    let mut last = None;
    for _ in 0..runs {
        let t0 = Instant::now();
        let model = onnx::load(path.as_ref())?;
        let t1 = Instant::now();
        let graph = onnx::import(&model, opts)?;
        let t2 = Instant::now();
        load_ms.push((t1 - t0).as_secs_f64() * 1e3);
        import_ms.push((t2 - t1).as_secs_f64() * 1e3);
        last = Some((model, graph));
    }
    let (model, graph) = last.context("at least one run")?;
    // Zero-copy check: constants keep raw slices of the mapping until something decodes them.
    let (mut consts, mut raw_bytes, mut decoded, mut decoded_bytes) = (0usize, 0usize, 0usize, 0usize);
    for n in graph.node_ids() {
        if let NodeKind::Const(c) = &graph.node(n).kind {
            consts += 1;
            if let Some(r) = c.raw() {
                raw_bytes += r.len();
            }
            if c.is_materialised() {
                decoded += 1;
                decoded_bytes += c.ty().bytes();
            }
        }
    }
    drop(model);
    println!("model:    {path} ({:.1} MB)", size as f64 / 1e6);
    println!("load:     median {:.2} ms over {runs} runs (mmap + protobuf decode)", median(load_ms));
    println!("import:   median {:.2} ms (IR, shape inference, constant folding)", median(import_ms));
    println!(
        "weights:  {consts} constants; {:.1} MB still raw slices of the mapped file; {decoded} decoded ({:.1} kB: small constants whose values shape inference or folding read)",
        raw_bytes as f64 / 1e6,
        decoded_bytes as f64 / 1e3
    );
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runs = args.iter().position(|a| a == "--runs").and_then(|i| args.get(i + 1)).map(|s| s.parse()).transpose()?.unwrap_or(10);
    let mut opts = ImportOptions::default();
    for a in args.iter().filter(|a| a.contains('=')) {
        let (name, dims) = a.split_once('=').context("name=dims")?;
        let dims = dims.split(',').map(|d| d.parse::<usize>()).collect::<Result<Vec<_>, _>>()?;
        opts.input_shapes.insert(name.to_string(), dims);
    }
    match args.first().map(String::as_str) {
        Some("load") => bench_load(args.get(1).context("usage: load MODEL.onnx [--runs N] [name=dims]...")?, runs, &opts),
        Some("scale") => scale::run(&args[1..]),
        _ => bail!("usage: neoc-benches load MODEL.onnx [--runs N] [name=d0,d1,...]... | scale [--sizes N,N,...] [--opt-level N]"),
    }
}
