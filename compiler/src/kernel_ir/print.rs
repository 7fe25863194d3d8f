//! The kernel IR's text form: printer. `parse.rs` reads the same form back.
//!
//! ```text
//! input in0 "x": f32[2,4]
//! output out0 "y": f32[2]
//! temp t0: 32 bytes
//! weight w0: 16 bytes = 0000803f000000400000404000008040
//! weight w1: 4096 bytes xxh64 9f3ac5e2d41b0077
//! step 0 "Add_0": loop [2,4] t0:f32[4,1] = add(in0:f32[4,1], w0:f32[0,1])
//! step 1 "ReduceMean_1": reduce [2 | 4] acc:f32 = 0.0:f32, add
//!   value  t0:f32[4,1]
//!   finish out0:f32[1] = div(acc, 4.0:f32)
//! step 2 "MatMul_2": call [3] sgemm(m=2, n=3, k=4, alpha=1.0:f32, a=in0 by [32], ...)
//! ```
//!
//! One line per header item and per step (a reduction takes three), in order, so that two
//! lowerings diff line by line. Buffers are `inN`, `outN`, `wN`, `tN` ([`Mem`]); an access is
//! `mem:dtype[strides]` plus `+offset` when it is not 0 (in elements); a call's buffer
//! argument is `mem` plus `+offset` (in **bytes**) and `by [batch strides]` (bytes).
//! Expressions are prefix calls (`add(a, b)`, `select(c, a, b)`, `cast<f16>(x)`, `exp(x)`),
//! loop indices `i0`, `i1`, …, the accumulator `acc`. Literals carry their type
//! (`1.5:f32`, `3:i64`, `1:bool`): floats print with Rust's shortest round-tripping form,
//! `nan`, `inf`, `-inf`, and `nan(0x…)` for a NaN other than the default one, so every
//! float reads back bit for bit. Call arguments print by their names in the kernel table
//! (`Kernel::args`). Weights blobs print in full (hex) up to [`FULL_BLOB_BYTES`] bytes,
//! and larger ones as their size and XXH64 hash unless [`Blobs::Full`] asks for every byte.

use std::fmt::Write;

use neoc_runtime::abi::{ArgKind, MathOp};

use super::{Access, BinOp, Call, CallArg, Conversion, Expr, Lit, Loop, Mem, Reduce, Step, UnOp};
use crate::lower::Lowered;

/// Blobs up to this many bytes always print in full.
pub const FULL_BLOB_BYTES: usize = 64;

/// How weights blobs print.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blobs {
    /// Every byte, in hex: the text parses back to the same lowering.
    Full,
    /// Blobs above [`FULL_BLOB_BYTES`] as size and hash (dumps and golden files); the
    /// parser gives their bytes back only as zeros ([`super::parse::parse_lossy`]).
    Hashed,
}

/// The whole lowering as text.
pub fn lowered_text(l: &Lowered, blobs: Blobs) -> String {
    let mut s = String::new();
    for (i, (name, ty)) in l.inputs.iter().enumerate() {
        let _ = writeln!(s, "input {} {name:?}: {ty}", mem_name(Mem::Input(i as u32)));
    }
    for (i, (name, ty)) in l.outputs.iter().enumerate() {
        let _ = writeln!(s, "output {} {name:?}: {ty}", mem_name(Mem::Output(i as u32)));
    }
    for (i, bytes) in l.temps.iter().enumerate() {
        let _ = writeln!(s, "temp {}: {bytes} bytes", mem_name(Mem::Temp(i as u32)));
    }
    for (i, b) in l.blobs.iter().enumerate() {
        let _ = write!(s, "weight {}: {} bytes", mem_name(Mem::Weight(i as u32)), b.len());
        if blobs == Blobs::Full || b.len() <= FULL_BLOB_BYTES {
            let _ = write!(s, " =");
            if !b.is_empty() {
                s.push(' ');
            }
            for byte in b {
                let _ = write!(s, "{byte:02x}");
            }
            s.push('\n');
        } else {
            let _ = writeln!(s, " xxh64 {:016x}", neoc_runtime::xxh64(b, 0));
        }
    }
    for f in &l.runtime_features {
        let _ = writeln!(s, "feature {f:?}");
    }
    for (i, step) in l.steps.iter().enumerate() {
        let node = l.step_nodes.get(i).map(String::as_str).unwrap_or("");
        let _ = writeln!(s, "step {i} {node:?}: {}", step_text(step));
    }
    s
}

