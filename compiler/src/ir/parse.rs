//! The IR text form: parser (the inverse of `print.rs`). Ops are rebuilt through the same
//! importers as ONNX nodes, at the latest opset, from their printed attributes.

use super::{Attr, Attrs, Graph, NodeInput, Output, ValueId, ValueType, ops};
use crate::tensor::{ArrayD, DType, IxDyn, Tensor, bf16, f16};
use anyhow::{Result, anyhow, bail};
use std::collections::HashMap;

/// Parses a graph in the text form.
pub fn parse_graph(text: &str) -> Result<Graph> {
    let mut p = Parser { s: text.as_bytes(), i: 0 };
    let g = p.graph()?;
    p.ws();
    if p.i != p.s.len() {
        return Err(p.err("trailing text after the graph"));
    }
    Ok(g)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn err(&self, msg: &str) -> anyhow::Error {
        let before = &self.s[..self.i.min(self.s.len())];
        let line = before.iter().filter(|&&c| c == b'\n').count() + 1;
        let col = self.i - before.iter().rposition(|&c| c == b'\n').map(|p| p + 1).unwrap_or(0) + 1;
        anyhow!("{line}:{col}: {msg}")
    }

    fn ws(&mut self) {
        while self.i < self.s.len() {
            match self.s[self.i] {
                b' ' | b'\t' | b'\n' | b'\r' => self.i += 1,
                b';' => {
                    while self.i < self.s.len() && self.s[self.i] != b'\n' {
                        self.i += 1;
                    }
                }
                _ => break,
            }
        }
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

    fn ident(&mut self) -> Result<String> {
        self.ws();
        let start = self.i;
        while self.i < self.s.len() && (self.s[self.i].is_ascii_alphanumeric() || matches!(self.s[self.i], b'_' | b'.' | b'-')) {
            self.i += 1;
        }
        if start == self.i {
            return Err(self.err("expected a name"));
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    fn string(&mut self) -> Result<String> {
        self.ws();
        if self.s.get(self.i) != Some(&b'"') {
            return Err(self.err("expected a string"));
        }
        self.i += 1;
        let mut out = String::new();
        loop {
            let c = *self.s.get(self.i).ok_or_else(|| self.err("unterminated string"))?;
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let e = *self.s.get(self.i).ok_or_else(|| self.err("unterminated escape"))?;
                    self.i += 1;
                    match e {
                        b'n' => out.push('\n'),
                        b't' => out.push('\t'),
                        b'r' => out.push('\r'),
                        b'0' => out.push('\0'),
                        b'\\' => out.push('\\'),
                        b'"' => out.push('"'),
                        b'\'' => out.push('\''),
                        b'u' => {
                            self.expect("{")?;
                            let start = self.i;
                            while self.i < self.s.len() && self.s[self.i] != b'}' {
                                self.i += 1;
                            }
                            let hex = std::str::from_utf8(&self.s[start..self.i]).map_err(|_| self.err("bad escape"))?;
                            let ch = u32::from_str_radix(hex, 16).ok().and_then(char::from_u32).ok_or_else(|| self.err("bad unicode escape"))?;
                            out.push(ch);
                            self.expect("}")?;
                        }
                        _ => return Err(self.err("unknown escape")),
                    }
                }
                _ => {
                    // Copy one UTF-8 character.
                    let start = self.i - 1;
                    let len = match c {
                        0..=0x7f => 1,
                        0xc0..=0xdf => 2,
                        0xe0..=0xef => 3,
                        _ => 4,
                    };
                    self.i = (start + len).min(self.s.len());
                    out.push_str(&String::from_utf8_lossy(&self.s[start..self.i]));
                }
            }
        }
        Ok(out)
    }

    /// A number token, returned as text.
    fn number(&mut self) -> Result<String> {
        self.ws();
        let start = self.i;
        if self.s[self.i..].starts_with(b"0x") {
            self.i += 2;
            while self.i < self.s.len() && self.s[self.i].is_ascii_hexdigit() {
                self.i += 1;
            }
            return Ok(String::from_utf8_lossy(&self.s[start..self.i]).into_owned());
        }
        while self.i < self.s.len() && matches!(self.s[self.i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E' | b'a' | b'f' | b'i' | b'n') {
            // stop before an 'f' suffix that is not part of "inf"
            if self.s[self.i] == b'f' && !self.s[start..self.i].ends_with(b"in") {
                break;
            }
            self.i += 1;
        }
        if start == self.i {
            return Err(self.err("expected a number"));
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    fn float(&mut self) -> Result<f64> {
        let t = self.number()?;
        match t.as_str() {
            "nan" => Ok(f64::NAN),
            "inf" => Ok(f64::INFINITY),
            "-inf" => Ok(f64::NEG_INFINITY),
            _ => t.parse::<f64>().map_err(|_| self.err(&format!("bad number '{t}'"))),
        }
    }

    fn int(&mut self) -> Result<i64> {
        let t = self.number()?;
        t.parse::<i64>().map_err(|_| self.err(&format!("bad integer '{t}'")))
    }

    fn value(&mut self) -> Result<String> {
        self.expect("%")?;
        if self.s.get(self.i) == Some(&b'"') { self.string() } else { self.ident() }
    }

    fn list<T>(&mut self, close: &str, mut item: impl FnMut(&mut Self) -> Result<T>) -> Result<Vec<T>> {
        let mut out = vec![];
        if self.eat(close) {
            return Ok(out);
        }
        loop {
            out.push(item(self)?);
            if self.eat(close) {
                return Ok(out);
            }
            self.expect(",")?;
        }
    }

    fn dtype(&mut self) -> Result<DType> {
        let name = self.ident()?;
        DType::from_name(&name).ok_or_else(|| self.err(&format!("unknown dtype '{name}'")))
    }

    fn shape(&mut self) -> Result<Vec<usize>> {
        self.expect("[")?;
        self.list("]", |p| {
            let d = p.int()?;
            usize::try_from(d).map_err(|_| p.err("negative dimension"))
        })
    }

    fn ty(&mut self) -> Result<ValueType> {
        let d = self.dtype()?;
        Ok(ValueType::new(d, self.shape()?))
    }

    fn tensor_after_type(&mut self, ty: ValueType) -> Result<Tensor> {
        self.expect("{")?;
        let d = ty.dtype;
        let shape = IxDyn(&ty.shape);
        let t = if d == DType::String {
            Tensor::Str(ArrayD::from_shape_vec(shape, self.list("}", |p| p.string())?)?)
        } else if d.is_low() {
            let codes = self.list("}", |p| {
                let t = p.number()?;
                u8::from_str_radix(t.trim_start_matches("0x"), 16).map_err(|_| p.err("bad code"))
            })?;
            Tensor::Low(d, ArrayD::from_shape_vec(shape, codes)?)
        } else if d == DType::Bool {
            let v = self.list("}", |p| match p.ident()?.as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(p.err("expected true or false")),
            })?;
            Tensor::Bool(ArrayD::from_shape_vec(shape, v)?)
        } else if d.is_float() {
            let v = self.list("}", |p| p.float())?;
            match d {
                DType::F32 => Tensor::F32(ArrayD::from_shape_vec(shape, v.iter().map(|&x| x as f32).collect())?),
                DType::F16 => Tensor::F16(ArrayD::from_shape_vec(shape, v.iter().map(|&x| f16::from_f64(x)).collect())?),
                DType::BF16 => Tensor::BF16(ArrayD::from_shape_vec(shape, v.iter().map(|&x| bf16::from_f64(x)).collect())?),
                _ => Tensor::F64(ArrayD::from_shape_vec(shape, v)?),
            }
        } else if d == DType::U64 {
            let v = self.list("}", |p| {
                let t = p.number()?;
                t.parse::<u64>().map_err(|_| p.err("bad u64"))
            })?;
            Tensor::U64(ArrayD::from_shape_vec(shape, v)?)
        } else {
            let v = self.list("}", |p| p.int())?;
            Tensor::I64(ArrayD::from_shape_vec(shape, v)?).cast(d)?
        };
        Ok(t)
    }

    fn attr_value(&mut self) -> Result<Attr> {
        match self.peek() {
            Some(b'"') => Ok(Attr::Str(self.string()?)),
            Some(b'[') => {
                self.i += 1;
                Ok(Attr::Ints(self.list("]", |p| p.int())?))
            }
            Some(c) if c.is_ascii_digit() || c == b'-' || c == b'+' => {
                let t = self.number()?;
                if self.eat("f") {
                    let v = match t.as_str() {
                        "nan" => f32::NAN,
                        "inf" => f32::INFINITY,
                        "-inf" => f32::NEG_INFINITY,
                        _ => t.parse::<f32>().map_err(|_| self.err(&format!("bad float '{t}'")))?,
                    };
                    Ok(Attr::Float(v))
                } else {
                    Ok(Attr::Int(t.parse().map_err(|_| self.err(&format!("bad integer '{t}'")))?))
                }
            }
            _ => {
                let save = self.i;
                let word = self.ident()?;
                match word.as_str() {
                    "f" if self.eat("[") => Ok(Attr::Floats(self.list("]", |p| p.float().map(|v| v as f32))?)),
                    "s" if self.eat("[") => Ok(Attr::Strs(self.list("]", |p| p.string())?)),
                    "nanf" => Ok(Attr::Float(f32::NAN)),
                    "inff" => Ok(Attr::Float(f32::INFINITY)),
                    "graph" => {
                        self.i = save;
                        Ok(Attr::Graph(Box::new(self.graph()?)))
                    }
                    _ => {
                        self.i = save;
                        let ty = self.ty()?;
                        Ok(Attr::Tensor(self.tensor_after_type(ty)?))
                    }
                }
            }
        }
    }

    fn graph(&mut self) -> Result<Graph> {
        self.expect("graph")?;
        self.expect("(")?;
        let mut g = Graph::new();
        let mut names: HashMap<String, ValueId> = HashMap::new();
        let inputs = self.list(")", |p| {
            let n = p.value()?;
            p.expect(":")?;
            Ok((n, p.ty()?))
        })?;
        for (n, ty) in inputs {
            let v = g.add_input(&n, ty);
            names.insert(n, v);
        }
        self.expect("{")?;
        loop {
            if self.eat("return") {
                let rets = self.list("}", |p| {
                    let v = p.value()?;
                    let public = if p.eat("as") { p.string()? } else { v.clone() };
                    Ok((v, public))
                });
                // `list` consumed the closing brace.
                for (v, public) in rets? {
                    let id = *names.get(&v).ok_or_else(|| self.err(&format!("return of unknown value %{v}")))?;
                    g.outputs.push((public, id));
                }
                return Ok(g);
            }
            self.statement(&mut g, &mut names)?;
        }
    }

    fn statement(&mut self, g: &mut Graph, names: &mut HashMap<String, ValueId>) -> Result<()> {
        let mut outs = vec![self.value()?];
        while self.eat(",") {
            outs.push(self.value()?);
        }
        self.expect("=")?;
        let save = self.i;
        let word = self.ident()?;
        if word == "const" {
            let ty = self.ty()?;
            let t = self.tensor_after_type(ty)?;
            if outs.len() != 1 {
                return Err(self.err("a constant defines one value"));
            }
            let v = g.add_tensor(&outs[0], t);
            names.insert(outs[0].clone(), v);
            return Ok(());
        }
        let op_at = save;
        let attrs: Attrs = if self.eat("{") {
            self.list("}", |p| {
                let k = p.ident()?;
                p.expect("=")?;
                Ok((k, p.attr_value()?))
            })?
            .into_iter()
            .collect()
        } else {
            Attrs::new()
        };
        self.expect("(")?;
        let args = self.list(")", |p| if p.eat("_") { Ok(None) } else { p.value().map(Some) })?;
        self.expect(":")?;
        let mut tys = vec![self.ty()?];
        while self.eat(",") {
            tys.push(self.ty()?);
        }
        if tys.len() != outs.len() {
            return Err(self.err(&format!("{} values but {} types", outs.len(), tys.len())));
        }
        let mut inputs = vec![];
        for a in &args {
            inputs.push(match a {
                None => None,
                Some(n) => {
                    let id = *names.get(n).ok_or_else(|| self.err(&format!("use of undefined value %{n}")))?;
                    Some(NodeInput::Value { id, ty: g.ty(id).clone(), konst: g.konst(id).cloned() })
                }
            });
        }
        let (op, inputs) = {
            let i = self.i;
            self.i = op_at;
            let e = |err: anyhow::Error| self.err(&format!("{word}: {err:#}"));
            // Ops of other domains print as `domain.Name`.
            let (domain, op_type) = word.rsplit_once('.').unwrap_or(("", word.as_str()));
            let r = ops::build(op_type, domain, ops::latest_opset(domain), &outs[0], &attrs, inputs, outs.len()).map_err(e);
            self.i = i;
            r?
        };
        let mut ids = vec![];
        for (k, i) in inputs.into_iter().enumerate() {
            ids.push(match i {
                None => None,
                Some(NodeInput::Value { id, .. }) => Some(id),
                Some(NodeInput::Const(t)) => Some(g.add_tensor(&format!("{}:in{k}", outs[0]), t)),
            });
        }
        let outputs = outs.iter().zip(tys).map(|(n, ty)| Output { name: n.clone(), ty }).collect();
        let values = g.add_node_typed(&outs[0], op, ids, outputs);
        for (n, v) in outs.into_iter().zip(values) {
            if names.insert(n.clone(), v).is_some() {
                bail!("value %{n} is defined twice");
            }
        }
        Ok(())
    }
}
