//! `neoc run model.neo --input name=x.npy ... [--output-dir D] [--threads N] [--top K]
//! [--labels L.npy] [--code-variant V] [--qemu [--count-instructions]] [--json]`
//!
//! An input whose first axis holds N samples where the model takes one (`[N,1,8,8]` for
//! a `[1,1,8,8]` input, or `[N, ...shape]`) is run sample by sample; classifier-shaped
//! outputs then print one line per sample, and `--labels` scores them (accuracy).
//!
//! `--qemu` runs an aarch64 artifact on this (x86-64) machine through the C host of
//! `tests/qemu/` under `qemu-aarch64-static` ([`neoc::qemu`]), so an artifact for a
//! Raspberry Pi or a Graviton can be checked before it is shipped. Its times are emulated;
//! `--count-instructions` counts each inference's aarch64 instructions instead
//! ([`neoc::qemu::count_instructions`]), which are not.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use neoc::tensor::{Tensor, npy};
use neoc_runtime::{Model, TensorMut, TensorRef};
use serde_json::json;

use super::samples::{self, DEFAULT_TOP};

#[derive(clap::Args)]
pub struct Args {
    /// Refuse a model that needs more memory than this: bytes or 512M, 4G, ...; `none`
    /// for no limit. Default: this machine's memory.
    #[arg(long, value_parser = super::parse_memory)]
    pub max_memory: Option<u64>,
    pub artifact: PathBuf,
    /// An input value: name=file.npy (repeatable).
    #[arg(long = "input", short)]
    pub inputs: Vec<String>,
    /// Write each output to D/<name>.npy (default: print them).
    #[arg(long)]
    pub output_dir: Option<PathBuf>,
    /// Intra-op threads (default: the physical cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Show the K most likely classes of classifier-shaped outputs ([1, C] floats); 0: off.
    #[arg(long)]
    pub top: Option<usize>,
    /// Integer labels (.npy), one per sample: scores the top class and prints the accuracy.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// For a portable artifact: run this code variant instead of the best the CPU has.
    #[arg(long)]
    pub code_variant: Option<String>,
    /// Run an aarch64 artifact under qemu-aarch64-static through the C host of tests/qemu/
    /// (emulated: its outputs are the device's, its times are not).
    #[arg(long)]
    pub qemu: bool,
    /// With --qemu: count the aarch64 instructions of one inference, on one thread (qemu's
    /// execution log; the host's loading is excluded: see neoc::qemu::count_instructions).
    #[arg(long, requires = "qemu")]
    pub count_instructions: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// What runs the artifact: the runtime on this machine, or the C host under qemu.
enum Exec {
    Native(Model),
    /// `counts`: with --count-instructions, each run's instructions per inference.
    Qemu { bytes: Vec<u8>, meta: neoc_runtime::Metadata, threads: usize, counts: Option<Vec<u64>> },
}

impl Exec {
    fn load(a: &Args) -> Result<Exec> {
        if a.qemu {
            if a.code_variant.is_some() {
                bail!("--code-variant is for portable x86-64 artifacts, not with --qemu");
            }
            let bytes = std::fs::read(&a.artifact).with_context(|| format!("reading {}", a.artifact.display()))?;
            let meta = neoc_runtime::Artifact::parse(&bytes).map_err(|e| anyhow!("{}: {e}", a.artifact.display()))?.metadata;
            if meta.isa != neoc_runtime::Isa::Aarch64 {
                bail!("{} is for {}: --qemu runs aarch64 artifacts; run this one without it", a.artifact.display(), meta.isa);
            }
            let threads = if a.count_instructions { 1 } else { a.threads.unwrap_or(1).max(1) };
            return Ok(Exec::Qemu { bytes, meta, threads, counts: a.count_instructions.then(Vec::new) });
        }
        let opts = super::load_options(a.code_variant.clone(), a.max_memory);
        let mut model = Model::load_with(&a.artifact, &opts).map_err(|e| {
            let hint = match neoc_runtime::Artifact::parse(&std::fs::read(&a.artifact).unwrap_or_default()) {
                Ok(art) if art.metadata.isa == neoc_runtime::Isa::Aarch64 => " (to run it here, under qemu, add --qemu)",
                _ => "",
            };
            anyhow!("{}: {e}{hint}", a.artifact.display())
        })?;
        if let Some(t) = a.threads {
            model.set_thread_count(t);
        }
        Ok(Exec::Native(model))
    }

