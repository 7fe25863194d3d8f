//! The text family: StringNormalizer, StringConcat, RegexFullMatch, StringSplit (only on a
//! constant input, evaluated at compile time: its output shape depends on the strings) and
//! TfIdfVectorizer. Each becomes one call of the runtime's string kernel; string tensors,
//! constants and the kernel calls are in [`super::strings`].

use anyhow::{Result, bail};
use neoc_runtime::kernels::strings::{self as rt, BlobWriter};

use super::{Lw, strings};
use crate::ir::ops::text::{CaseChange, Pool, Text, TfIdf, TfIdfMode};
use crate::ir::{NodeId, ValueId};
use crate::tensor::DType;

pub(super) fn lower(lw: &mut Lw, id: NodeId, op: &Text) -> Result<()> {
    match op {
        Text::StringNormalizer { case_change, case_sensitive, stopwords, .. } => {
            let (x, y) = (lw.input(id, 0)?, ValueId { node: id, slot: 0 });
            let case = match case_change {
                CaseChange::None => 0,
                CaseChange::Lower => 1,
                CaseChange::Upper => 2,
            };
            let (n_in, n_out) = (lw.ty(x).len() as u64, lw.ty(y).len() as u64);
            let params = BlobWriter::new(rt::OP_NORMALIZE).u32(case).u32(*case_sensitive as u32).strs(stopwords).u64(n_in).u64(n_out).finish();
            let a = lw.mem(x)?;
            let c = lw.out(id, 0);
            strings::call(lw, params, Some(a), None, c)
        }
        Text::StringConcat => strings::binary(lw, id, rt::BINARY_CONCAT),
        Text::RegexFullMatch { pattern } => {
            let x = lw.input(id, 0)?;
            let params = BlobWriter::new(rt::OP_REGEX).str(pattern).u64(lw.ty(x).len() as u64).finish();
            lw.need_runtime_feature(rt::REGEX_FEATURE);
            let a = lw.mem(x)?;
            let c = lw.out(id, 0);
            strings::call(lw, params, Some(a), None, c)
        }
        Text::StringSplit { .. } => bail!("StringSplit needs a constant input (its output shape depends on the strings)"),
        Text::TfIdfVectorizer(t) => tfidf(lw, id, t),
    }
}

/// TfIdfVectorizer (integer or string tokens): the pooled n-grams of the counted sizes,
/// each with its output column, go to the kernel, which counts them row by row.
fn tfidf(lw: &mut Lw, id: NodeId, t: &TfIdf) -> Result<()> {
    let x = lw.input(id, 0)?;
    let kind = match lw.ty(x).dtype {
        DType::String => rt::KEY_STRING,
        DType::I64 => rt::KEY_I64,
        DType::I32 => rt::KEY_I32,
        d => bail!("TfIdfVectorizer on {d} tokens is not supported"),
    };
    let (rows, len) = match lw.ty(x).shape[..] {
        [c] => (1, c),
        [b, c] => (b, c),
        ref s => bail!("TfIdfVectorizer: input shape {s:?} is not [C] or [N, C]"),
    };
    let cols = lw.ty(ValueId { node: id, slot: 0 }).shape.last().copied().unwrap_or(0);
    let mode = match t.mode {
        TfIdfMode::Tf => 0,
        TfIdfMode::Idf => 1,
        TfIdfMode::TfIdf => 2,
    };
    let pool_len = match &t.pool {
        Pool::Ints(v) => v.len(),
        Pool::Strs(v) => v.len(),
    };
    // (first pool entry, n, column) of every counted n-gram, in pool order.
    let mut grams = Vec::new();
    let mut gram_id = 0usize;
    for (i, &start) in t.ngram_counts.iter().enumerate() {
        let end = t.ngram_counts.get(i + 1).map_or(pool_len, |&e| e as usize);
        let n = i + 1;
        for g in 0..(end.saturating_sub(start as usize)) / n {
            if (t.min_gram_length..=t.max_gram_length).contains(&n) {
                let Some(&col) = t.ngram_indexes.get(gram_id) else { bail!("n-gram {gram_id} has no entry in ngram_indexes") };
                grams.push((start as usize + g * n, n, col as u64));
            }
            gram_id += 1;
        }
    }
    let mut w = BlobWriter::new(rt::OP_TFIDF);
    w.u32(kind).u32(mode);
    for v in [t.min_gram_length, t.max_gram_length, t.max_skip_count, rows, len, cols] {
        w.u64(v as u64);
    }
    w.u64(grams.len() as u64);
    for (at, n, col) in grams {
        w.u64(n as u64);
        for k in at..at + n {
            match &t.pool {
                Pool::Ints(v) => w.u64(v[k] as u64),
                Pool::Strs(v) => w.str(&v[k]),
            };
        }
        w.u64(col);
    }
    match &t.weights {
        Some(ws) => {
            w.u64(cols as u64);
            for &v in ws.iter().take(cols) {
                w.u32(v.to_bits());
            }
        }
        None => {
            w.u64(0);
        }
    }
    let a = lw.mem(x)?;
    let c = lw.out(id, 0);
    strings::call(lw, w.finish(), Some(a), None, c)
}

