//! Embedding the runtime in a Rust program: `classify model.neo samples.npy labels.npy`
//! loads a compiled image classifier (e.g. the shipped digits model, `neoc compile
//! models/digits.onnx -o digits.neo`), runs it on every sample of a float32 `.npy` stack
//! ([N, ...input shape without its batch of 1]) and prints each predicted class with its
//! probability, then the accuracy against the int64 labels.
//!
//! `tests/embedding.rs` runs [`classify`] on a freshly compiled artifact and checks its
//! results against neoc's reference evaluator.

use neoc_runtime::{Model, Tensor, TensorMut, TensorRef};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, samples, labels] = args.as_slice() else {
        eprintln!("usage: classify model.neo samples.npy labels.npy");
        std::process::exit(2);
    };
    match classify(model, samples, labels) {
        Ok(r) => {
            for (i, p) in r.predictions.iter().enumerate() {
                println!("sample {i}: {} (p {:.4}), label {}", p.class, p.probability, r.labels[i]);
            }
            println!("accuracy: {}/{}", r.correct, r.labels.len());
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}

pub struct Prediction {
    pub class: usize,
    pub probability: f32,
    /// Every class's probability.
    pub scores: Vec<f32>,
}

pub struct Report {
    pub predictions: Vec<Prediction>,
    pub labels: Vec<i64>,
    pub correct: usize,
}

pub fn classify(model: &str, samples: &str, labels: &str) -> Result<Report, Box<dyn std::error::Error>> {
    let mut model = Model::load(model)?; // checks checksum, format, ISA, CPU features
    model.set_thread_count(1);
    let [input] = model.inputs() else { return Err("the model should take one input".into()) };
    let [output] = model.outputs() else { return Err("the model should have one output".into()) };
    let (x, _) = read_npy(samples, "<f4")?;
    let x: Vec<f32> = x.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
    let (y, _) = read_npy(labels, "<i8")?;
    let labels: Vec<i64> = y.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap())).collect();
    let per: usize = input.shape.iter().product();
    if x.len() != per * labels.len() {
        return Err(format!("{samples} holds {} values, not {} samples of {per}", x.len(), labels.len()).into());
    }
    // One output buffer, reused: `run_into` allocates nothing per run.
    let mut out = Tensor::zeros(output.dtype, output.shape.clone())?;
    let mut predictions = Vec::with_capacity(labels.len());
    for sample in x.chunks_exact(per) {
        let inp = TensorRef::from_slice(&input.shape, sample)?;
        let mut outs: [TensorMut<'_>; 1] = [out.view_mut()];
        model.run_into(&[inp], &mut outs)?;
        let scores = out.as_slice::<f32>()?.to_vec();
        let class = (0..scores.len()).fold(0, |b, i| if scores[i] > scores[b] { i } else { b });
        predictions.push(Prediction { class, probability: scores[class], scores });
    }
    let correct = predictions.iter().zip(&labels).filter(|(p, l)| p.class as i64 == **l).count();
    Ok(Report { predictions, labels, correct })
}

/// The data of a little-endian, C-order `.npy` file with dtype `descr`, and its header.
fn read_npy(path: &str, descr: &str) -> Result<(Vec<u8>, String), Box<dyn std::error::Error>> {
    let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(format!("{path} is not a .npy file").into());
    }
    let (len, start) = if bytes[6] == 1 { (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10) } else { (u32::from_le_bytes(bytes[8..12].try_into()?) as usize, 12) };
    let header = String::from_utf8_lossy(bytes.get(start..start + len).ok_or("truncated header")?).to_string();
    if !header.contains(&format!("'{descr}'")) || !header.contains("'fortran_order': False") {
        return Err(format!("{path}: expected a C-order {descr} array, the header is {header}").into());
    }
    Ok((bytes[start + len..].to_vec(), header))
}
