//! `neoc eval model.onnx --input name=x.npy ... [--output-dir D]`

use anyhow::{Context, Result, bail};
use neoc::onnx::{self, ImportOptions};
use neoc::tensor::{Tensor, npy};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    pub model: PathBuf,
    /// An input value: name=file.npy (repeatable).
    #[arg(long = "input", short)]
    pub inputs: Vec<String>,
    /// Write each output to D/<name>.npy instead of printing it.
    #[arg(long)]
    pub output_dir: Option<PathBuf>,
    /// Also print the indices of the K largest values of each output (e.g. top classes).
    #[arg(long)]
    pub top: Option<usize>,
    /// Evaluate this many times and report the median time (the first run is a warm-up).
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Output names become file names: anything but letters, digits, '-', '_' and '.' becomes '_'.
pub fn file_name_for(output: &str) -> String {
    output.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).collect()
}

pub fn run(a: Args) -> Result<ExitCode> {
    let model = onnx::load(&a.model)?;
    let mut values: HashMap<String, Tensor> = HashMap::new();
    for it in &a.inputs {
        let (name, path) = it.split_once('=').with_context(|| format!("--input '{it}' should be name=file.npy"))?;
        values.insert(name.to_string(), npy::read(path.as_ref())?);
    }
    let mut opts = ImportOptions {
        input_shapes: values.iter().map(|(n, t)| (n.clone(), t.shape().to_vec())).collect(),
        ..Default::default()
    };
    let graph = loop {
        match onnx::import(&model, &opts) {
            Ok(g) => break g,
            Err(e) => match e.inputs_needed_as_constants() {
                Some(names) if !names.is_empty() && names.iter().all(|n| values.contains_key(n) && !opts.input_values.contains_key(n)) => {
                    for n in names {
                        opts.input_shapes.remove(&n);
                        opts.input_values.insert(n.clone(), values[&n].clone());
                    }
                }
                _ => return Err(e.into()),
            },
        }
    };
    let mut args = vec![];
    for n in &graph.inputs {
        let name = &graph.node(*n).name;
        match values.get(name) {
            Some(t) => args.push(t.clone()),
            None => bail!("input '{name}' was not given (use --input {name}=file.npy)"),
        }
    }
    let mut times = vec![];
    let mut outputs = vec![];
    for _ in 0..a.runs.max(1) {
        let t = std::time::Instant::now();
        outputs = neoc::eval::run(&graph, &args)?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(|x, y| x.total_cmp(y));
    if a.json {
        let mut outs = Vec::new();
        for ((name, _), t) in graph.outputs.iter().zip(&outputs) {
            let mut v = super::samples::tensor_json(name, t);
            if let Some(d) = &a.output_dir {
                std::fs::create_dir_all(d)?;
                let p = d.join(format!("{}.npy", file_name_for(name)));
                npy::write(&p, t)?;
                v["path"] = p.display().to_string().into();
            }
            if let (Some(k), Ok(vals)) = (a.top, t.to_f64_vec()) {
                v["top"] = super::samples::top_json(&vals, k);
            }
            outs.push(v);
        }
        super::print_json(&serde_json::json!({ "ok": true, "model": a.model, "outputs": outs, "median_ms": times[times.len() / 2], "runs": times.len() }))?;
        return Ok(ExitCode::SUCCESS);
    }
    for ((name, _), t) in graph.outputs.iter().zip(&outputs) {
        match &a.output_dir {
            Some(d) => {
                std::fs::create_dir_all(d)?;
                let p = d.join(format!("{}.npy", file_name_for(name)));
                npy::write(&p, t)?;
                println!("{name}: {} -> {}", neoc::ir::ValueType::of(t), p.display());
            }
            None => println!("{name} = {t:?}"),
        }
        if let Some(k) = a.top {
            if let Ok(v) = t.to_f64_vec() {
                let mut idx: Vec<usize> = (0..v.len()).collect();
                idx.sort_by(|&x, &y| v[y].total_cmp(&v[x]));
                let best: Vec<String> = idx.iter().take(k).map(|&i| format!("#{i} ({:.4})", v[i])).collect();
                println!("{name} top {k}: {}", best.join(", "));
            }
        }
    }
    println!("reference evaluation: median {:.3} ms over {} run{}", times[times.len() / 2], times.len(), if times.len() == 1 { "" } else { "s" });
    Ok(ExitCode::SUCCESS)
}
