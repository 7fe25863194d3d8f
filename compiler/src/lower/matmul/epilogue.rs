//! The GEMM with an epilogue: `neoc.FusedMatMul`, and MatMul with a constant f32 weight
//! matrix. One call of the runtime's `sgemm_epilogue` per batch point, which
//! adds the bias and residual and applies the activation to each block of C right after
//! computing it; for a backend without that kernel, one reduction whose finish does the
//! same ([`calls::sgemm_epilogue_loops`]).

use anyhow::{Result, bail};
use neoc_runtime::abi::{GemmParams, Kernel};

use crate::lower::Lw;
use crate::lower::calls::pod_bytes;
use crate::kernel_ir::{Mem, broadcast_strides, dense_strides};
use crate::lower::calls::{self, Matrix};
use crate::ir::NodeId;
use crate::ir::ops::fused::Act;
use crate::tensor::DType;

/// A matrix view of a dense tensor of `shape` broadcast (numpy rules) to `full`
/// (`batch ++ [rows, cols]` as stored), with `trans` swapping its row and column strides.
fn view(mem: crate::kernel_ir::Mem, shape: &[usize], full: &[usize], trans: bool) -> Matrix {
    let s = broadcast_strides(shape, full);
    let r = s.len();
    let (rs, cs) = if trans { (s[r - 1], s[r - 2]) } else { (s[r - 2], s[r - 1]) };
    Matrix { mem, offset: 0, batch_strides: s[..r - 2].to_vec(), rs, cs }
}

pub(in crate::lower) fn fused_matmul(lw: &mut Lw, id: NodeId, gemm: Option<(bool, bool)>, scale: f32, act: Act) -> Result<()> {
    let (a, b) = (lw.input(id, 0)?, lw.input(id, 1)?);
    let (at, bt) = (lw.ty(a).clone(), lw.ty(b).clone());
    let out_ty = lw.g.node(id).outputs[0].ty.clone();
    if at.dtype != DType::F32 || bt.dtype != DType::F32 || out_ty.dtype != DType::F32 {
        bail!("FusedMatMul computes on f32 only");
    }
    if at.rank() < 2 || bt.rank() < 2 {
        bail!("FusedMatMul with a 1-D operand is not supported by the {backend} backend", backend = lw.caps.backend);
    }
    let full = out_ty.shape.clone();
    let r = full.len();
    let (m, n) = (full[r - 2], full[r - 1]);
    let (ta, tb) = gemm.unwrap_or((false, false));
    let k = if ta { at.shape[at.rank() - 2] } else { at.shape[at.rank() - 1] };
    let batch = full[..r - 2].to_vec();
    // A and B as stored ([batch.., rows, cols], or [.., cols, rows] when transposed),
    // broadcast over the product's batch dims.
    let stored = |rows: usize, cols: usize, trans: bool| {
        let mut f = batch.clone();
        f.extend(if trans { [cols, rows] } else { [rows, cols] });
        f
    };
    let am = lw.mem(a)?;
    let ma = view(am, &at.shape, &stored(m, k, ta), ta);
    let (mb, packed_b) = match packed_weights(lw, b, k, n, tb)? {
        Some(blob) => (Matrix { mem: blob, offset: 0, batch_strides: vec![0; batch.len()], rs: 0, cs: 0 }, true),
        None => (view(lw.mem(b)?, &bt.shape, &stored(k, n, tb), tb), false),
    };
    let mut addends = Vec::new();
    for i in 2..lw.g.node(id).inputs.len() {
        if let Some(v) = lw.opt_input(id, i) {
            let t = lw.ty(v).clone();
            let mem = lw.mem(v)?;
            addends.push(view(mem, &t.shape, &full, false));
        }
    }
    let mut addends = addends.into_iter();
    let (bias, residual) = (addends.next(), addends.next());
    let out = lw.out(id, 0);
    let c = Matrix { mem: out, offset: 0, batch_strides: dense_strides(&full)[..r - 2].to_vec(), rs: n as i64, cs: 1 };
    if !lw.caps.has(Kernel::SgemmEpilogue) && !packed_b {
        calls::sgemm_epilogue_loops(lw, batch, [m, n, k], scale, &ma, &mb, bias.as_ref(), residual.as_ref(), &c, act);
        return Ok(());
    }
    let (kind, act_alpha, act_beta) = act.abi();
    let zero = Matrix { mem: out, offset: 0, batch_strides: vec![], rs: 0, cs: 0 };
    let params = GemmParams {
        m: m as u64,
        n: n as u64,
        k: k as u64,
        rsa: ma.rs,
        csa: ma.cs,
        rsb: mb.rs,
        csb: mb.cs,
        rsc: c.rs,
        csc: c.cs,
        rs_bias: bias.as_ref().unwrap_or(&zero).rs,
        cs_bias: bias.as_ref().unwrap_or(&zero).cs,
        rs_residual: residual.as_ref().unwrap_or(&zero).rs,
        cs_residual: residual.as_ref().unwrap_or(&zero).cs,
        alpha: scale,
        act: kind as u32,
        act_alpha,
        act_beta,
    };
    let params = lw.blob(pod_bytes(&params));
    calls::sgemm_epilogue(lw, batch, params, &ma, &mb, bias.as_ref(), residual.as_ref(), &c, packed_b)?;
    Ok(())
}

