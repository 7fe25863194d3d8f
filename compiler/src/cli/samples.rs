//! What `neoc run` and `neoc eval` print about outputs: the top classes of a
//! classifier-shaped output, probabilities or scores, and labels to score against.

use anyhow::{Context, Result, bail};
use neoc::tensor::{DType, Tensor, npy};
use serde_json::{Value, json};
use std::path::Path;

/// How many top classes to show when `--top` is not given.
pub const DEFAULT_TOP: usize = 3;

/// Whether an output looks like one sample's class scores: a float vector of at least two
/// classes, alone or with leading 1s (`[10]`, `[1, 10]`, `[1, 1, 1000]`).
pub fn is_classifier(t: &Tensor) -> bool {
    let s = t.shape();
    t.dtype().is_float() && !s.is_empty() && s[s.len() - 1] >= 2 && s[..s.len() - 1].iter().all(|&d| d == 1)
}

/// The `k` largest values, best first, as (class, value).
pub fn top_k(values: &[f64], k: usize) -> Vec<(usize, f64)> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    idx.sort_by(|&x, &y| values[y].total_cmp(&values[x]).then(x.cmp(&y)));
    idx.into_iter().take(k).map(|i| (i, values[i])).collect()
}

/// Whether scores are probabilities (in [0, 1], summing to 1): then they print as `p`.
pub fn is_probability(values: &[f64]) -> bool {
    values.iter().all(|v| (0.0..=1.0).contains(v)) && (values.iter().sum::<f64>() - 1.0).abs() < 1e-3
}

/// `7 (p 0.9981), 9 (p 0.0012)` or with `score` for logits.
pub fn describe_top(values: &[f64], k: usize) -> String {
    let what = if is_probability(values) { "p" } else { "score" };
    top_k(values, k).iter().map(|(c, v)| format!("{c} ({what} {v:.4})")).collect::<Vec<_>>().join(", ")
}

pub fn top_json(values: &[f64], k: usize) -> Value {
    json!(top_k(values, k).iter().map(|(c, v)| json!({ "class": c, "value": v })).collect::<Vec<_>>())
}

/// Class labels from a `.npy` of integers (any shape: one label per sample, in order).
pub fn read_labels(path: &Path) -> Result<Vec<i64>> {
    let t = npy::read(path).with_context(|| format!("reading labels {}", path.display()))?;
    if !matches!(t.dtype(), DType::I64 | DType::I32 | DType::I16 | DType::I8 | DType::U8 | DType::U16 | DType::U32 | DType::U64) {
        bail!("labels {} are {}, not integers", path.display(), t.dtype());
    }
    t.to_i64_vec()
}

/// An output as JSON: dtype, shape and (up to 65536 elements) its values.
pub fn tensor_json(name: &str, t: &Tensor) -> Value {
    let values = if t.len() <= 65536 { t.to_f64_vec().ok().map(|v| json!(v)) } else { None };
    json!({ "name": name, "dtype": t.dtype().to_string(), "shape": t.shape(), "values": values })
}
