//! String ops: StringNormalizer, StringConcat, StringSplit, RegexFullMatch, and the n-gram
//! counter TfIdfVectorizer (which also takes integer tokens).
//!
//! Specs: <https://onnx.ai/onnx/operators/onnx__StringNormalizer.html>,
//! <https://onnx.ai/onnx/operators/onnx__StringConcat.html>,
//! <https://onnx.ai/onnx/operators/onnx__StringSplit.html>,
//! <https://onnx.ai/onnx/operators/onnx__RegexFullMatch.html>,
//! <https://onnx.ai/onnx/operators/onnx__TfIdfVectorizer.html>.
//!
//! Opset history: StringNormalizer since 10, TfIdfVectorizer since 9, StringConcat,
//! StringSplit and RegexFullMatch since 20; none has changed since.
//!
//! Notes on semantics:
//! - StringNormalizer removes the elements equal to a stop word (compared after Unicode
//!   lowercasing when `is_case_sensitive` is 0), then changes case, as the spec says. The
//!   ONNX reference also strips accents and splits elements on spaces before removing stop
//!   words; neither is in the spec and neither is done here. Case mapping is Unicode's
//!   default, so only "", C, POSIX and English locales are accepted. The output length
//!   depends on the data when there are stop words, so the input must then be a constant.
//! - StringSplit follows Python's `str.split`, like the reference: without a delimiter it
//!   splits on runs of whitespace and drops leading/trailing whitespace. Its output shape
//!   depends on the data, so the input must be a constant.
//! - RegexFullMatch uses the `regex` crate, whose syntax is RE2's (what the spec asks for).

use crate::ir::{Attr, Attrs, EvalInputs, InferCx, Importer, NodeCtx, Op, OpImpl, ValueType};
use crate::tensor::{ArrayD, DType, IxDyn, Tensor};
use anyhow::{Result, bail};

#[path = "text/tfidf.rs"]
mod tfidf;
pub use tfidf::{Pool, TfIdf, TfIdfMode};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaseChange {
    None,
    Lower,
    Upper,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Text {
    StringNormalizer { case_change: CaseChange, case_sensitive: bool, stopwords: Vec<String>, locale: String },
    StringConcat,
    /// `delimiter` None splits on whitespace runs; `maxsplit` None splits without limit.
    StringSplit { delimiter: Option<String>, maxsplit: Option<i64> },
    RegexFullMatch { pattern: String },
    TfIdfVectorizer(Box<TfIdf>),
}

fn strings<'a>(op: &str, t: &'a Tensor) -> Result<&'a ArrayD<String>> {
    match t {
        Tensor::Str(a) => Ok(a),
        _ => bail!("{op}: expected a string tensor, got {}", t.dtype()),
    }
}

fn check_str(op: &str, ty: &ValueType) -> Result<()> {
    if ty.dtype != DType::String {
        bail!("{op}: expected a string tensor, got {}", ty.dtype);
    }
    Ok(())
}

/// Python's `str.isspace` for one character.
fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

/// Python's `s.split(delimiter, maxsplit)` (`maxsplit` None or negative: no limit).
fn split(s: &str, delimiter: Option<&str>, maxsplit: Option<i64>) -> Vec<String> {
    let mut left = match maxsplit {
        Some(m) if m >= 0 => m as usize,
        _ => usize::MAX,
    };
    let mut out = vec![];
    match delimiter {
        Some(d) => {
            let mut rest = s;
            while left > 0 {
                let Some(at) = rest.find(d) else { break };
                out.push(rest[..at].to_string());
                rest = &rest[at + d.len()..];
                left -= 1;
            }
            out.push(rest.to_string());
        }
        None => {
            let mut rest = s.trim_start_matches(is_space);
            while !rest.is_empty() {
                if left == 0 {
                    out.push(rest.to_string());
                    break;
                }
                let end = rest.find(is_space).unwrap_or(rest.len());
                out.push(rest[..end].to_string());
                rest = rest[end..].trim_start_matches(is_space);
                left -= 1;
            }
        }
    }
    out
}

impl Text {
    fn normalize(&self, x: &Tensor) -> Result<Tensor> {
        let Text::StringNormalizer { case_change, case_sensitive, stopwords, .. } = self else { unreachable!() };
        let a = strings("StringNormalizer", x)?;
        let two_d = normalizer_rank(x.shape())?;
        let stops: Vec<String> = stopwords.iter().map(|w| if *case_sensitive { w.clone() } else { w.to_lowercase() }).collect();
        let mut kept: Vec<String> = a
            .iter()
            .filter(|s| !stops.iter().any(|w| if *case_sensitive { *s == w } else { s.to_lowercase() == *w }))
            .map(|s| match case_change {
                CaseChange::None => s.clone(),
                CaseChange::Lower => s.to_lowercase(),
                CaseChange::Upper => s.to_uppercase(),
            })
            .collect();
        if kept.is_empty() {
            kept.push(String::new());
        }
        let n = kept.len();
        let shape = if two_d { vec![1, n] } else { vec![n] };
        Tensor::from_vec(&shape, kept)
    }

