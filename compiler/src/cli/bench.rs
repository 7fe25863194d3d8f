//! `neoc bench model.neo [--threads N] [--warmup N] [--runs N] [--input name=x.npy]... [--json]`

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, anyhow};
use neoc::tensor::npy;
use neoc_runtime::{DType, Model, Tensor, TensorMut};

#[derive(clap::Args)]
pub struct Args {
    /// Refuse a model that needs more memory than this: bytes or 512M, 4G, ...; `none`
    /// for no limit. Default: this machine's memory.
    #[arg(long, value_parser = super::parse_memory)]
    pub max_memory: Option<u64>,
    pub artifact: PathBuf,
    /// Intra-op threads (default: the physical cores).
    #[arg(long)]
    pub threads: Option<usize>,
    #[arg(long, default_value_t = 5)]
    pub warmup: usize,
    #[arg(long, default_value_t = 50)]
    pub runs: usize,
    /// Input values: name=file.npy (default: generated inputs of the right shapes).
    #[arg(long = "input", short)]
    pub inputs: Vec<String>,
    /// For a portable artifact: measure this code variant instead of the best the CPU has.
    #[arg(long)]
    pub code_variant: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// A deterministic input: small values for floats, zeros for integers (valid token ids and
/// indices), false for bools.
fn generated(dtype: DType, shape: &[usize]) -> Result<Tensor> {
    let mut t = Tensor::zeros(dtype, shape.to_vec()).map_err(|e| anyhow!("{e}"))?;
    match dtype {
        DType::F32 => {
            for (i, v) in t.as_slice_mut::<f32>().map_err(|e| anyhow!("{e}"))?.iter_mut().enumerate() {
                *v = ((i * 7919) % 1000) as f32 / 1000.0 - 0.5;
            }
        }
        DType::F64 => {
            for (i, v) in t.as_slice_mut::<f64>().map_err(|e| anyhow!("{e}"))?.iter_mut().enumerate() {
                *v = ((i * 7919) % 1000) as f64 / 1000.0 - 0.5;
            }
        }
        _ => {}
    }
    Ok(t)
}

/// The model's inputs: `name=file.npy` where given, generated ones otherwise.
pub(super) fn inputs_for(model: &Model, given: &[String]) -> Result<Vec<Tensor>> {
    let mut inputs = Vec::new();
    for sig in model.inputs() {
        let file = given.iter().find_map(|it| it.split_once('=').filter(|(n, _)| *n == sig.name));
        inputs.push(match file {
            Some((_, path)) => neoc::driver::to_runtime(&npy::read(path.as_ref())?).with_context(|| format!("input '{}'", sig.name))?,
            None => generated(sig.dtype, &sig.shape)?,
        });
    }
    Ok(inputs)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

pub fn run(a: Args) -> Result<ExitCode> {
    if a.runs == 0 {
        anyhow::bail!("--runs must be at least 1");
    }
    let opts = super::load_options(a.code_variant.clone(), a.max_memory);
    let mut model = Model::load_with(&a.artifact, &opts).map_err(|e| anyhow!("{}: {e}", a.artifact.display()))?;
    if let Some(t) = a.threads {
        model.set_thread_count(t);
    }
    let inputs = inputs_for(&model, &a.inputs)?;
    let views: Vec<_> = inputs.iter().map(Tensor::view).collect();
    let mut outputs: Vec<Tensor> = model.outputs().iter().map(|s| Tensor::zeros(s.dtype, s.shape.clone())).collect::<Result<_, _>>().map_err(|e| anyhow!("{e}"))?;
    let mut times = Vec::with_capacity(a.runs);
    for i in 0..a.warmup + a.runs {
        let mut outs: Vec<TensorMut<'_>> = outputs.iter_mut().map(Tensor::view_mut).collect();
        let t = Instant::now();
        model.run_into(&views, &mut outs).map_err(|e| anyhow!("{e}"))?;
        if i >= a.warmup {
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    let (p50, p90, p99) = (percentile(&times, 0.5), percentile(&times, 0.9), percentile(&times, 0.99));
    let threads = model.thread_count();
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "artifact": a.artifact.display().to_string(),
                "median_ms": p50, "p90_ms": p90, "p99_ms": p99, "min_ms": times[0],
                "runs": a.runs, "warmup": a.warmup, "threads": threads,
                "throughput_per_s": 1e3 / p50, "code_variant": model.code_variant(),
            })
        );
    } else {
        let variant = model.code_variant().map(|v| format!(", code variant {v}")).unwrap_or_default();
        println!("{}: {} runs after {} warm-up, {threads} thread(s){variant}", a.artifact.display(), a.runs, a.warmup);
        println!("  p50 {p50:.3} ms   p90 {p90:.3} ms   p99 {p99:.3} ms   min {:.3} ms", times[0]);
        println!("  throughput {:.1} inferences/s", 1e3 / p50);
    }
    Ok(ExitCode::SUCCESS)
}
