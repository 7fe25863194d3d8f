//! `neoc run model.neo --input name=x.npy ... [--output-dir D] [--threads N]`

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow};
use neoc::tensor::npy;
use neoc_runtime::{Model, TensorRef};

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
}

pub fn run(a: Args) -> Result<ExitCode> {
    let opts = match a.max_memory {
        Some(m) => neoc_runtime::LoadOptions::max_memory((m != u64::MAX).then_some(m)),
        None => neoc_runtime::LoadOptions::default(),
    };
    let mut model = Model::load_with(&a.artifact, &opts).map_err(|e| anyhow!("{}: {e}", a.artifact.display()))?;
    if let Some(t) = a.threads {
        model.set_thread_count(t);
    }
    let mut tensors = Vec::new();
    for it in &a.inputs {
        let (name, path) = it.split_once('=').with_context(|| format!("--input '{it}' should be name=file.npy"))?;
        let t = npy::read(path.as_ref())?;
        tensors.push((name.to_string(), neoc::driver::to_runtime(&t).with_context(|| format!("input '{name}'"))?));
    }
    let named: Vec<(&str, TensorRef<'_>)> = tensors.iter().map(|(n, t)| (n.as_str(), t.view())).collect();
    let outputs = model.run_named(&named).map_err(|e| anyhow!("{e}"))?;
    for (sig, t) in model.outputs().iter().zip(&outputs) {
        let t = neoc::driver::from_runtime(t)?;
        match &a.output_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
                let path = dir.join(format!("{}.npy", super::eval::file_name_for(&sig.name)));
                npy::write(&path, &t)?;
                println!("{} -> {}", sig.name, path.display());
            }
            None => println!("{}: {}", sig.name, neoc::ir::print::tensor_literal(&t)),
        }
    }
    Ok(ExitCode::SUCCESS)
}
