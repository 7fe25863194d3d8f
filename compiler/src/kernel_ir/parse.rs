//! The kernel IR's text form: parser (the inverse of `print.rs`).
//!
//! [`parse`] reads text printed with [`Blobs::Full`](super::print::Blobs::Full) back into
//! the same lowering. A blob printed only as its size and hash cannot be read back:
//! [`parse`] refuses it, and [`parse_lossy`] gives it zero bytes of the right length and
//! says which blobs it filled so (the result then computes something else than the
//! original, but has the same shape: good for the verifier and the memory planner).

use anyhow::{Result, anyhow, bail};
use neoc_runtime::abi::{ArgKind, Kernel, MathOp};

use super::print::{bin_name, math_name, un_name};
use super::{Access, BinOp, Call, CallArg, Conversion, Expr, Lit, Loop, Mem, Reduce, Step, UnOp};
use crate::ir::ValueType;
use crate::lower::Lowered;
use crate::tensor::DType;
use crate::tensor::low::RoundMode;

/// Parses a lowering printed in full. A blob given only by its hash is an error.
pub fn parse(text: &str) -> Result<Lowered> {
    let (l, hashed) = parse_lossy(text)?;
    if let Some(i) = hashed.first() {
        bail!("weight w{i} is given only by its size and hash, so its bytes are unknown (print with Blobs::Full, or parse with parse_lossy to get zeros)");
    }
    Ok(l)
}