    fn inputs(&self) -> &[neoc_runtime::TensorSig] {
        match self {
            Exec::Native(m) => m.inputs(),
            Exec::Qemu { meta, .. } => &meta.inputs,
        }
    }

    fn outputs(&self) -> &[neoc_runtime::TensorSig] {
        match self {
            Exec::Native(m) => m.outputs(),
            Exec::Qemu { meta, .. } => &meta.outputs,
        }
    }

    fn thread_count(&self) -> usize {
        match self {
            Exec::Native(m) => m.thread_count(),
            Exec::Qemu { threads, .. } => *threads,
        }
    }

    fn code_variant(&self) -> Option<&str> {
        match self {
            Exec::Native(m) => m.code_variant(),
            Exec::Qemu { .. } => None,
        }
    }

    /// Runs once into `outputs` (preallocated, in output order) and returns them converted,
    /// with the run's time in ms (under qemu: the host's own timing of the run, emulated).
    fn run(&mut self, inputs: &[neoc_runtime::Tensor], outputs: &mut [neoc_runtime::Tensor]) -> Result<(Vec<Tensor>, f64)> {
        match self {
            Exec::Native(model) => {
                let views: Vec<TensorRef<'_>> = inputs.iter().map(neoc_runtime::Tensor::view).collect();
                let mut outs: Vec<TensorMut<'_>> = outputs.iter_mut().map(neoc_runtime::Tensor::view_mut).collect();
                let t = Instant::now();
                model.run_into(&views, &mut outs).map_err(|e| anyhow!("{e}"))?;
                let ms = t.elapsed().as_secs_f64() * 1e3;
                Ok((outputs.iter().map(neoc::driver::from_runtime).collect::<Result<_>>()?, ms))
            }
            Exec::Qemu { bytes, threads, counts, .. } => {
                let args: Vec<Tensor> = inputs.iter().map(neoc::driver::from_runtime).collect::<Result<_>>()?;
                if let Some(counts) = counts {
                    let t = Instant::now();
                    let (count, outs) = neoc::qemu::count_instructions(bytes, &args)?;
                    counts.push(count.per_inference());
                    return Ok((outs, t.elapsed().as_secs_f64() * 1e3));
                }
                let r = neoc::qemu::run(bytes, &args, *threads, 1)?;
                let ms = r.per_run_ms.unwrap_or(r.wall.as_secs_f64() * 1e3);
                Ok((r.outputs, ms))
            }
        }
    }
}

/// One input: the tensor given, and whether its first axis is a stack of samples.
struct Given {
    index: usize,
    tensor: neoc_runtime::Tensor,
    batched: bool,
}

pub fn run(a: Args) -> Result<ExitCode> {
    let mut model = Exec::load(&a)?;
    let sigs = model.inputs().to_vec();
    let mut given: Vec<Given> = Vec::new();
    let mut samples_n: Option<usize> = None;
    for it in &a.inputs {
        let (name, path) = it.split_once('=').with_context(|| format!("--input '{it}' should be name=file.npy"))?;
        let Some(index) = sigs.iter().position(|s| s.name == name) else {
            bail!("the model has no input '{name}'; its inputs are {}", sigs.iter().map(|s| format!("'{}'", s.name)).collect::<Vec<_>>().join(", "));
        };
        let t = npy::read(path.as_ref())?;
        let want = &sigs[index].shape;
        let s = t.shape();
        let batched = s != want.as_slice()
            && !s.is_empty()
            && ((s.len() == want.len() && want.first() == Some(&1) && s[1..] == want[1..]) || (s.len() == want.len() + 1 && s[1..] == want[..]));
        if batched {
            if samples_n.is_some_and(|n| n != s[0]) {
                bail!("input '{name}' holds {} samples, another input {}", s[0], samples_n.unwrap_or(0));
            }
            samples_n = Some(s[0]);
        }
        let tensor = neoc::driver::to_runtime(&t).with_context(|| format!("input '{name}'"))?;
        given.push(Given { index, tensor, batched });
    }
    for (i, s) in sigs.iter().enumerate() {
        if !given.iter().any(|g| g.index == i) {
            bail!("input '{}' was not given (use --input {}=file.npy; it is {} {:?})", s.name, s.name, s.dtype, s.shape);
        }
    }
    let n = samples_n.unwrap_or(1);
    let top = a.top.unwrap_or(DEFAULT_TOP);
    let labels = match &a.labels {
        Some(p) => {
            let l = samples::read_labels(p)?;
            if l.len() != n {
                bail!("{} holds {} labels for {n} sample(s)", p.display(), l.len());
            }
            Some(l)
        }
        None => None,
    };

    // Run each sample (or the one input set) into preallocated outputs, timing each run.
    let out_sigs = model.outputs().to_vec();
    let mut outputs: Vec<neoc_runtime::Tensor> =
        out_sigs.iter().map(|s| neoc_runtime::Tensor::zeros(s.dtype, s.shape.clone())).collect::<Result<_, _>>().map_err(|e| anyhow!("{e}"))?;
    let mut per_sample: Vec<Vec<Tensor>> = Vec::with_capacity(n);
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let mut owned = Vec::with_capacity(sigs.len());
        for (k, sig) in sigs.iter().enumerate() {
            let g = given.iter().find(|g| g.index == k).expect("every input given");
            owned.push(if g.batched {
                let step = g.tensor.bytes().len() / n;
                neoc_runtime::Tensor::from_bytes(sig.dtype, sig.shape.clone(), &g.tensor.bytes()[i * step..(i + 1) * step]).map_err(|e| anyhow!("input '{}': {e}", sig.name))?
            } else {
                g.tensor.clone()
            });
        }
        let (outs, ms) = model.run(&owned, &mut outputs)?;
        times.push(ms);
        per_sample.push(outs);
    }
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let (median, min) = (sorted[sorted.len() / 2], sorted[0]);
    let classifier: Vec<bool> = per_sample[0].iter().map(samples::is_classifier).collect();

