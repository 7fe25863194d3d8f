//! String tensors in compiled memory, shared by the text family and the string forms of
//! other families' ops (Equal, LabelEncoder, Identity and the shape-only reshapes): which
//! ops take them, string constants, and the calls of the runtime's string kernel.
//!
//! A string tensor in compiled memory is one u64 handle per element into the run's string
//! heap; the runtime's string kernel does everything that looks at the characters. Each
//! string op becomes one call of it ([`calls::strings`]) whose parameter blob (op code,
//! sizes, constants) is a weights blob; the encoding and the design of the heap are documented in
//! `neoc_runtime::kernels::strings`. Handles are plain u64 data, so moving string tensors
//! around (a LabelEncoder's value gather, output copies) is ordinary kernel language.

use anyhow::{Context, Result, bail};
use neoc_runtime::kernels::strings::{self as rt, BlobWriter};

use super::Lw;
use super::calls;
use crate::kernel_ir::{Mem, Step, broadcast_strides};
use crate::ir::ops::binary::Binary;
use crate::ir::ops::cast::Cast;
use crate::ir::ops::ml::Ml;
use crate::ir::ops::reshape::Reshape;
use crate::ir::{EvalInputs, NodeId, Op, OpImpl, ValueId};
use crate::tensor::{DType, Tensor};

/// Whether `op` is lowered as an op on string tensors: the text family, LabelEncoder, and
/// Equal, Identity and the shape-only reshapes on strings. Their buffers may hold string
/// handles, so `lower_node` skips the numeric dtype checks for them.
pub(super) fn handles(lw: &Lw, id: NodeId, op: &Op) -> bool {
    let any_string = any_string(lw, id);
    match op {
        Op::Text(_) | Op::Ml(Ml::LabelEncoder(_)) => true,
        Op::Binary(Binary::Equal) => any_string,
        // Pass-through ops on strings: the handles are the data.
        Op::Reshape(r) => any_string && *r != Reshape::Expand,
        Op::Cast(Cast::Identity) => any_string,
        _ => false,
    }
}

/// Whether an input or output of `id` is a string tensor.
pub(super) fn any_string(lw: &Lw, id: NodeId) -> bool {
    let node = lw.g.node(id);
    node.inputs.iter().flatten().any(|v| lw.ty(*v).dtype == DType::String) || node.outputs.iter().any(|o| o.ty.dtype == DType::String)
}

/// Every input known at compile time (StringSplit, StringNormalizer with stop words): the
/// reference evaluation's result becomes constants. Returns whether it did.
pub(super) fn evaluate_constant(lw: &mut Lw, id: NodeId, op: &Op) -> Result<bool> {
    let node = lw.g.node(id);
    let consts: Option<Vec<Option<&Tensor>>> =
        node.inputs.iter().map(|v| match v { None => Some(None), Some(v) => lw.konst(*v).map(Some) }).collect();
    if let Some(consts) = consts {
        let outs = op.eval(&EvalInputs { inputs: &consts, n_outputs: node.outputs.len() }).context("evaluating on constant inputs")?;
        for (slot, t) in outs.iter().enumerate() {
            let dst = lw.out(id, slot);
            write_const(lw, t, dst)?;
        }
        return Ok(true);
    }
    Ok(false)
}

/// One call of the runtime's string kernel with the parameter blob `params`: it reads `a`
/// and `b` and writes `c`.
pub(super) fn call(lw: &mut Lw, params: Vec<u8>, a: Option<Mem>, b: Option<Mem>, c: Mem) -> Result<()> {
    let params = lw.blob(params);
    calls::strings(lw, params, a, b, c)
}

/// Handles of the constant strings `t`, in a new temporary.
pub(super) fn const_strings(lw: &mut Lw, t: &Tensor) -> Result<Mem> {
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
pub(super) fn binary(lw: &mut Lw, id: NodeId, kind: u32) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use crate::lower::test_util::{Tolerance, same_as_reference, strings as s};
    use crate::ir::parse::parse_graph;
    use crate::tensor::Tensor;

    /// Strings and booleans: equal to the reference.
    const TOL: Tolerance = Tolerance::Exact;

    #[test]
    fn stop_words_on_a_constant_input_fold() {
        let text = "graph(%z: string[1]) {\n  %x = const string[4]{\"monday\",\"Monday\",\"b\",\"MONDAY\"}\n  %y = StringNormalizer{case_change_action=\"LOWER\", stopwords=s[\"monday\"]}(%x) : string[1]\n  %w = StringConcat(%y, %z) : string[1]\n  return %w, %x\n}";
        same_as_reference(text, &[s(&[1], &["!"])], TOL);
    }

    #[test]
    fn concat_and_equal_broadcast() {
        for (op, out) in [("StringConcat", "string"), ("Equal", "bool")] {
            let text = format!("graph(%a: string[2,1], %b: string[3]) {{\n  %y = {op}(%a, %b) : {out}[2,3]\n  return %y\n}}");
            same_as_reference(&text, &[s(&[2, 1], &["x", "日"]), s(&[3], &["x", "", "本"])], TOL);
            let text = format!("graph(%a: string[], %b: string[]) {{\n  %y = {op}(%a, %b) : {out}[]\n  return %y\n}}");
            same_as_reference(&text, &[s(&[], &["ab"]), s(&[], &["ab"])], TOL);
        }
    }

    #[test]
    fn string_inputs_pass_through_and_check_dtype() {
        let text = "graph(%x: string[2]) {\n  %y = Identity(%x) : string[2]\n  %a = const i64[1]{0}\n  %z = Unsqueeze(%y, %a) : string[1,2]\n  return %y, %z, %x\n}";
        same_as_reference(text, &[s(&[2], &["a", "b"])], TOL);
        let text = "graph(%x: string[2]) {\n  %y = StringNormalizer{case_change_action=\"UPPER\"}(%x) : string[2]\n  return %y\n}";
        let g = parse_graph(text).unwrap();
        let f = Tensor::from_vec(&[2], vec![1f32, 2.]).unwrap();
        let err = crate::driver::compile_and_run(&g, &[f], &Default::default()).unwrap_err();
        assert!(format!("{err:#}").contains("expected dtype string, got f32"), "{err:#}");
    }
}
