//! TfIdfVectorizer: counts the pooled n-grams (with skips) in each row of tokens.
//!
//! The pool holds the 1-grams, then the 2-grams, ... (`ngram_counts[i]` is where the
//! (i+1)-grams start). N-grams are numbered in pool order across all sizes; n-gram `k` counts
//! into output column `ngram_indexes[k]`. Only sizes in `[min_gram_length, max_gram_length]`
//! are counted. For each skip distance `d` in `1..=max_skip_count + 1`, an n-gram starting at
//! `s` is the tokens `s, s + d, ..., s + (n-1)d`; 1-grams are counted only for `d = 1`. This is
//! the ONNX reference's (and onnxruntime's) trie walk, written as plain lookups.

use super::{Op, Text};
use crate::ir::{Attr, Attrs, NodeCtx, ValueType};
use crate::tensor::{DType, Tensor};
use anyhow::{Result, bail};
use std::collections::HashMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TfIdfMode {
    Tf,
    Idf,
    TfIdf,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Pool {
    Ints(Vec<i64>),
    Strs(Vec<String>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct TfIdf {
    pub mode: TfIdfMode,
    pub min_gram_length: usize,
    pub max_gram_length: usize,
    pub max_skip_count: usize,
    pub ngram_counts: Vec<i64>,
    pub ngram_indexes: Vec<i64>,
    pub pool: Pool,
    pub weights: Option<Vec<f32>>,
}

/// One token: an integer or a string.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Token {
    Int(i64),
    Str(String),
}

impl TfIdf {
    fn output_size(&self) -> usize {
        self.ngram_indexes.iter().map(|&i| i as usize + 1).max().unwrap_or(0)
    }

    fn pool_tokens(&self) -> Vec<Token> {
        match &self.pool {
            Pool::Ints(v) => v.iter().map(|&i| Token::Int(i)).collect(),
            Pool::Strs(v) => v.iter().map(|s| Token::Str(s.clone())).collect(),
        }
    }

    /// The pooled n-grams of the counted sizes, each mapped to its output column.
    fn grams(&self) -> Result<HashMap<Vec<Token>, usize>> {
        let pool = self.pool_tokens();
        let mut map = HashMap::new();
        let mut id = 0usize;
        for (i, &start) in self.ngram_counts.iter().enumerate() {
            let end = self.ngram_counts.get(i + 1).map_or(pool.len(), |&e| e as usize);
            let (start, n) = (start as usize, i + 1);
            for g in pool[start..end].chunks_exact(n) {
                if (self.min_gram_length..=self.max_gram_length).contains(&n) {
                    let Some(&col) = self.ngram_indexes.get(id) else {
                        bail!("TfIdfVectorizer: n-gram {id} has no entry in ngram_indexes ({} entries)", self.ngram_indexes.len());
                    };
                    map.insert(g.to_vec(), col as usize);
                }
                id += 1;
            }
        }
        Ok(map)
    }

    fn tokens(&self, x: &Tensor) -> Result<Vec<Token>> {
        Ok(match (x, &self.pool) {
            (Tensor::Str(a), Pool::Strs(_)) => a.iter().map(|s| Token::Str(s.clone())).collect(),
            (Tensor::I32(_) | Tensor::I64(_), Pool::Ints(_)) => x.to_i64_vec()?.into_iter().map(Token::Int).collect(),
            _ => bail!("TfIdfVectorizer: {} input does not match the pool (int32/int64 tokens need pool_int64s, strings pool_strings)", x.dtype()),
        })
    }

    /// `(rows, row length, output shape)` for an input shape.
    fn geometry(&self, shape: &[usize]) -> Result<(usize, usize, Vec<usize>)> {
        let size = self.output_size();
        match *shape {
            [c] => Ok((1, c, vec![size])),
            [b, c] if b > 0 => Ok((b, c, vec![b, size])),
            _ => bail!("TfIdfVectorizer: the input must have shape [C] or [N, C] with N > 0, got {shape:?}"),
        }
    }

    pub(super) fn infer(&self, x: &ValueType) -> Result<ValueType> {
        let ok = match self.pool {
            Pool::Strs(_) => x.dtype == DType::String,
            Pool::Ints(_) => matches!(x.dtype, DType::I32 | DType::I64),
        };
        if !ok {
            bail!("TfIdfVectorizer: {} input does not match the pool (int32/int64 tokens need pool_int64s, strings pool_strings)", x.dtype);
        }
        Ok(ValueType::new(DType::F32, self.geometry(&x.shape)?.2))
    }

    pub(super) fn eval(&self, x: &Tensor) -> Result<Tensor> {
        let (rows, c, shape) = self.geometry(x.shape())?;
        let tokens = self.tokens(x)?;
        let grams = self.grams()?;
        let size = self.output_size();
        let mut counts = vec![0u64; rows * size];
        for r in 0..rows {
            let row = &tokens[r * c..(r + 1) * c];
            // Beyond a skip distance of c no n-gram of two or more tokens fits.
            for d in 1..=(self.max_skip_count + 1).min(c.max(1)) {
                let min = if d == 1 { self.min_gram_length } else { self.min_gram_length.max(2) };
                if min > self.max_gram_length {
                    break;
                }
                for s in 0..c {
                    for n in min..=self.max_gram_length {
                        if d.saturating_mul(n - 1).saturating_add(s) >= c {
                            break;
                        }
                        let g: Vec<Token> = (0..n).map(|k| row[s + d * k].clone()).collect();
                        if let Some(&col) = grams.get(&g) {
                            counts[r * size + col] += 1;
                        }
                    }
                }
            }
        }
        let w = |i: usize| self.weights.as_ref().map(|w| w[i % size] as f64);
        let out: Vec<f32> = counts
            .iter()
            .enumerate()
            .map(|(i, &f)| {
                let f = f as f64;
                (match self.mode {
                    TfIdfMode::Tf => f,
                    TfIdfMode::Idf if f > 0.0 => w(i).unwrap_or(1.0),
                    TfIdfMode::Idf => 0.0,
                    TfIdfMode::TfIdf => w(i).unwrap_or(1.0) * f,
                }) as f32
            })
            .collect();
        Tensor::from_vec(&shape, out)
    }

    pub(super) fn attrs(&self, m: &mut Attrs) {
        let mode = match self.mode {
            TfIdfMode::Tf => "TF",
            TfIdfMode::Idf => "IDF",
            TfIdfMode::TfIdf => "TFIDF",
        };
        m.insert("mode".into(), Attr::Str(mode.into()));
        m.insert("min_gram_length".into(), Attr::Int(self.min_gram_length as i64));
        m.insert("max_gram_length".into(), Attr::Int(self.max_gram_length as i64));
        m.insert("max_skip_count".into(), Attr::Int(self.max_skip_count as i64));
        m.insert("ngram_counts".into(), Attr::Ints(self.ngram_counts.clone()));
        m.insert("ngram_indexes".into(), Attr::Ints(self.ngram_indexes.clone()));
        match &self.pool {
            Pool::Ints(v) => m.insert("pool_int64s".into(), Attr::Ints(v.clone())),
            Pool::Strs(v) => m.insert("pool_strings".into(), Attr::Strs(v.clone())),
        };
        if let Some(w) = &self.weights {
            m.insert("weights".into(), Attr::Floats(w.clone()));
        }
    }
}

pub(super) fn import(ctx: &mut NodeCtx) -> Result<Op> {
    let req = |name: &str| ctx.opt_int(name)?.ok_or_else(|| anyhow::anyhow!("TfIdfVectorizer: attribute '{name}' is missing"));
    let (min, max, skip) = (req("min_gram_length")?, req("max_gram_length")?, req("max_skip_count")?);
    if min < 1 || max < min || skip < 0 {
        bail!("TfIdfVectorizer: need 1 <= min_gram_length ({min}) <= max_gram_length ({max}) and max_skip_count ({skip}) >= 0");
    }
    let mode = match ctx.opt_string("mode")?.as_deref() {
        Some("TF") => TfIdfMode::Tf,
        Some("IDF") => TfIdfMode::Idf,
        Some("TFIDF") => TfIdfMode::TfIdf,
        Some(m) => return Err(ctx.unsupported(format!("TfIdfVectorizer mode '{m}'"))),
        None => bail!("TfIdfVectorizer: attribute 'mode' is missing"),
    };
    let ngram_counts = ctx.opt_ints("ngram_counts")?.unwrap_or_default();
    let ngram_indexes = ctx.opt_ints("ngram_indexes")?.unwrap_or_default();
    let pool = match (ctx.opt_ints("pool_int64s")?, ctx.opt_strings("pool_strings")?) {
        (Some(v), None) => Pool::Ints(v),
        (None, Some(v)) => Pool::Strs(v),
        _ => bail!("TfIdfVectorizer: exactly one of pool_int64s and pool_strings must be set"),
    };
    let len = match &pool {
        Pool::Ints(v) => v.len(),
        Pool::Strs(v) => v.len(),
    } as i64;
    if ngram_counts.iter().any(|&c| c < 0 || c > len) || ngram_counts.windows(2).any(|w| w[0] > w[1]) {
        bail!("TfIdfVectorizer: ngram_counts {ngram_counts:?} must be increasing offsets into the pool of {len}");
    }
    if ngram_indexes.iter().any(|&i| i < 0) {
        bail!("TfIdfVectorizer: ngram_indexes must not be negative");
    }
    let weights = ctx.opt_floats("weights")?;
    let size = ngram_indexes.iter().map(|&i| i as usize + 1).max().unwrap_or(0);
    if weights.as_ref().is_some_and(|w| w.len() < size) {
        bail!("TfIdfVectorizer: {} weights for {size} output columns", weights.map_or(0, |w| w.len()));
    }
    let t = TfIdf {
        mode,
        min_gram_length: min as usize,
        max_gram_length: max as usize,
        max_skip_count: skip as usize,
        ngram_counts,
        ngram_indexes,
        pool,
        weights,
    };
    Ok(Text::TfIdfVectorizer(Box::new(t)).into())
}
