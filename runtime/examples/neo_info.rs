//! A minimal program embedding the runtime: `neo_info model.neo [runs]` loads an
//! artifact, prints its signatures and runs it on zero-filled inputs. Its release binary
//! is the measure of what the runtime adds to a program.

use std::time::Instant;

use neoc_runtime::{Model, Tensor};

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: neo_info model.neo [runs]")?;
    let runs: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(1).max(1);
    let model = Model::load(&path)?;
    let m = model.metadata();
    println!("{path}: neoc {}, target {} ({}, {}), {} threads", model.neoc_version(), m.target, m.isa, m.call_conv, model.thread_count());
    println!("cpu features: {}", m.cpu_features.join(" "));
    println!("arena: {} bytes", m.arena_size);
    for s in model.inputs() {
        println!("input  {s}");
    }
    for s in model.outputs() {
        println!("output {s}");
    }
    let inputs = model.inputs().iter().map(|s| Tensor::zeros(s.dtype, s.shape.clone())).collect::<Result<Vec<_>, _>>()?;
    let start = Instant::now();
    let mut outputs = Vec::new();
    for _ in 0..runs {
        outputs = model.run(&inputs)?;
    }
    println!("{runs} run(s), {:?} each", start.elapsed() / runs as u32);
    for (s, t) in model.outputs().iter().zip(&outputs) {
        println!("{}: {} bytes, first bytes {:02x?}", s.name, t.bytes().len(), &t.bytes()[..t.bytes().len().min(8)]);
    }
    Ok(())
}
