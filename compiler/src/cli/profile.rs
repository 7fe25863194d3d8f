//! `neoc profile model.neo [--threads N] [--warmup N] [--runs N] [--input name=x.npy]...
//! [--trace FILE] [--top K] [--json]`: the time of each step (fused kernel), its share of the
//! run and its achieved GFLOP/s, slowest first.
//!
//! The runtime calls the artifact's own step functions one by one through its step table
//! ([`neoc_runtime::Model::run_profiled`]): the code measured is the code that runs, with no
//! hooks compiled in; only the entry's call sequence is replaced by the runtime's loop. The
//! normal run is timed too, so the two totals show what the timing costs.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Result, anyhow, bail};
use neoc_runtime::{Model, Tensor, TensorMut};

#[derive(clap::Args)]
pub struct Args {
    pub artifact: PathBuf,
    /// Intra-op threads (default: the physical cores).
    #[arg(long)]
    pub threads: Option<usize>,
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Profiled runs; each step's time is its median over them.
    #[arg(long, default_value_t = 10)]
    pub runs: usize,
    /// Input values: name=file.npy (default: generated inputs of the right shapes).
    #[arg(long = "input", short)]
    pub inputs: Vec<String>,
    /// Also write every profiled run's steps as a Chrome/Perfetto trace (JSON).
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// Print the K slowest steps (0: all); the JSON always has every step.
    #[arg(long, default_value_t = 25)]
    pub top: usize,
    /// For a portable artifact: profile this code variant instead of the best the CPU has.
    #[arg(long)]
    pub code_variant: Option<String>,
    #[arg(long, value_parser = super::parse_memory)]
    pub max_memory: Option<u64>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn run(a: Args) -> Result<ExitCode> {
    if a.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let opts = super::load_options(a.code_variant.clone(), a.max_memory);
    let mut model = Model::load_with(&a.artifact, &opts).map_err(|e| anyhow!("{}: {e}", a.artifact.display()))?;
    if let Some(t) = a.threads {
        model.set_thread_count(t);
    }
    let steps = model.steps().ok_or_else(|| anyhow!("{}: {}", a.artifact.display(), neoc_runtime::RunError::NoStepTable))?.to_vec();
    let inputs = super::bench::inputs_for(&model, &a.inputs)?;
    let views: Vec<_> = inputs.iter().map(Tensor::view).collect();
    let mut outputs: Vec<Tensor> = model.outputs().iter().map(|s| Tensor::zeros(s.dtype, s.shape.clone())).collect::<Result<_, _>>().map_err(|e| anyhow!("{e}"))?;

    // Normal runs and profiled runs, alternating after the warm-up, so drift hits both.
    let origin = Instant::now();
    let mut per_step: Vec<Vec<f64>> = vec![Vec::with_capacity(a.runs); steps.len()];
    let mut events: Vec<(usize, usize, f64, f64)> = Vec::new(); // (run, step, start µs, duration µs)
    let (mut normal, mut profiled) = (Vec::new(), Vec::new());
    for i in 0..a.warmup + a.runs {
        let timed = i >= a.warmup;
        let mut outs: Vec<TensorMut<'_>> = outputs.iter_mut().map(Tensor::view_mut).collect();
        let t = Instant::now();
        model.run_into(&views, &mut outs).map_err(|e| anyhow!("{e}"))?;
        let normal_ms = t.elapsed().as_secs_f64() * 1e3;
        let mut record = |s: usize, r: std::ops::Range<Instant>| {
            if timed {
                let d = (r.end - r.start).as_secs_f64();
                per_step[s].push(d * 1e3);
                if a.trace.is_some() {
                    events.push((i - a.warmup, s, (r.start - origin).as_secs_f64() * 1e6, d * 1e6));
                }
            }
        };
        let t = Instant::now();
        model.run_profiled(&views, &mut outs, &mut record).map_err(|e| anyhow!("{e}"))?;
        if timed {
            profiled.push(t.elapsed().as_secs_f64() * 1e3);
            normal.push(normal_ms);
        }
    }
    let times: Vec<f64> = per_step.into_iter().map(|v| if v.is_empty() { 0.0 } else { median(v) }).collect();
    let total: f64 = times.iter().sum();
    let mut order: Vec<usize> = (0..steps.len()).collect();
    order.sort_by(|&x, &y| times[y].total_cmp(&times[x]).then(x.cmp(&y)));
    let share = |i: usize| if total > 0.0 { times[i] / total } else { 0.0 };
    let gflops = |i: usize| if times[i] > 0.0 { steps[i].flops as f64 / (times[i] * 1e6) } else { 0.0 };
    let (normal_ms, profiled_ms) = (median(normal), median(profiled));
    let threads = model.thread_count();
    let flops: u64 = steps.iter().map(|s| s.flops).sum();

    if let Some(path) = &a.trace {
        let trace: Vec<serde_json::Value> = events
            .iter()
            .map(|&(run, s, ts, dur)| {
                let st = &steps[s];
                serde_json::json!({
                    "name": st.node, "cat": st.kind, "ph": "X", "ts": ts, "dur": dur, "pid": 1, "tid": 1,
                    "args": {"step": s, "run": run, "op": st.op, "flops": st.flops},
                })
            })
            .collect();
        let doc = serde_json::json!({"traceEvents": trace, "displayTimeUnit": "ms", "otherData": {"artifact": a.artifact.display().to_string(), "threads": threads}});
        std::fs::write(path, serde_json::to_vec(&doc)?).map_err(|e| anyhow!("writing {}: {e}", path.display()))?;
    }
    if a.json {
        let rows: Vec<serde_json::Value> = order
            .iter()
            .map(|&i| {
                let st = &steps[i];
                serde_json::json!({
                    "step": i, "node": st.node, "op": st.op, "kind": st.kind, "flops": st.flops,
                    "median_ms": times[i], "share": share(i), "gflops": gflops(i),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "artifact": a.artifact.display().to_string(), "threads": threads, "runs": a.runs, "warmup": a.warmup,
                "run_median_ms": normal_ms, "profiled_median_ms": profiled_ms, "steps_total_ms": total,
                "flops": flops, "gflops": flops as f64 / (normal_ms * 1e6),
                "trace": a.trace.as_ref().map(|p| p.display().to_string()), "steps": rows,
            })
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}: {} steps, {} runs after {} warm-up, {threads} thread(s)", a.artifact.display(), steps.len(), a.runs, a.warmup);
    println!(
        "run: median {normal_ms:.3} ms as normal ({:.1} GFLOP/s), {profiled_ms:.3} ms step by step; the steps' medians sum to {total:.3} ms",
        flops as f64 / (normal_ms * 1e6)
    );
    println!("{:>6} {:>10} {:>8} {:>6}  node (op, kind)", "share", "ms", "GFLOP/s", "step");
    let shown = if a.top == 0 { order.len() } else { a.top.min(order.len()) };
    for &i in &order[..shown] {
        let st = &steps[i];
        let op = if st.op.is_empty() { String::new() } else { format!("{}, ", st.op) };
        println!("{:>5.1}% {:>10.4} {:>8.1} {:>6}  {} ({op}{})", share(i) * 100.0, times[i], gflops(i), i, st.node, st.kind);
    }
    if shown < order.len() {
        let rest: f64 = order[shown..].iter().map(|&i| share(i)).sum();
        println!("  ... {} more steps: {:.1}% of the time (--top 0 lists every step)", order.len() - shown, rest * 100.0);
    }
    if let Some(p) = &a.trace {
        println!("trace: {} (open in https://ui.perfetto.dev or chrome://tracing)", p.display());
    }
    Ok(ExitCode::SUCCESS)
}