/// `in0`, `out0`, `w0`, `t0`.
pub fn mem_name(m: Mem) -> String {
    match m {
        Mem::Input(i) => format!("in{i}"),
        Mem::Output(i) => format!("out{i}"),
        Mem::Weight(i) => format!("w{i}"),
        Mem::Temp(i) => format!("t{i}"),
    }
}

fn list<T: std::fmt::Display>(v: &[T]) -> String {
    let parts: Vec<String> = v.iter().map(|x| x.to_string()).collect();
    format!("[{}]", parts.join(","))
}

/// `t0:f32[4,1]`, `t0:f32[4,1]+8`.
pub fn access_text(a: &Access) -> String {
    let off = if a.offset != 0 { format!("{:+}", a.offset) } else { String::new() };
    format!("{}:{}{}{off}", mem_name(a.mem), a.dtype, list(&a.strides))
}

/// One step, as it follows `step N "node": ` (a reduction continues on two more lines).
pub fn step_text(s: &Step) -> String {
    match s {
        Step::Loop(Loop { dims, out, value }) => format!("loop {} {} = {}", list(dims), access_text(out), expr_text(value)),
        Step::Reduce(Reduce { dims, n_outer, acc, init, combine, value, finish, out }) => {
            let n = (*n_outer).min(dims.len());
            let (outer, inner) = (&dims[..n], &dims[n..]);
            let side = |d: &[usize]| d.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(",");
            let dims = match (outer.is_empty(), inner.is_empty()) {
                (true, true) => "[|]".to_string(),
                (true, false) => format!("[| {}]", side(inner)),
                (false, true) => format!("[{} |]", side(outer)),
                (false, false) => format!("[{} | {}]", side(outer), side(inner)),
            };
            format!(
                "reduce {dims} acc:{acc} = {}, {}\n  value  {}\n  finish {} = {}",
                lit_text(*init),
                bin_name(*combine),
                expr_text(value),
                access_text(out),
                expr_text(finish)
            )
        }
        Step::Call(c) => call_text(c),
    }
}

fn call_text(c: &Call) -> String {
    let batch = if c.batch.is_empty() { String::new() } else { format!("{} ", list(&c.batch)) };
    let declared: Vec<&neoc_runtime::abi::Arg> = c.kernel.args().iter().filter(|a| a.kind != ArgKind::Context).collect();
    let args: Vec<String> = c
        .args
        .iter()
        .enumerate()
        .map(|(i, a)| {
            // Arguments beyond the declaration (an invalid call) print by position.
            let name = declared.get(i).map(|d| d.name.to_string()).unwrap_or_else(|| format!("arg{i}"));
            format!("{name}={}", call_arg_text(a))
        })
        .collect();
    format!("call {batch}{}({})", c.kernel.name(), args.join(", "))
}

pub fn call_arg_text(a: &CallArg) -> String {
    match a {
        CallArg::Buf { mem, offset, batch_strides } => {
            let mut s = mem_name(*mem);
            if *offset != 0 {
                let _ = write!(s, "{offset:+}");
            }
            if !batch_strides.is_empty() {
                let _ = write!(s, " by {}", list(batch_strides));
            }
            s
        }
        CallArg::Null => "null".into(),
        CallArg::Int(v) => v.to_string(),
        CallArg::F32(v) => format!("{}:f32", f32_text(*v)),
        CallArg::F64(v) => format!("{}:f64", f64_text(*v)),
    }
}

/// An f32 that reads back bit for bit.
pub fn f32_text(v: f32) -> String {
    if v.is_nan() {
        if v.to_bits() == f32::NAN.to_bits() { "nan".into() } else { format!("nan(0x{:08x})", v.to_bits()) }
    } else if v.is_infinite() {
        if v > 0.0 { "inf".into() } else { "-inf".into() }
    } else {
        format!("{v:?}")
    }
}