/// Parses a lowering; blobs given only by their hash become zeros of their length. Returns
/// the lowering and the indices of those blobs.
pub fn parse_lossy(text: &str) -> Result<(Lowered, Vec<u32>)> {
    let mut p = Parser { s: text.as_bytes(), i: 0 };
    let mut l = Lowered { steps: vec![], step_nodes: vec![], temps: vec![], blobs: vec![], inputs: vec![], outputs: vec![], runtime_features: vec![] };
    let mut hashed = vec![];
    while p.peek().is_some() {
        let at = p.i;
        match p.word()?.as_str() {
            "input" => {
                p.numbered("in", l.inputs.len())?;
                let name = p.string()?;
                p.expect(":")?;
                l.inputs.push((name, p.value_type()?));
            }
            "output" => {
                p.numbered("out", l.outputs.len())?;
                let name = p.string()?;
                p.expect(":")?;
                l.outputs.push((name, p.value_type()?));
            }
            "temp" => {
                p.numbered("t", l.temps.len())?;
                p.expect(":")?;
                let bytes = p.uint()?;
                p.keyword("bytes")?;
                l.temps.push(bytes);
            }
            "weight" => {
                p.numbered("w", l.blobs.len())?;
                p.expect(":")?;
                let len = p.uint()? as usize;
                p.keyword("bytes")?;
                if p.eat("=") {
                    let bytes = p.hex_bytes()?;
                    if bytes.len() != len {
                        return Err(p.err(&format!("{} bytes given for a blob of {len}", bytes.len())));
                    }
                    l.blobs.push(bytes);
                } else {
                    p.keyword("xxh64")?;
                    p.word()?;
                    hashed.push(l.blobs.len() as u32);
                    l.blobs.push(vec![0; len]);
                }
            }
            "feature" => l.runtime_features.push(p.string()?),
            "step" => {
                let n = p.uint()? as usize;
                if n != l.steps.len() {
                    return Err(p.err(&format!("step {n} where step {} comes next", l.steps.len())));
                }
                let node = p.string()?;
                p.expect(":")?;
                l.steps.push(p.step()?);
                l.step_nodes.push(node);
            }
            other => {
                p.i = at;
                return Err(p.err(&format!("expected input, output, temp, weight, feature or step, found '{other}'")));
            }
        }
    }
    Ok((l, hashed))
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn err(&self, msg: &str) -> anyhow::Error {
        let before = &self.s[..self.i.min(self.s.len())];
        let line = before.iter().filter(|&&c| c == b'\n').count() + 1;
        let col = self.i - before.iter().rposition(|&c| c == b'\n').map(|p| p + 1).unwrap_or(0) + 1;
        anyhow!("{line}:{col}: {msg}")
    }

    /// Skips white space and `;` comments.
    fn ws(&mut self) {
        while let Some(&c) = self.s.get(self.i) {
            match c {
                b' ' | b'\t' | b'\n' | b'\r' => self.i += 1,
                b';' => {
                    while self.s.get(self.i).is_some_and(|&c| c != b'\n') {
                        self.i += 1;
                    }
                }
                _ => break,
            }
        }
    }

    /// Where the next token starts.
    fn at(&mut self) -> usize {
        self.ws();
        self.i
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, tok: &str) -> bool {
        self.ws();
        if self.s[self.i..].starts_with(tok.as_bytes()) {
            self.i += tok.len();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, tok: &str) -> Result<()> {
        if self.eat(tok) { Ok(()) } else { Err(self.err(&format!("expected '{tok}'"))) }
    }

    /// A word of letters, digits and `_`.
    fn word(&mut self) -> Result<String> {
        self.ws();
        let start = self.i;
        while self.s.get(self.i).is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_') {
            self.i += 1;
        }
        if start == self.i {
            return Err(self.err("expected a word"));
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    fn keyword(&mut self, k: &str) -> Result<()> {
        let at = self.at();
        if self.word().ok().as_deref() == Some(k) {
            return Ok(());
        }
        self.i = at;
        Err(self.err(&format!("expected '{k}'")))
    }

    /// `prefix` followed by `n`, e.g. `t3`.
    fn numbered(&mut self, prefix: &str, n: usize) -> Result<()> {
        let at = self.at();
        let w = self.word()?;
        if w != format!("{prefix}{n}") {
            self.i = at;
            return Err(self.err(&format!("expected {prefix}{n} (numbered in order), found '{w}'")));
        }
        Ok(())
    }

    fn uint(&mut self) -> Result<u64> {
        let at = self.at();
        let w = self.word()?;
        w.parse().map_err(|_| {
            self.i = at;
            self.err(&format!("expected a number, found '{w}'"))
        })
    }

    /// A signed integer (`-3`, `+8`, `12`).
    fn int(&mut self) -> Result<i64> {
        self.ws();
        let neg = if self.eat("-") {
            true
        } else {
            self.eat("+");
            false
        };
        let at = self.at();
        let w = self.word()?;
        let v: i128 = w.parse().map_err(|_| {
            self.i = at;
            self.err(&format!("expected an integer, found '{w}'"))
        })?;
        let v = if neg { -v } else { v };
        i64::try_from(v).map_err(|_| self.err("integer out of range"))
    }

    fn ints(&mut self) -> Result<Vec<i64>> {
        self.expect("[")?;
        let mut v = vec![];
        if self.eat("]") {
            return Ok(v);
        }
        loop {
            v.push(self.int()?);
            if self.eat("]") {
                return Ok(v);
            }
            self.expect(",")?;
        }
    }

    fn dims(&mut self) -> Result<Vec<usize>> {
        let v = self.ints()?;
        v.into_iter().map(|d| usize::try_from(d).map_err(|_| self.err("a negative dimension"))).collect()
    }

    /// Comma-separated sizes up to `end` (`|` or `]`).
    fn sizes_until(&mut self, end: &str) -> Result<Vec<usize>> {
        let mut v = vec![];
        if self.eat(end) {
            return Ok(v);
        }
        loop {
            v.push(self.uint()? as usize);
            if self.eat(end) {
                return Ok(v);
            }
            self.expect(",")?;
        }
    }

    fn dtype(&mut self) -> Result<DType> {
        let at = self.at();
        let w = self.word()?;
        DType::from_name(&w).ok_or_else(|| {
            self.i = at;
            self.err(&format!("unknown dtype '{w}'"))
        })
    }

    /// `f32[2,3]`.
    fn value_type(&mut self) -> Result<ValueType> {
        let d = self.dtype()?;
        Ok(ValueType::new(d, self.dims()?))
    }

    /// Hex digits on the same line (`weight w0: 2 bytes = 00ff`).
    fn hex_bytes(&mut self) -> Result<Vec<u8>> {
        while self.s.get(self.i).is_some_and(|&c| c == b' ' || c == b'\t') {
            self.i += 1;
        }
        let start = self.i;
        while self.s.get(self.i).is_some_and(|c| c.is_ascii_hexdigit()) {
            self.i += 1;
        }
        let hex = &self.s[start..self.i];
        if !hex.len().is_multiple_of(2) {
            return Err(self.err("an odd number of hex digits"));
        }
        let digit = |c: u8| (c as char).to_digit(16).expect("hex digit") as u8;
        Ok(hex.chunks(2).map(|p| digit(p[0]) << 4 | digit(p[1])).collect())
    }

    /// A string in Rust's `{:?}` form.
    fn string(&mut self) -> Result<String> {
        self.ws();
        if self.s.get(self.i) != Some(&b'"') {
            return Err(self.err("expected a string"));
        }
        self.i += 1;
        let mut out = Vec::new();
        loop {
            let c = *self.s.get(self.i).ok_or_else(|| self.err("unterminated string"))?;
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let e = *self.s.get(self.i).ok_or_else(|| self.err("unterminated escape"))?;
                    self.i += 1;
                    let ch = match e {
                        b'n' => '\n',
                        b't' => '\t',
                        b'r' => '\r',
                        b'0' => '\0',
                        b'\\' => '\\',
                        b'"' => '"',
                        b'\'' => '\'',
                        b'u' => {
                            self.expect("{")?;
                            let start = self.i;
                            while self.s.get(self.i).is_some_and(|&c| c != b'}') {
                                self.i += 1;
                            }
                            let hex = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
                            let ch = u32::from_str_radix(hex, 16).ok().and_then(char::from_u32).ok_or_else(|| self.err("bad unicode escape"))?;
                            self.expect("}")?;
                            ch
                        }
                        _ => return Err(self.err("unknown escape")),
                    };
                    out.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes());
                }
                c => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|_| self.err("a string that is not UTF-8"))
    }

    fn mem(&mut self) -> Result<Mem> {
        let at = self.at();
        let w = self.word()?;
        mem_of(&w).ok_or_else(|| {
            self.i = at;
            self.err(&format!("expected a buffer (inN, outN, wN, tN), found '{w}'"))
        })
    }

    /// The rest of an access after its buffer: `:f32[4,1]`, then `+8` or `-8` if any.
    fn access_after(&mut self, mem: Mem) -> Result<Access> {
        self.expect(":")?;
        let dtype = self.dtype()?;
        let strides = self.ints()?;
        let offset = match self.peek() {
            Some(b'+' | b'-') => self.int()?,
            _ => 0,
        };
        Ok(Access { mem, dtype, offset, strides })
    }

    fn access(&mut self) -> Result<Access> {
        let m = self.mem()?;
        self.access_after(m)
    }

    fn step(&mut self) -> Result<Step> {
        let at = self.at();
        match self.word()?.as_str() {
            "loop" => {
                let dims = self.dims()?;
                let out = self.access()?;
                self.expect("=")?;
                Ok(Step::Loop(Loop { dims, out, value: self.expr()? }))
            }
            "reduce" => {
                self.expect("[")?;
                let mut dims = self.sizes_until("|")?;
                let n_outer = dims.len();
                dims.extend(self.sizes_until("]")?);
                self.keyword("acc")?;
                self.expect(":")?;
                let acc = self.dtype()?;
                self.expect("=")?;
                let init = match self.expr()? {
                    Expr::Lit(l) => l,
                    _ => return Err(self.err("a reduction's initial value must be a literal")),
                };
                self.expect(",")?;
                let combine = self.bin_op()?;
                self.keyword("value")?;
                let value = self.expr()?;
                self.keyword("finish")?;
                let out = self.access()?;
                self.expect("=")?;
                let finish = self.expr()?;
                Ok(Step::Reduce(Reduce { dims, n_outer, acc, init, combine, value, finish, out }))
            }
            "call" => self.call().map(Step::Call),
            other => {
                self.i = at;
                Err(self.err(&format!("expected loop, reduce or call, found '{other}'")))
            }
        }
    }

    fn bin_op(&mut self) -> Result<BinOp> {
        let at = self.at();
        let w = self.word()?;
        BIN_OPS.iter().copied().find(|op| bin_name(*op) == w).ok_or_else(|| {
            self.i = at;
            self.err(&format!("unknown binary op '{w}'"))
        })
    }

    fn call(&mut self) -> Result<Call> {
        let batch = if self.peek() == Some(b'[') { self.dims()? } else { vec![] };
        let at = self.at();
        let name = self.word()?;
        let kernel = Kernel::from_name(&name).ok_or_else(|| {
            self.i = at;
            self.err(&format!("unknown kernel '{name}'"))
        })?;
        let declared: Vec<&neoc_runtime::abi::Arg> = kernel.args().iter().filter(|a| a.kind != ArgKind::Context).collect();
        self.expect("(")?;
        let mut args = vec![];
        if !self.eat(")") {
            loop {
                let at = self.at();
                let w = self.word()?;
                let want = declared.get(args.len()).map(|d| d.name.to_string()).unwrap_or_else(|| format!("arg{}", args.len()));
                if w != want {
                    self.i = at;
                    return Err(self.err(&format!("argument {} of {name} is '{want}', found '{w}'", args.len())));
                }
                self.expect("=")?;
                args.push(self.call_arg()?);
                if self.eat(")") {
                    break;
                }
                self.expect(",")?;
            }
        }
        Ok(Call { kernel, batch, args })
    }

    fn call_arg(&mut self) -> Result<CallArg> {
        let scalar = |l: Lit, p: &Self| match l {
            Lit::Int(v, DType::I64) => Ok(CallArg::Int(v)),
            Lit::F32(v) => Ok(CallArg::F32(v)),
            Lit::F64(v) => Ok(CallArg::F64(v)),
            _ => Err(p.err("a call argument is an integer, an f32 or an f64")),
        };
        if self.peek().is_some_and(|c| c.is_ascii_digit() || c == b'-') {
            let l = self.literal()?;
            return scalar(l, self);
        }
        let at = self.at();
        let w = self.word()?;
        match w.as_str() {
            "null" => return Ok(CallArg::Null),
            "nan" | "inf" => {
                self.i = at;
                let l = self.literal()?;
                return scalar(l, self);
            }
            _ => {}
        }
        let mem = mem_of(&w).ok_or_else(|| {
            self.i = at;
            self.err(&format!("expected a call argument, found '{w}'"))
        })?;
        let offset = match self.peek() {
            Some(b'+' | b'-') => self.int()?,
            _ => 0,
        };
        let batch_strides = if self.eat("by") { self.ints()? } else { vec![] };
        Ok(CallArg::Buf { mem, offset, batch_strides })
    }

    /// A number (`-1.5e-7`, `3`, `nan`, `inf`, `nan(0x7fc00001)`) and, for floats,
    /// `:f32`/`:f64`; integers without a type are i64 (call arguments).
    fn literal(&mut self) -> Result<Lit> {
        self.ws();
        let start = self.i;
        self.eat("-");
        let word_at = self.i;
        while self.s.get(self.i).is_some_and(|&c| {
            c.is_ascii_alphanumeric() || c == b'.' || ((c == b'-' || c == b'+') && matches!(self.s[self.i - 1], b'e' | b'E'))
        }) {
            self.i += 1;
        }
        let body = std::str::from_utf8(&self.s[word_at..self.i]).unwrap_or("").to_string();
        let payload = if body == "nan" && self.s.get(self.i) == Some(&b'(') {
            self.i += 1;
            self.expect("0x")?;
            let h = self.i;
            while self.s.get(self.i).is_some_and(|c| c.is_ascii_hexdigit()) {
                self.i += 1;
            }
            let bits = u64::from_str_radix(std::str::from_utf8(&self.s[h..self.i]).unwrap_or(""), 16).map_err(|_| self.err("bad NaN payload"))?;
            self.expect(")")?;
            Some(bits)
        } else {
            None
        };
        let text = std::str::from_utf8(&self.s[start..word_at]).unwrap_or("").to_string() + &body;
        let is_float = body.contains(['.', 'e', 'E']) || body == "nan" || body == "inf";
        let dtype = if self.eat(":") { Some(self.dtype()?) } else { None };
        let bad = |p: &Self| p.err(&format!("bad literal '{text}'"));
        match (dtype, is_float) {
            (Some(DType::F32), true) => Ok(Lit::F32(match payload {
                Some(bits) => f32::from_bits(u32::try_from(bits).map_err(|_| bad(self))?),
                None => float::<f32>(&text).ok_or_else(|| bad(self))?,
            })),
            (Some(DType::F64), true) => Ok(Lit::F64(match payload {
                Some(bits) => f64::from_bits(bits),
                None => float::<f64>(&text).ok_or_else(|| bad(self))?,
            })),
            (Some(d), true) => Err(self.err(&format!("a float literal of type {d}"))),
            (d, false) => Ok(Lit::Int(text.parse().map_err(|_| bad(self))?, d.unwrap_or(DType::I64))),
            (None, true) => Err(self.err("a float literal needs its type (:f32 or :f64)")),
        }
    }

    fn expr(&mut self) -> Result<Expr> {
        match self.peek() {
            Some(c) if c.is_ascii_digit() || c == b'-' => return Ok(Expr::Lit(self.literal()?)),
            None => return Err(self.err("expected an expression")),
            _ => {}
        }
        let at = self.at();
        let w = self.word()?;
        if w == "nan" || w == "inf" {
            self.i = at;
            return Ok(Expr::Lit(self.literal()?));
        }
        if w == "acc" {
            return Ok(Expr::Acc);
        }
        if let Some(d) = w.strip_prefix('i').and_then(|d| d.parse::<usize>().ok()).filter(|_| w[1..].bytes().all(|c| c.is_ascii_digit())) {
            return Ok(Expr::Index(d));
        }
        if let Some(m) = mem_of(&w) {
            return Ok(Expr::Load(self.access_after(m)?));
        }
        let e = match w.as_str() {
            "load_at" => {
                self.expect("(")?;
                let mem = self.mem()?;
                self.expect(":")?;
                let dtype = self.dtype()?;
                self.expect(",")?;
                let len = self.int()?;
                self.expect(",")?;
                let index = self.expr()?;
                self.expect(")")?;
                return Ok(Expr::LoadAt { mem, dtype, len, index: Box::new(index) });
            }
            "cast" => {
                self.expect("<")?;
                let to = self.dtype()?;
                self.expect(">")?;
                Expr::cast(to, self.arg1()?)
            }
            "convert" => {
                self.expect("<")?;
                let to = self.dtype()?;
                self.expect(",")?;
                self.keyword("saturate")?;
                self.expect("=")?;
                let saturate = match self.word()?.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(self.err("expected true or false")),
                };
                self.expect(",")?;
                self.keyword("round")?;
                self.expect("=")?;
                let round_mode = RoundMode::from_name(&self.word()?).ok_or_else(|| self.err("unknown round mode"))?;
                self.expect(">")?;
                Expr::Convert(Conversion { to, saturate, round_mode }, Box::new(self.arg1()?))
            }
            "isinf" => {
                self.expect("<")?;
                let (mut positive, mut negative) = (false, false);
                while !self.eat(">") {
                    match self.word()?.as_str() {
                        "pos" => positive = true,
                        "neg" => negative = true,
                        _ => return Err(self.err("expected pos or neg")),
                    }
                    self.eat(",");
                }
                Expr::un(UnOp::IsInf { negative, positive }, self.arg1()?)
            }
            "select" => {
                let v = self.args()?;
                let [c, a, b]: [Expr; 3] = v.try_into().map_err(|_| self.err("select takes 3 arguments"))?;
                Expr::select(c, a, b)
            }
            _ => {
                if let Some(op) = UN_OPS.iter().copied().find(|op| un_name(*op) == w) {
                    Expr::un(op, self.arg1()?)
                } else if let Some(op) = BIN_OPS.iter().copied().find(|op| bin_name(*op) == w) {
                    let v = self.args()?;
                    let [a, b]: [Expr; 2] = v.try_into().map_err(|_| self.err(&format!("{w} takes 2 arguments")))?;
                    Expr::bin(op, a, b)
                } else if let Some(op) = MathOp::ALL.iter().copied().find(|op| math_name(*op) == w) {
                    let mut v = self.args()?.into_iter();
                    match (v.next(), v.next(), v.next()) {
                        (Some(a), None, None) => Expr::math(op, a),
                        (Some(a), Some(b), None) => Expr::math2(op, a, b),
                        _ => return Err(self.err(&format!("{w} takes 1 or 2 arguments"))),
                    }
                } else {
                    self.i = at;
                    return Err(self.err(&format!("unknown expression '{w}'")));
                }
            }
        };
        Ok(e)
    }

    /// `(e, e, ...)`.
    fn args(&mut self) -> Result<Vec<Expr>> {
        self.expect("(")?;
        let mut v = vec![self.expr()?];
        while self.eat(",") {
            v.push(self.expr()?);
        }
        self.expect(")")?;
        Ok(v)
    }

    fn arg1(&mut self) -> Result<Expr> {
        let v = self.args()?;
        let [a]: [Expr; 1] = v.try_into().map_err(|_| self.err("expected one argument"))?;
        Ok(a)
    }
}