    if let Some(dir) = &a.output_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for (k, sig) in out_sigs.iter().enumerate() {
            let path = dir.join(format!("{}.npy", super::eval::file_name_for(&sig.name)));
            let t = if n == 1 { per_sample[0][k].clone() } else { stack(&per_sample.iter().map(|s| s[k].clone()).collect::<Vec<_>>())? };
            npy::write(&path, &t)?;
            if !a.json {
                println!("{} -> {}", sig.name, path.display());
            }
        }
    }
    // Accuracy: the first classifier-shaped output's top class against the labels.
    let first_cls = classifier.iter().position(|&c| c);
    let correct = match (&labels, first_cls) {
        (Some(l), Some(k)) => Some(per_sample.iter().zip(l).filter(|(s, l)| samples::top_k(&s[k].to_f64_vec().unwrap_or_default(), 1).first().map(|t| t.0 as i64) == Some(**l)).count()),
        (Some(_), None) => bail!("--labels needs a classifier-shaped output ([1, classes] floats); the outputs are {}", out_sigs.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ")),
        _ => None,
    };

    let counts = match &model {
        Exec::Qemu { counts, .. } => counts.clone(),
        Exec::Native(_) => None,
    };
    if a.json {
        let samples_json: Vec<_> = per_sample
            .iter()
            .enumerate()
            .map(|(i, outs)| {
                let o: Vec<_> = outs
                    .iter()
                    .zip(&out_sigs)
                    .zip(&classifier)
                    .map(|((t, s), &c)| {
                        let mut v = samples::tensor_json(&s.name, t);
                        if c && top > 0 {
                            v["top"] = samples::top_json(&t.to_f64_vec().unwrap_or_default(), top);
                        }
                        v
                    })
                    .collect();
                let mut v = json!({ "sample": i, "label": labels.as_ref().map(|l| l[i]), "outputs": o, "ms": times[i] });
                if let Some(c) = &counts {
                    v["instructions"] = json!(c[i]);
                }
                v
            })
            .collect();
        super::print_json(&json!({
            "ok": true, "artifact": a.artifact, "code_variant": model.code_variant(), "threads": model.thread_count(), "qemu": a.qemu,
            "samples": samples_json,
            "accuracy": correct.map(|c| json!({ "correct": c, "total": n, "fraction": c as f64 / n as f64 })),
            "latency_ms": { "median": median, "min": min, "runs": n },
        }))?;
        return Ok(ExitCode::SUCCESS);
    }

    let variant = match model.code_variant() {
        Some(v) => format!(", code variant {v}"),
        None if a.qemu => ", aarch64 under qemu: emulated times".to_string(),
        None => String::new(),
    };
    if n > 1 {
        println!("{}: {n} samples, run one at a time ({} thread(s){variant})", a.artifact.display(), model.thread_count());
    }
    for (i, outs) in per_sample.iter().enumerate() {
        for ((t, sig), &c) in outs.iter().zip(&out_sigs).zip(&classifier) {
            let prefix = if n > 1 { format!("sample {i:>3}: ") } else { String::new() };
            if n > 1 && c && top > 0 {
                let v = t.to_f64_vec()?;
                let mark = match &labels {
                    Some(l) => {
                        let ok = samples::top_k(&v, 1)[0].0 as i64 == l[i];
                        format!("   label {}{}", l[i], if ok { "" } else { "   <- wrong" })
                    }
                    None => String::new(),
                };
                println!("{prefix}{}{mark}", samples::describe_top(&v, top));
                continue;
            }
            if a.output_dir.is_none() {
                println!("{prefix}{}: {}", sig.name, neoc::ir::print::tensor_literal(t));
            }
            if c && top > 0 {
                println!("{prefix}{} top {top}: {}", sig.name, samples::describe_top(&t.to_f64_vec()?, top));
            }
        }
    }
    if let Some(c) = correct {
        println!("accuracy: {c}/{n} = {:.1}%", 100.0 * c as f64 / n as f64);
    }
    if let Some(c) = &counts {
        let all: Vec<String> = c.iter().map(u64::to_string).collect();
        println!("aarch64 instructions per inference (1 thread, counted under qemu): {}", all.join(", "));
    }
    let runs = if n == 1 { "1 run".to_string() } else { format!("{n} runs") };
    println!("latency: median {median:.4} ms, min {min:.4} ms over {runs} ({} thread(s){variant})", model.thread_count());
    Ok(ExitCode::SUCCESS)
}

/// Stacks per-sample outputs along a new first axis (leading 1s of each dropped when the
/// sample shape starts with 1, so [N, C] rather than [N, 1, C]).
fn stack(parts: &[Tensor]) -> Result<Tensor> {
    let first = &parts[0];
    let inner: Vec<usize> = if first.shape().first() == Some(&1) { first.shape()[1..].to_vec() } else { first.shape().to_vec() };
    let mut bytes = Vec::new();
    for p in parts {
        bytes.extend_from_slice(&p.to_le_bytes()?);
    }
    let mut shape = vec![parts.len()];
    shape.extend(inner);
    Tensor::from_le_bytes(first.dtype(), &shape, &bytes)
}