    /// Both StringSplit outputs.
    fn split_all(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let Text::StringSplit { delimiter, maxsplit } = self else { unreachable!() };
        let a = strings("StringSplit", x)?;
        let parts: Vec<Vec<String>> = a.iter().map(|s| split(s, delimiter.as_deref(), *maxsplit)).collect();
        let width = parts.iter().map(|p| p.len()).max().unwrap_or(0);
        let counts: Vec<i64> = parts.iter().map(|p| p.len() as i64).collect();
        let mut flat = Vec::with_capacity(parts.len() * width);
        for mut p in parts {
            p.resize(width, String::new());
            flat.extend(p);
        }
        let mut shape = x.shape().to_vec();
        let z = Tensor::from_vec(&shape, counts)?;
        shape.push(width);
        Ok((Tensor::from_vec(&shape, flat)?, z))
    }
}

/// StringNormalizer takes `[C]` or `[1, C]`; returns whether it is the latter.
fn normalizer_rank(shape: &[usize]) -> Result<bool> {
    match shape {
        [_] => Ok(false),
        [1, _] => Ok(true),
        _ => bail!("StringNormalizer: the input must have shape [C] or [1, C], got {shape:?}"),
    }
}

fn compile(pattern: &str) -> Result<regex::Regex> {
    regex::Regex::new(&format!(r"\A(?:{pattern})\z")).map_err(|e| anyhow::anyhow!("RegexFullMatch: bad pattern {pattern:?}: {e}"))
}

impl OpImpl for Text {
    fn name(&self) -> &'static str {
        match self {
            Text::StringNormalizer { .. } => "StringNormalizer",
            Text::StringConcat => "StringConcat",
            Text::StringSplit { .. } => "StringSplit",
            Text::RegexFullMatch { .. } => "RegexFullMatch",
            Text::TfIdfVectorizer(_) => "TfIdfVectorizer",
        }
    }

    fn attrs(&self) -> Attrs {
        let mut m = Attrs::new();
        match self {
            Text::StringNormalizer { case_change, case_sensitive, stopwords, locale } => {
                let c = match case_change {
                    CaseChange::None => "NONE",
                    CaseChange::Lower => "LOWER",
                    CaseChange::Upper => "UPPER",
                };
                m.insert("case_change_action".into(), Attr::Str(c.into()));
                m.insert("is_case_sensitive".into(), Attr::Int(*case_sensitive as i64));
                if !stopwords.is_empty() {
                    m.insert("stopwords".into(), Attr::Strs(stopwords.clone()));
                }
                if !locale.is_empty() {
                    m.insert("locale".into(), Attr::Str(locale.clone()));
                }
            }
            Text::StringConcat => {}
            Text::StringSplit { delimiter, maxsplit } => {
                if let Some(d) = delimiter {
                    m.insert("delimiter".into(), Attr::Str(d.clone()));
                }
                if let Some(s) = maxsplit {
                    m.insert("maxsplit".into(), Attr::Int(*s));
                }
            }
            Text::RegexFullMatch { pattern } => {
                m.insert("pattern".into(), Attr::Str(pattern.clone()));
            }
            Text::TfIdfVectorizer(t) => t.attrs(&mut m),
        }
        m
    }

    fn infer(&self, cx: &InferCx) -> Result<Vec<ValueType>> {
        let name = self.name();
        let x = cx.ty(0)?;
        match self {
            Text::StringNormalizer { stopwords, .. } => {
                check_str(name, x)?;
                let two_d = normalizer_rank(&x.shape)?;
                if stopwords.is_empty() {
                    let n = x.shape[x.rank() - 1].max(1);
                    return Ok(vec![ValueType::new(DType::String, if two_d { vec![1, n] } else { vec![n] })]);
                }
                // Which elements are stop words decides the output length.
                let Some(k) = cx.const_input(0, "X (its stop words decide the output length)")? else { unreachable!() };
                Ok(vec![ValueType::of(&self.normalize(k)?)])
            }
            Text::StringConcat => {
                let y = cx.ty(1)?;
                check_str(name, x)?;
                check_str(name, y)?;
                Ok(vec![ValueType::new(DType::String, crate::ir::shape::broadcast(&x.shape, &y.shape)?)])
            }
            Text::StringSplit { .. } => {
                check_str(name, x)?;
                let Some(k) = cx.const_input(0, "X (its substrings decide the output shape)")? else { unreachable!() };
                let (y, z) = self.split_all(k)?;
                Ok(vec![ValueType::of(&y), ValueType::of(&z)])
            }
            Text::RegexFullMatch { pattern } => {
                check_str(name, x)?;
                compile(pattern)?;
                Ok(vec![ValueType::new(DType::Bool, x.shape.clone())])
            }
            Text::TfIdfVectorizer(t) => Ok(vec![t.infer(x)?]),
        }
    }

    fn eval(&self, inputs: &EvalInputs) -> Result<Vec<Tensor>> {
        let name = self.name();
        let x = inputs.req(0)?;
        match self {
            Text::StringNormalizer { .. } => Ok(vec![self.normalize(x)?]),
            Text::StringConcat => {
                let (a, b) = (strings(name, x)?, strings(name, inputs.req(1)?)?);
                let shape = crate::ir::shape::broadcast(a.shape(), b.shape())?;
                let (a, b) = (a.broadcast(IxDyn(&shape)), b.broadcast(IxDyn(&shape)));
                let (Some(a), Some(b)) = (a, b) else { bail!("{name}: inputs do not broadcast") };
                let out: Vec<String> = a.iter().zip(b.iter()).map(|(p, q)| format!("{p}{q}")).collect();
                Ok(vec![Tensor::from_vec(&shape, out)?])
            }
            Text::StringSplit { .. } => {
                let (y, z) = self.split_all(x)?;
                Ok(vec![y, z])
            }
            Text::RegexFullMatch { pattern } => {
                let re = compile(pattern)?;
                Ok(vec![Tensor::Bool(strings(name, x)?.map(|s| re.is_match(s)))])
            }
            Text::TfIdfVectorizer(t) => Ok(vec![t.eval(x)?]),
        }
    }
}