/// A constant 2-D B (k×n, or n×k stored when `trans`), packed at compile time into the
/// runtime GEMM's layout as a new weights blob: the runtime then skips packing it on
/// every call, and every thread reads the one copy. `None` when B is not such a
/// constant (it is then read in place, and packed per call).
fn packed_weights(lw: &mut Lw, b: crate::ir::ValueId, k: usize, n: usize, trans: bool) -> Result<Option<Mem>> {
    let Some(t) = lw.konst(b).filter(|_| lw.caps.packs_gemm_weights()) else { return Ok(None) };
    if t.shape().len() != 2 {
        return Ok(None);
    }
    let values: Vec<f32> = t.as_array::<f32>()?.iter().copied().collect();
    let strides = if trans { [1, k as isize] } else { [n as isize, 1] };
    Ok(calls::pack_constant_b(lw, k, n, &values, strides)?.map(|p| p.blob))
}

#[cfg(test)]
mod tests {
    use crate::lower::test_util::{Tolerance, same_as_reference};
    use crate::tensor::Tensor;

    /// Compiled against the reference (f64). The GEMM sums k = 4 or 6 f32 products of
    /// values below 4 in magnitude, and the activations are within a few ulp: 1e-5 of the
    /// output's scale bounds that with room, and a wrong addend or stride is off by ≥ 0.1.
    const TOL: Tolerance = Tolerance::Rel(1e-5);

    fn values(shape: &[usize], seed: usize) -> Tensor {
        let n: usize = shape.iter().product();
        Tensor::from_vec(shape, (0..n).map(|i| (((i + seed) * 37) % 23) as f32 * 0.25 - 2.75).collect()).unwrap()
    }

    #[test]
    fn fused_matmul_matches_the_reference() {
        // Batched MatMul with a broadcast B, a per-column bias and a full residual, ReLU;
        // a transposed Gemm with a per-row addend and clip.
        let text = "graph(%x: f32[2,3,4], %w: f32[4,5], %b: f32[5], %r: f32[2,3,5], %a: f32[6,2], %bt: f32[3,6], %c: f32[2,1]) {\n  %y = neoc.FusedMatMul{_gemm=0, act=\"relu\", scale=1.0f}(%x, %w, %b, %r) : f32[2,3,5]\n  %z = neoc.FusedMatMul{_gemm=1, act=\"clip\", alpha=-1.0f, beta=2.0f, scale=0.5f, trans_a=1, trans_b=1}(%a, %bt, %c) : f32[2,3]\n  return %y, %z\n}";
        let ins = [values(&[2, 3, 4], 1), values(&[4, 5], 2), values(&[5], 3), values(&[2, 3, 5], 4), values(&[6, 2], 5), values(&[3, 6], 6), values(&[2, 1], 7)];
        same_as_reference(text, &ins, TOL);
    }