/// A float in the printer's spelling, parsed at its own width (never through f64, which
/// could round twice).
fn float<T: std::str::FromStr>(text: &str) -> Option<T> {
    match text {
        "nan" | "inf" | "-inf" => text.parse().ok(),
        t if t.bytes().all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'-' | b'+')) => t.parse().ok(),
        _ => None,
    }
}

/// `in3` → `Mem::Input(3)`, and so on.
fn mem_of(w: &str) -> Option<Mem> {
    let split = w.find(|c: char| c.is_ascii_digit())?;
    let (p, n) = w.split_at(split);
    let n: u32 = n.parse().ok().filter(|_| n.bytes().all(|c| c.is_ascii_digit()))?;
    match p {
        "in" => Some(Mem::Input(n)),
        "out" => Some(Mem::Output(n)),
        "w" => Some(Mem::Weight(n)),
        "t" => Some(Mem::Temp(n)),
        _ => None,
    }
}

const UN_OPS: [UnOp; 9] = [UnOp::Neg, UnOp::Abs, UnOp::Sqrt, UnOp::Floor, UnOp::Ceil, UnOp::Trunc, UnOp::Nearest, UnOp::Not, UnOp::IsNaN];

const BIN_OPS: [BinOp; 18] = [
    BinOp::Add,
    BinOp::Sub,
    BinOp::Mul,
    BinOp::Div,
    BinOp::FloorMod,
    BinOp::TruncMod,
    BinOp::Min,
    BinOp::Max,
    BinOp::And,
    BinOp::Or,
    BinOp::Xor,
    BinOp::Shl,
    BinOp::Shr,
    BinOp::Eq,
    BinOp::Lt,
    BinOp::Le,
    BinOp::Gt,
    BinOp::Ge,
];