fn string_normalizer(ctx: &mut NodeCtx) -> Result<Op> {
    let case_change = match ctx.string("case_change_action", "NONE")?.as_str() {
        "NONE" => CaseChange::None,
        "LOWER" => CaseChange::Lower,
        "UPPER" => CaseChange::Upper,
        c => return Err(ctx.unsupported(format!("StringNormalizer case_change_action '{c}'"))),
    };
    let case_sensitive = match ctx.int("is_case_sensitive", 0)? {
        0 => false,
        1 => true,
        v => return Err(ctx.unsupported(format!("StringNormalizer is_case_sensitive={v}"))),
    };
    let stopwords = ctx.opt_strings("stopwords")?.unwrap_or_default();
    let locale = ctx.string("locale", "")?;
    let l = locale.to_ascii_lowercase();
    if !(l.is_empty() || l == "c" || l == "posix" || l.starts_with("en")) {
        return Err(ctx.unsupported(format!("StringNormalizer locale '{locale}' (only default Unicode case mapping)")));
    }
    Ok(Text::StringNormalizer { case_change, case_sensitive, stopwords, locale }.into())
}

fn string_concat(_ctx: &mut NodeCtx) -> Result<Op> {
    Ok(Text::StringConcat.into())
}

fn string_split(ctx: &mut NodeCtx) -> Result<Op> {
    let delimiter = ctx.opt_string("delimiter")?.filter(|d| !d.is_empty());
    let maxsplit = ctx.opt_int("maxsplit")?;
    Ok(Text::StringSplit { delimiter, maxsplit }.into())
}

fn regex_full_match(ctx: &mut NodeCtx) -> Result<Op> {
    let Some(pattern) = ctx.opt_string("pattern")? else { bail!("RegexFullMatch: attribute 'pattern' is missing") };
    if let Err(e) = compile(&pattern) {
        return Err(ctx.unsupported(e));
    }
    Ok(Text::RegexFullMatch { pattern }.into())
}

pub const IMPORTERS: &[Importer] = &[
    Importer { op_type: "StringNormalizer", domain: "", since: 10, build: string_normalizer },
    Importer { op_type: "StringConcat", domain: "", since: 20, build: string_concat },
    Importer { op_type: "StringSplit", domain: "", since: 20, build: string_split },
    Importer { op_type: "RegexFullMatch", domain: "", since: 20, build: regex_full_match },
    Importer { op_type: "TfIdfVectorizer", domain: "", since: 9, build: tfidf::import },
];

#[cfg(test)]
#[path = "text/tests.rs"]
mod tests;