    /// GELU epilogues (erf and tanh forms) with the runtime's kernels (B in place, and a
    /// constant B pre-packed) and as the self-contained loop nest the aarch64 backend
    /// emits. The products reach ±15, so every branch of the epilogue's erf runs (|x/√2|
    /// below 0.92, up to 4, beyond); 1e-5 of the output's scale bounds the few-ulp
    /// error of the activations, and a missing bias or a wrong activation is off by > 0.01.
    #[test]
    fn gelu_epilogues_match_the_reference() {
        let w: Vec<String> = values(&[4, 5], 2).to_f64_vec().unwrap().iter().map(|x| format!("{x:?}")).collect();
        let text = format!(
            "graph(%x: f32[2,3,4], %w: f32[4,5], %b: f32[5]) {{\n  %wc = const f32[4,5]{{{}}}\n  \
             %y = neoc.FusedMatMul{{_gemm=0, act=\"gelu\", scale=1.0f}}(%x, %w, %b) : f32[2,3,5]\n  \
             %z = neoc.FusedMatMul{{_gemm=0, act=\"gelu_tanh\", scale=1.0f}}(%x, %wc, %b) : f32[2,3,5]\n  return %y, %z\n}}",
            w.join(",")
        );
        let x = Tensor::from_vec(&[2, 3, 4], values(&[2, 3, 4], 1).to_f64_vec().unwrap().iter().map(|v| *v as f32 * 2.5).collect()).unwrap();
        let ins = [x, values(&[4, 5], 2), values(&[5], 3)];
        let kernels = same_as_reference(&text, &ins, TOL);
        crate::lower::test_util::same_with_caps(&text, &ins, &crate::lower::Caps::SELF_CONTAINED, TOL);
        let v = kernels[0].to_f64_vec().unwrap();
        let has = |lo: f64, hi: f64| v.iter().any(|x| (lo..=hi).contains(x));
        // GELU's minimum is −0.17 (at x = −0.75); below −1e-7 only for x above −5.4.
        assert!(has(-1e-7, 0.0) && has(-0.17, -0.01) && has(8.0, f64::INFINITY), "the products reach both tails: {v:?}");
    }

    /// Constant weights take the pre-packed path: plain and transposed, crossing one
    /// KC slice of the runtime GEMM (k = 330) with a ragged last strip (n = 20), and a
    /// plain MatMul with a constant B (lowered the same way). Every value is a multiple
    /// of 1/4 below 3, so every partial sum is a multiple of 1/16 below 2600: exact in
    /// f32 in any order, and the comparison is exact in effect.
    #[test]
    fn constant_weights_are_packed_at_compile_time() {
        let (k, n) = (330, 20);
        let konst = |shape: &[usize], seed| {
            let t = values(shape, seed);
            let v: Vec<String> = t.to_f64_vec().unwrap().iter().map(|x| format!("{x:?}")).collect();
            format!("const f32[{}]{{{}}}", shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(","), v.join(","))
        };
        let text = format!(
            "graph(%x: f32[2,7,{k}], %a: f32[3,{k}]) {{\n  %w = {}\n  %wt = {}\n  %bias = {}\n  \
             %y = neoc.FusedMatMul{{_gemm=0, act=\"relu\", scale=1.0f}}(%x, %w, %bias) : f32[2,7,{n}]\n  \
             %z = neoc.FusedMatMul{{_gemm=1, act=\"none\", scale=0.5f, trans_a=0, trans_b=1}}(%a, %wt) : f32[3,{n}]\n  \
             %m = MatMul(%x, %w) : f32[2,7,{n}]\n  return %y, %z, %m\n}}",
            konst(&[k, n], 2),
            konst(&[n, k], 3),
            konst(&[n], 4)
        );
        let g = crate::ir::parse::parse_graph(&text).expect("parses");
        let lowered = crate::lower::lower(&g, &crate::lower::Caps::CPU).expect("lowers");
        let packed = lowered.steps.iter().filter(|s| matches!(s, crate::kernel_ir::Step::Call(c) if c.kernel == neoc_runtime::abi::Kernel::SgemmPackedB)).count();
        assert_eq!(packed, 3, "all three products read pre-packed weights");
        same_as_reference(&text, &[values(&[2, 7, k], 1), values(&[3, k], 5)], Tolerance::Exact);
    }
}