/// An f64 that reads back bit for bit.
pub fn f64_text(v: f64) -> String {
    if v.is_nan() {
        if v.to_bits() == f64::NAN.to_bits() { "nan".into() } else { format!("nan(0x{:016x})", v.to_bits()) }
    } else if v.is_infinite() {
        if v > 0.0 { "inf".into() } else { "-inf".into() }
    } else {
        format!("{v:?}")
    }
}

/// `1.5:f32`, `2.0:f64`, `3:i64`, `1:bool` (an integer literal never has a `.`, an `e`, or
/// `nan`/`inf`, whatever its dtype).
pub fn lit_text(l: Lit) -> String {
    match l {
        Lit::F32(v) => format!("{}:f32", f32_text(v)),
        Lit::F64(v) => format!("{}:f64", f64_text(v)),
        Lit::Int(v, d) => format!("{v}:{d}"),
    }
}

pub fn un_name(op: UnOp) -> &'static str {
    match op {
        UnOp::Neg => "neg",
        UnOp::Abs => "abs",
        UnOp::Sqrt => "sqrt",
        UnOp::Floor => "floor",
        UnOp::Ceil => "ceil",
        UnOp::Trunc => "trunc",
        UnOp::Nearest => "nearest",
        UnOp::Not => "not",
        UnOp::IsNaN => "isnan",
        UnOp::IsInf { .. } => "isinf",
    }
}

pub fn bin_name(op: BinOp) -> &'static str {
    match op {
        BinOp::Add => "add",
        BinOp::Sub => "sub",
        BinOp::Mul => "mul",
        BinOp::Div => "div",
        BinOp::FloorMod => "floormod",
        BinOp::TruncMod => "truncmod",
        BinOp::Min => "min",
        BinOp::Max => "max",
        BinOp::And => "and",
        BinOp::Or => "or",
        BinOp::Xor => "xor",
        BinOp::Shl => "shl",
        BinOp::Shr => "shr",
        BinOp::Eq => "eq",
        BinOp::Lt => "lt",
        BinOp::Le => "le",
        BinOp::Gt => "gt",
        BinOp::Ge => "ge",
    }
}

/// The math function's name: its variant, lower case (`exp`, `log1p`).
pub fn math_name(op: MathOp) -> String {
    format!("{op:?}").to_lowercase()
}

pub fn expr_text(e: &Expr) -> String {
    match e {
        Expr::Load(a) => access_text(a),
        Expr::LoadAt { mem, dtype, len, index } => format!("load_at({}:{dtype}, {len}, {})", mem_name(*mem), expr_text(index)),
        Expr::Index(d) => format!("i{d}"),
        Expr::Lit(l) => lit_text(*l),
        Expr::Un(UnOp::IsInf { negative, positive }, a) => {
            let which: Vec<&str> = [(*positive, "pos"), (*negative, "neg")].iter().filter(|x| x.0).map(|x| x.1).collect();
            format!("isinf<{}>({})", which.join(","), expr_text(a))
        }
        Expr::Un(op, a) => format!("{}({})", un_name(*op), expr_text(a)),
        Expr::Bin(op, a, b) => format!("{}({}, {})", bin_name(*op), expr_text(a), expr_text(b)),
        Expr::Select(c, a, b) => format!("select({}, {}, {})", expr_text(c), expr_text(a), expr_text(b)),
        Expr::Cast(to, a) => format!("cast<{to}>({})", expr_text(a)),
        Expr::Convert(Conversion { to, saturate, round_mode }, a) => {
            format!("convert<{to},saturate={saturate},round={}>({})", round_mode.name(), expr_text(a))
        }
        Expr::Math(op, a, None) => format!("{}({})", math_name(*op), expr_text(a)),
        Expr::Math(op, a, Some(b)) => format!("{}({}, {})", math_name(*op), expr_text(a), expr_text(b)),
        Expr::Acc => "acc".into(),
    }
}
