//! String tensors and the ops on them: StringNormalizer, StringConcat, RegexFullMatch,
//! Equal on strings, LabelEncoder (any key and value types), string constants,
//! Identity/Reshape/Flatten/Squeeze/Unsqueeze of strings (aliases of the handles), and
//! string ops whose inputs are all constants (StringSplit and StringNormalizer with stop
//! words, whose output shapes depend on the data, only ever have constant inputs).
//!
//! A string tensor in compiled memory is one u64 handle per element into the run's string
//! heap; the runtime's string kernel does everything that looks at the characters. Each op
//! here becomes one [`Call::Strings`] whose parameter blob (op code, sizes, constants) is
//! a weights blob; the encoding and the design of the heap are documented in
//! `neoc_runtime::kernels::strings`. Handles are plain u64 data, so moving string tensors
//! around (a LabelEncoder's value gather, output copies) is ordinary kernel language.

use anyhow::{Context, Result, bail};
use neoc_runtime::kernels::strings::{self as rt, BlobWriter};

use super::Lw;
use crate::kernel_ir::{Access, Expr, Loop, Mem, Step, broadcast_strides};
use super::calls;
use crate::ir::ops::binary::Binary;
use crate::ir::ops::cast::Cast;
use crate::ir::ops::reshape::Reshape;
use crate::ir::ops::ml::{LabelMap, Ml};
use crate::ir::ops::text::{CaseChange, Pool, Text, TfIdf, TfIdfMode};
use crate::ir::{EvalInputs, NodeId, Op, OpImpl, ValueId};
use crate::tensor::{DType, Tensor};

/// Whether this file lowers `op` (it then also owns the dtype checks).
pub fn handles(lw: &Lw, id: NodeId, op: &Op) -> bool {
    let node = lw.g.node(id);
    let any_string = node.inputs.iter().flatten().any(|v| lw.ty(*v).dtype == DType::String) || node.outputs.iter().any(|o| o.ty.dtype == DType::String);
    match op {
        Op::Text(_) | Op::Ml(Ml::LabelEncoder(_)) => true,
        Op::Binary(Binary::Equal) => any_string,
        // Pass-through ops on strings: the handles are the data.
        Op::Reshape(r) => any_string && *r != Reshape::Expand,
        Op::Cast(Cast::Identity) => any_string,
        _ => false,
    }
}

pub fn lower(lw: &mut Lw, id: NodeId, op: &Op) -> Result<()> {
    // Every input known at compile time (StringSplit, StringNormalizer with stop words):
    // the reference evaluation's result becomes constants.
    let node = lw.g.node(id);
    let consts: Option<Vec<Option<&Tensor>>> =
        node.inputs.iter().map(|v| match v { None => Some(None), Some(v) => lw.konst(*v).map(Some) }).collect();
    if let Some(consts) = consts {
        let outs = op.eval(&EvalInputs { inputs: &consts, n_outputs: node.outputs.len() }).context("evaluating on constant inputs")?;
        for (slot, t) in outs.iter().enumerate() {
            let dst = lw.out(id, slot);
            write_const(lw, t, dst)?;
        }
        return Ok(());
    }
    match op {
        Op::Text(Text::StringNormalizer { case_change, case_sensitive, stopwords, .. }) => {
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
            call(lw, params, Some(a), None, c)?;
        }
        Op::Text(Text::StringConcat) => binary(lw, id, rt::BINARY_CONCAT)?,
        Op::Binary(Binary::Equal) => binary(lw, id, rt::BINARY_EQUAL)?,
        Op::Text(Text::RegexFullMatch { pattern }) => {
            let x = lw.input(id, 0)?;
            let params = BlobWriter::new(rt::OP_REGEX).str(pattern).u64(lw.ty(x).len() as u64).finish();
            lw.need_runtime_feature(rt::REGEX_FEATURE);
            let a = lw.mem(x)?;
            let c = lw.out(id, 0);
            call(lw, params, Some(a), None, c)?;
        }
        Op::Text(Text::StringSplit { .. }) => bail!("StringSplit needs a constant input (its output shape depends on the strings)"),
        Op::Ml(Ml::LabelEncoder(map)) => label_encoder(lw, id, map)?,
        Op::Text(Text::TfIdfVectorizer(t)) => tfidf(lw, id, t)?,
        Op::Reshape(_) | Op::Cast(_) => lw.alias(id, 0, lw.input(id, 0)?)?,
        _ => bail!("the cpu backend has no string kernel for this op"),
    }
    Ok(())
}

fn call(lw: &mut Lw, params: Vec<u8>, a: Option<Mem>, b: Option<Mem>, c: Mem) -> Result<()> {
    let params = lw.blob(params);
    calls::strings(lw, params, a, b, c)
}

/// Handles of the constant strings `t`, in a new temporary.
pub fn const_strings(lw: &mut Lw, t: &Tensor) -> Result<Mem> {
    let dst = lw.temp_bytes(8 * t.len() as u64);
    write_const(lw, t, dst)?;
    Ok(dst)
}