#[cfg(test)]
mod tests {
    use crate::lower::test_util::{Tolerance, same_as_reference, strings as s};
    use crate::tensor::Tensor;

    /// Strings, booleans and counts of exact values: equal to the reference.
    const TOL: Tolerance = Tolerance::Exact;

    const WORDS: &[&str] = &["Monday", "tuesday", "", "MONDAY", "Straße", "日本"];

    #[test]
    fn normalizer_changes_case() {
        for case in ["NONE", "LOWER", "UPPER"] {
            let text = format!(
                "graph(%x: string[6]) {{\n  %y = StringNormalizer{{case_change_action=\"{case}\", is_case_sensitive=1}}(%x) : string[6]\n  return %y\n}}"
            );
            same_as_reference(&text, &[s(&[6], WORDS)], TOL);
        }
        let text = "graph(%x: string[1,3]) {\n  %y = StringNormalizer{case_change_action=\"UPPER\"}(%x) : string[1,3]\n  return %y\n}";
        same_as_reference(text, &[s(&[1, 3], &["a", "ß", "Ω"])], TOL);
    }

    #[test]
    fn regex_full_match() {
        let text = "graph(%x: string[5]) {\n  %y = RegexFullMatch{pattern=\"[a-z]+@(gmail|yahoo)\\\\.com\"}(%x) : bool[5]\n  return %y\n}";
        same_as_reference(text, &[s(&[5], &["a@gmail.com", "b@yahoo.com", "x@gmail.comm", "", "A@gmail.com"])], TOL);
    }

    #[test]
    fn tfidf_counts_like_the_reference() {
        let pool = "ngram_counts=[0,4], ngram_indexes=[0,1,2,3,4,5,6], pool_int64s=[2,3,5,4,5,6,7,8,6,7]";
        let x = Tensor::from_vec(&[2, 6], vec![1i32, 1, 3, 3, 3, 7, 8, 6, 7, 5, 6, 8]).unwrap();
        for (mode, min, max, skip) in [("TF", 2, 2, 0), ("TF", 1, 2, 5), ("IDF", 1, 2, 1), ("TFIDF", 2, 2, 5)] {
            let w = if mode == "TF" { "" } else { ", weights=f[0.5,1,1.5,2,2.5,3,3.5]" };
            let text = format!("graph(%x: i32[2,6]) {{\n  %y = TfIdfVectorizer{{mode=\"{mode}\", min_gram_length={min}, max_gram_length={max}, max_skip_count={skip}, {pool}{w}}}(%x) : f32[2,7]\n  return %y\n}}");
            same_as_reference(&text, std::slice::from_ref(&x), TOL);
        }
        let text = "graph(%x: string[5]) {\n  %y = TfIdfVectorizer{mode=\"TF\", min_gram_length=1, max_gram_length=2, max_skip_count=1, ngram_counts=[0,2], ngram_indexes=[1,0,2], pool_strings=s[\"a\",\"b\",\"a\",\"b\"]}(%x) : f32[3]\n  return %y\n}";
        same_as_reference(text, &[s(&[5], &["a", "b", "x", "b", "a"])], TOL);
    }
}