/// Whether two lowerings are the same, field by field, with every float (literals, call
/// arguments) compared bit for bit: NaN equals the same NaN, and −0 differs from +0. What a
/// round trip through the text form must preserve.
pub fn identical(a: &Lowered, b: &Lowered) -> bool {
    a.step_nodes == b.step_nodes
        && a.temps == b.temps
        && a.blobs == b.blobs
        && a.inputs == b.inputs
        && a.outputs == b.outputs
        && a.runtime_features == b.runtime_features
        && a.steps.len() == b.steps.len()
        && a.steps.iter().zip(&b.steps).all(|(x, y)| same_step(x, y))
}

fn same_lit(a: Lit, b: Lit) -> bool {
    match (a, b) {
        (Lit::F32(x), Lit::F32(y)) => x.to_bits() == y.to_bits(),
        (Lit::F64(x), Lit::F64(y)) => x.to_bits() == y.to_bits(),
        (a, b) => a == b,
    }
}

fn same_expr(a: &Expr, b: &Expr) -> bool {
    match (a, b) {
        (Expr::Lit(x), Expr::Lit(y)) => same_lit(*x, *y),
        (Expr::LoadAt { mem, dtype, len, index }, Expr::LoadAt { mem: m2, dtype: d2, len: l2, index: i2 }) => {
            (mem, dtype, len) == (m2, d2, l2) && same_expr(index, i2)
        }
        (Expr::Un(o, x), Expr::Un(o2, y)) => o == o2 && same_expr(x, y),
        (Expr::Bin(o, x, y), Expr::Bin(o2, x2, y2)) => o == o2 && same_expr(x, x2) && same_expr(y, y2),
        (Expr::Select(c, x, y), Expr::Select(c2, x2, y2)) => same_expr(c, c2) && same_expr(x, x2) && same_expr(y, y2),
        (Expr::Cast(t, x), Expr::Cast(t2, y)) => t == t2 && same_expr(x, y),
        (Expr::Convert(c, x), Expr::Convert(c2, y)) => c == c2 && same_expr(x, y),
        (Expr::Math(o, x, y), Expr::Math(o2, x2, y2)) => {
            o == o2
                && same_expr(x, x2)
                && match (y, y2) {
                    (Some(y), Some(y2)) => same_expr(y, y2),
                    (y, y2) => y.is_none() && y2.is_none(),
                }
        }
        // Loads, indices, the accumulator, and different kinds.
        (a, b) => a == b,
    }
}

fn same_step(a: &Step, b: &Step) -> bool {
    match (a, b) {
        (Step::Loop(x), Step::Loop(y)) => x.dims == y.dims && x.out == y.out && same_expr(&x.value, &y.value),
        (Step::Reduce(x), Step::Reduce(y)) => {
            (&x.dims, x.n_outer, x.acc, x.combine, &x.out) == (&y.dims, y.n_outer, y.acc, y.combine, &y.out)
                && same_lit(x.init, y.init)
                && same_expr(&x.value, &y.value)
                && same_expr(&x.finish, &y.finish)
        }
        (Step::Call(x), Step::Call(y)) => {
            (x.kernel, &x.batch) == (y.kernel, &y.batch)
                && x.args.len() == y.args.len()
                && x.args.iter().zip(&y.args).all(|p| match p {
                    (CallArg::F32(u), CallArg::F32(v)) => u.to_bits() == v.to_bits(),
                    (CallArg::F64(u), CallArg::F64(v)) => u.to_bits() == v.to_bits(),
                    (u, v) => u == v,
                })
        }
        _ => false,
    }
}

#[cfg(test)]
#[path = "text_tests.rs"]
mod tests;