/// Writes the constant `t` into `dst` (handles for strings, raw bytes otherwise).
fn write_const(lw: &mut Lw, t: &Tensor, dst: Mem) -> Result<()> {
    match t {
        Tensor::Str(a) => {
            let values: Vec<&str> = a.iter().map(String::as_str).collect();
            call(lw, BlobWriter::new(rt::OP_CONST).strs(&values).finish(), None, None, dst)?;
        }
        _ => {
            let bytes = t.to_le_bytes()?;
            let n = bytes.len() as u64;
            let src = lw.blob(bytes);
            lw.push(Step::Call(crate::kernel_ir::Call::copy(dst, src, n)));
        }
    }
    Ok(())
}

/// StringConcat and Equal: both inputs broadcast to the output's shape.
fn binary(lw: &mut Lw, id: NodeId, kind: u32) -> Result<()> {
    let (x, y) = (lw.input(id, 0)?, lw.input(id, 1)?);
    let out = lw.ty(ValueId { node: id, slot: 0 }).shape.clone();
    for v in [x, y] {
        if lw.ty(v).dtype != DType::String {
            bail!("both inputs must be strings, got {}", lw.ty(v).dtype);
        }
    }
    let mut w = BlobWriter::new(rt::OP_BINARY);
    w.u32(kind).u32(out.len() as u32).u64(lw.ty(x).len() as u64).u64(lw.ty(y).len() as u64);
    for &d in &out {
        w.u64(d as u64);
    }
    for v in [x, y] {
        for s in broadcast_strides(&lw.ty(v).shape, &out) {
            w.u64(s as u64);
        }
    }
    let (a, b) = (lw.mem(x)?, lw.mem(y)?);
    let c = lw.out(id, 0);
    call(lw, w.finish(), Some(a), Some(b), c)?;
    Ok(())
}

/// The kernel looks each element up among the keys (its index, or `n` when absent), then
/// a gather picks from `values ++ [default]`: raw values, or string handles.
fn label_encoder(lw: &mut Lw, id: NodeId, map: &LabelMap) -> Result<()> {
    let LabelMap { keys, values, default } = map;
    let x = lw.input(id, 0)?;
    let shape = lw.ty(x).shape.clone();
    let n = lw.ty(x).len() as u64;
    let kind = match keys.dtype() {
        DType::String => rt::KEY_STRING,
        DType::I64 => rt::KEY_I64,
        DType::I32 => rt::KEY_I32,
        DType::I16 => rt::KEY_I16,
        DType::F32 => rt::KEY_F32,
        DType::F64 => rt::KEY_F64,
        d => bail!("LabelEncoder keys of type {d} are not supported by the cpu backend"),
    };
    if lw.ty(x).dtype != keys.dtype() {
        bail!("the input is {}, the keys {}", lw.ty(x).dtype, keys.dtype());
    }
    let mut w = BlobWriter::new(rt::OP_LOOKUP);
    w.u32(kind).u32(0);
    // Later keys override earlier ones (a repeated key keeps its last value).
    match keys {
        Tensor::Str(a) => {
            w.u64(a.len() as u64);
            for (i, k) in a.iter().enumerate() {
                w.str(k).u64(i as u64);
            }
        }
        Tensor::F32(_) | Tensor::F64(_) => {
            let pairs: Vec<(u64, u64)> =
                keys.to_f64_vec()?.into_iter().enumerate().filter_map(|(i, k)| rt::float_key(k).map(|k| (k, i as u64))).collect();
            w.u64(pairs.len() as u64);
            for (k, i) in pairs {
                w.u64(k).u64(i);
            }
        }
        _ => {
            let ks = keys.to_i64_vec()?;
            w.u64(ks.len() as u64);
            for (i, k) in ks.into_iter().enumerate() {
                w.u64(k as u64).u64(i as u64);
            }
        }
    }
    w.u64(n);
    let a = lw.mem(x)?;
    let idx = lw.temp_bytes(8 * n);
    call(lw, w.finish(), Some(a), None, idx)?;

    let len = values.len() as i64 + 1;
    let (table, dtype) = match (values, default) {
        (Tensor::Str(v), Tensor::Str(d)) => {
            let all: Vec<String> = v.iter().chain(d.iter().take(1)).cloned().collect();
            let t = Tensor::from_vec(&[all.len()], all)?;
            (const_strings(lw, &t)?, DType::U64)
        }
        _ => {
            let mut bytes = values.to_le_bytes()?;
            let d = default.to_le_bytes()?;
            bytes.extend_from_slice(&d[..d.len() / default.len().max(1)]);
            (lw.blob(bytes), values.dtype())
        }
    };
    let y = lw.out(id, 0);
    let index = Expr::Load(Access::dense(idx, DType::I64, &shape));
    lw.push(Step::Loop(Loop {
        dims: shape.clone(),
        out: Access::dense(y, dtype, &shape),
        value: Expr::LoadAt { mem: table, dtype, len, index: Box::new(index) },
    }));
    Ok(())
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
    call(lw, w.finish(), Some(a), None, c)?;
    Ok(())
}

#[cfg(test)]
#[path = "text_tests.rs"]
mod tests;
