//! Calls of the runtime's heavy kernels (GEMM, convolution, pooling, strings), set up from
//! what the lowerings know: GEMM operands as strided matrix views, parameter blocks as
//! weights blobs. The argument order is the kernel table's declaration
//! (`neoc_runtime::abi`); these functions are the only place that spells it out.

use anyhow::Result;
use neoc_runtime::abi::{GemmParams, Kernel, MAX_SPATIAL};

use super::Lw;
use crate::ir::ops::fused::Act;
use crate::kernel_ir::{Access, BinOp, Call, CallArg, Expr, Lit, Mem, Reduce, Step};
use crate::tensor::DType;

/// A matrix operand of a GEMM on f32: element (r, c) at batch point `b` is at
/// `offset + Σ batch_strides[d]·b[d] + r·rs + c·cs` elements from the start of `mem`.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    pub mem: Mem,
    pub offset: i64,
    pub batch_strides: Vec<i64>,
    pub rs: i64,
    pub cs: i64,
}

impl Matrix {
    /// The operand as a call argument (offsets and strides in bytes).
    fn arg(&self) -> CallArg {
        CallArg::Buf { mem: self.mem, offset: 4 * self.offset, batch_strides: self.batch_strides.iter().map(|s| 4 * s).collect() }
    }
}

impl Matrix {
    /// An f32 load of element (`row`, `col`) at batch point `batch` (loop dims).
    fn load(&self, batch: &[usize], row: usize, col: usize, rank: usize) -> Expr {
        let mut strides = vec![0i64; rank];
        for (d, s) in batch.iter().zip(&self.batch_strides) {
            strides[*d] = *s;
        }
        strides[row] += self.rs;
        strides[col] += self.cs;
        Expr::Load(Access { mem: self.mem, dtype: DType::F32, offset: self.offset, strides })
    }
}

/// For every point of `batch`: `C = alpha·A·B + beta·C` (f32), with the runtime's `sgemm`
/// when the backend has it, else as a loop nest (a reduction over k in k order). An empty
/// product (m or n zero) computes nothing.
#[allow(clippy::too_many_arguments)]
pub fn sgemm(lw: &mut Lw, batch: Vec<usize>, [m, n, k]: [usize; 3], alpha: f32, beta: f32, a: &Matrix, b: &Matrix, c: &Matrix) -> Result<()> {
    if !lw.caps.has(Kernel::Sgemm) {
        lw.push(gemm_loops(&batch, [m, n, k], alpha, beta, [a, b, c]));
        return Ok(());
    }
    let (mut batch, mut m, mut a, mut b, mut c) = (batch, m, a.clone(), b.clone(), c.clone());
    fold_batch_into_rows(&mut batch, &mut m, n, [&mut a, &mut b, &mut c]);
    let batch = if m == 0 || n == 0 { vec![0] } else { batch };
    let int = |v: i64| CallArg::Int(v);
    let args = vec![
        int(m as i64),
        int(n as i64),
        int(k as i64),
        CallArg::F32(alpha),
        a.arg(),
        int(a.rs),
        int(a.cs),
        b.arg(),
        int(b.rs),
        int(b.cs),
        CallArg::F32(beta),
        c.arg(),
        int(c.rs),
        int(c.cs),
    ];
    lw.push(Step::Call(Call { kernel: Kernel::Sgemm, batch, args }));
    Ok(())
}

/// Folds batch dims that only step A's and C's rows into the rows: where B stays put
/// (batch stride 0) and A's and C's batch strides are `m` rows (any stride, when `m` is 1:
/// a row stride of one row is never used), batch point `i`, row `r` is row `i·m + r` of
/// one taller product. An LSTM's input projection, one 1-row GEMM per time step, becomes
/// one GEMM over every step, which the kernel blocks and vectorises as a whole. Folds from
/// the innermost dim out; the points' rows of C must not overlap (`n` columns of C's
/// column stride), or two points writing one element would become one call.
fn fold_batch_into_rows(batch: &mut Vec<usize>, m: &mut usize, n: usize, [a, b, c]: [&mut Matrix; 3]) {
    let stride = |x: &Matrix, d: usize| x.batch_strides.get(d).copied().unwrap_or(0);
    let row_span = (n as u64).saturating_mul(c.cs.unsigned_abs());
    while let Some(d) = batch.len().checked_sub(1) {
        let (sa, sb, sc) = (stride(a, d), stride(b, d), stride(c, d));
        let rows_step = |x: &Matrix, s: i64| if *m == 1 { true } else { i64::try_from(*m).is_ok_and(|m| x.rs.checked_mul(m) == Some(s)) };
        let Some(rows) = m.checked_mul(batch[d]) else { return };
        if sb != 0 || sc.unsigned_abs() < row_span.max(1) || !rows_step(a, sa) || !rows_step(c, sc) {
            return;
        }
        if *m == 1 {
            a.rs = sa;
            c.rs = sc;
        }
        *m = rows;
        batch.pop();
        for x in [&mut *a, &mut *b, &mut *c] {
            x.batch_strides.truncate(d);
        }
    }
}

/// The GEMM as a reduction: dims `batch ++ [m, n, k]`, `acc += A[r, p]·B[p, c]` over p,
/// then `C = alpha·acc + beta·C` (C not read when beta is 0, as the kernel does).
fn gemm_loops(batch: &[usize], [m, n, k]: [usize; 3], alpha: f32, beta: f32, [a, b, c]: [&Matrix; 3]) -> Step {
    gemm_reduce(batch, [m, n, k], [a, b, c], |scaled, old| {
        let scaled = Expr::bin(BinOp::Mul, Expr::Lit(Lit::F32(alpha)), scaled);
        if beta == 0.0 { scaled } else { Expr::bin(BinOp::Add, scaled, Expr::bin(BinOp::Mul, Expr::Lit(Lit::F32(beta)), old())) }
    })
}

/// `C = finish(acc, || C)` over dims `batch ++ [m, n, k]` with `acc = Σ_p A[r, p]·B[p, c]`
/// (summed in k order); `finish` gets the accumulator and a maker of C's old value.
fn gemm_reduce(batch: &[usize], [m, n, k]: [usize; 3], [a, b, c]: [&Matrix; 3], finish: impl FnOnce(Expr, &dyn Fn() -> Expr) -> Expr) -> Step {
    let nb = batch.len();
    let rank = nb + 3;
    let bdims: Vec<usize> = (0..nb).collect();
    let (row, col, p) = (nb, nb + 1, nb + 2);
    let value = Expr::bin(BinOp::Mul, a.load(&bdims, row, p, rank), b.load(&bdims, p, col, rank));
    // Loads in `finish` are indexed by every dim (the reduced one with stride 0).
    let old = || c.load(&bdims, row, col, rank);
    let finish = finish(Expr::Acc, &old);
    let mut out_strides = vec![0i64; nb + 2];
    for (d, s) in c.batch_strides.iter().enumerate().take(nb) {
        out_strides[d] = *s;
    }
    out_strides[row] = c.rs;
    out_strides[col] = c.cs;
    let out = Access { mem: c.mem, dtype: DType::F32, offset: c.offset, strides: out_strides };
    let mut dims = batch.to_vec();
    dims.extend([m, n, k]);
    Step::Reduce(Reduce { dims, n_outer: nb + 2, acc: DType::F32, init: Lit::F32(0.0), combine: BinOp::Add, value, finish, out })
}

/// For every point of `batch`: `C = act(alpha·A·B + bias + residual)` (f32) as a loop nest,
/// for a backend without `sgemm_epilogue`: a reduction over k whose finish adds the bias
/// and residual (read at C's row and column) and applies the activation, in the order the
/// kernel does.
#[allow(clippy::too_many_arguments)]
pub fn sgemm_epilogue_loops(lw: &mut Lw, batch: Vec<usize>, mnk: [usize; 3], alpha: f32, a: &Matrix, b: &Matrix, bias: Option<&Matrix>, residual: Option<&Matrix>, c: &Matrix, act: Act) {
    let nb = batch.len();
    let (rank, bdims): (usize, Vec<usize>) = (nb + 3, (0..nb).collect());
    let step = gemm_reduce(&batch, mnk, [a, b, c], |acc, _| {
        let mut v = if alpha == 1.0 { acc } else { Expr::bin(BinOp::Mul, Expr::Lit(Lit::F32(alpha)), acc) };
        for addend in [bias, residual].into_iter().flatten() {
            v = Expr::bin(BinOp::Add, v, addend.load(&bdims, nb, nb + 1, rank));
        }
        super::fused::act_expr(act, v)
    });
    lw.push(step);
}

/// For every point of `batch`: `C = act(alpha·A·B + bias + residual)` (f32), by the
/// runtime's `sgemm_epilogue`; `params` is a weights blob holding an `abi::GemmParams`
/// whose sizes and strides are the matrices' own. With `packed_b`, B is a weights blob
/// packed by `neoc_runtime::kernels::pack_gemm_b` (the same at every batch point) and the
/// call goes to `sgemm_packed_b`.
#[allow(clippy::too_many_arguments)]
pub fn sgemm_epilogue(lw: &mut Lw, batch: Vec<usize>, params: Mem, a: &Matrix, b: &Matrix, bias: Option<&Matrix>, residual: Option<&Matrix>, c: &Matrix, packed_b: bool) -> Result<()> {
    let kernel = if packed_b { Kernel::SgemmPackedB } else { Kernel::SgemmEpilogue };
    lw.caps.need(kernel, "a GEMM with a fused epilogue")?;
    let opt = |m: Option<&Matrix>| m.map_or(CallArg::Null, Matrix::arg);
    let args = vec![CallArg::buf(params), a.arg(), b.arg(), opt(bias), opt(residual), c.arg()];
    lw.push(Step::Call(Call { kernel, batch, args }));
    Ok(())
}

/// A constant k×n matrix packed at compile time into the runtime GEMM's layout, as a
/// weights blob ([`pack_constant_b`]), for [`sgemm_packed`].
#[derive(Clone, Copy, Debug)]
pub struct PackedB {
    pub blob: Mem,
    pub k: usize,
    pub n: usize,
}

/// B, a constant k×n matrix (element (p, j) at `b[p·rsb + j·csb]`), packed for
/// `sgemm_packed_b` as a constant MatMul weight is; `None` where the backend does not
/// pack weights or the product is empty (then use [`sgemm`]).
pub fn pack_constant_b(lw: &mut Lw, k: usize, n: usize, b: &[f32], [rsb, csb]: [isize; 2]) -> Result<Option<PackedB>> {
    if !lw.caps.packs_gemm_weights() || n == 0 || k == 0 {
        return Ok(None);
    }
    let packed = neoc_runtime::kernels::pack_gemm_b(k, n, b, rsb, csb).ok_or_else(|| anyhow::anyhow!("a constant B of {} elements is smaller than {k}×{n}", b.len()))?;
    Ok(Some(PackedB { blob: lw.blob(packed.iter().flat_map(|v| v.to_le_bytes()).collect()), k, n }))
}

/// For every point of `batch`: `C = A·B` (f32, m rows) with B packed by
/// [`pack_constant_b`], by `sgemm_packed_b` (batch dims that only step A's and C's rows
/// fold into the rows first). C's columns must be contiguous.
pub fn sgemm_packed(lw: &mut Lw, batch: Vec<usize>, m: usize, a: &Matrix, b: PackedB, c: &Matrix) -> Result<()> {
    anyhow::ensure!(c.cs == 1, "sgemm_packed_b writes rows of contiguous columns");
    let (mut batch, mut m, mut a, mut c) = (batch, m, a.clone(), c.clone());
    let mut packed_b = Matrix { mem: b.blob, offset: 0, batch_strides: vec![0; batch.len()], rs: 0, cs: 0 };
    fold_batch_into_rows(&mut batch, &mut m, b.n, [&mut a, &mut packed_b, &mut c]);
    let batch = if m == 0 { vec![0] } else { batch };
    let params = GemmParams {
        m: m as u64,
        n: b.n as u64,
        k: b.k as u64,
        rsa: a.rs,
        csa: a.cs,
        rsb: 0,
        csb: 0,
        rsc: c.rs,
        csc: c.cs,
        rs_bias: 0,
        cs_bias: 0,
        rs_residual: 0,
        cs_residual: 0,
        alpha: 1.0,
        act: neoc_runtime::abi::Activation::None as u32,
        act_alpha: 0.0,
        act_beta: 0.0,
    };
    let params = lw.blob(pod_bytes(&params));
    sgemm_epilogue(lw, batch, params, &a, &packed_b, None, None, &c, true)
}

/// The runtime's `conv`: `params` is a weights blob holding an `abi::ConvParams`.
#[allow(clippy::too_many_arguments)]
pub fn conv(lw: &mut Lw, params: Mem, x: Mem, w: Mem, bias: Option<Mem>, residual: Option<Mem>, y: Mem, scratch: Option<Mem>) -> Result<()> {
    lw.caps.need(Kernel::Conv, "a convolution")?;
    let args = vec![CallArg::buf(params), CallArg::buf(x), CallArg::buf(w), CallArg::opt(bias), CallArg::opt(residual), CallArg::buf(y), CallArg::opt(scratch)];
    lw.push(Step::Call(Call::new(Kernel::Conv, args)));
    Ok(())
}

/// The runtime's `pool`: `params` is a weights blob holding an `abi::PoolParams`.
pub fn pool(lw: &mut Lw, params: Mem, x: Mem, y: Mem, indices: Option<Mem>) -> Result<()> {
    lw.caps.need(Kernel::Pool, "pooling")?;
    lw.push(Step::Call(Call::new(Kernel::Pool, vec![CallArg::buf(params), CallArg::buf(x), CallArg::buf(y), CallArg::opt(indices)])));
    Ok(())
}

/// The runtime's string kernel: `params` is a weights blob naming the op
/// (`neoc_runtime::kernels::strings`); it reads `a` and `b` and writes `c`.
pub fn strings(lw: &mut Lw, params: Mem, a: Option<Mem>, b: Option<Mem>, c: Mem) -> Result<()> {
    lw.caps.need(Kernel::Strings, "a string operation")?;
    lw.push(Step::Call(Call::new(Kernel::Strings, vec![CallArg::buf(params), CallArg::opt(a), CallArg::opt(b), CallArg::buf(c)])));
    Ok(())
}

/// The bytes of a `#[repr(C)]` plain-data parameter block.
pub(super) fn pod_bytes<T: Copy>(v: &T) -> Vec<u8> {
    // SAFETY: `T` is one of the ABI's `#[repr(C)]` parameter structs: integers and floats
    // only, whose padding (none, by their layout) would be the only uninitialised bytes.
    unsafe { std::slice::from_raw_parts(v as *const T as *const u8, std::mem::size_of::<T>()) }.to_vec()
}

/// A parameter block's spatial array: the first `v.len()` entries from `v`, the rest `fill`.
pub(super) fn spatial_array(v: &[usize], fill: u64) -> [u64; MAX_SPATIAL] {
    let mut a = [fill; MAX_SPATIAL];
    for (i, &x) in v.iter().enumerate() {
        a[i] = x as u64;
    }
    a
}

#[cfg(test)]
mod tests {
    use neoc_runtime::abi::Kernel;

    use crate::driver::{from_runtime, to_runtime};
    use crate::lower::Caps;
    use crate::lower::test_util::ramp;
    use crate::target::Target;

    /// A backend without `sgemm` gets GEMMs as loop nests: batched MatMul with a broadcast
    /// operand, and Gemm with transposes, alpha and beta·C. Compiled with the CPU code
    /// generator, they match the reference evaluator. The sums run over k ≤ 7 products of
    /// ramp values (multiples of 1/8 below 1.5): exact in f32 in any order, so the
    /// comparison is exact.
    #[test]
    fn gemm_without_the_kernel_is_a_loop_nest() {
        const NO_GEMM: Caps = Caps { backend: "test", kernels: &[Kernel::Memcpy, Kernel::Memset, Kernel::ParallelFor, Kernel::MathF32, Kernel::MathF64], pack_weights: false };
        let text = "graph(%a: f32[2,3,7], %b: f32[7,5], %x: f32[7,3], %y: f32[4,7], %c: f32[3,4]) {\n  %m = MatMul(%a, %b) : f32[2,3,5]\n  %g = Gemm{alpha=0.5f, beta=2.0f, transA=1, transB=1}(%x, %y, %c) : f32[3,4]\n  return %m, %g\n}";
        let g = crate::ir::parse::parse_graph(text).unwrap();
        let lowered = crate::lower::lower(&g, &NO_GEMM).expect("lowers without sgemm");
        assert!(lowered.steps.iter().all(|s| !matches!(s, crate::kernel_ir::Step::Call(c) if c.kernel == Kernel::Sgemm)));
        let inputs = [ramp(&[2, 3, 7], 0.125, 0.0), ramp(&[7, 5], 0.0625, 0.25), ramp(&[7, 3], 0.125, 0.0), ramp(&[4, 7], 0.125, -0.5), ramp(&[3, 4], 0.25, 0.0)];
        let want = crate::eval::run(&g, &inputs).unwrap();
        let art = crate::backend::cpu::compile_with_caps(&g, &Target::host(), &NO_GEMM).unwrap();
        let model = neoc_runtime::Model::from_bytes(&art.bytes).unwrap();
        let ins: Vec<_> = inputs.iter().map(|t| to_runtime(t).unwrap()).collect();
        let got: Vec<_> = model.run(&ins).unwrap().iter().map(|t| from_runtime(t).unwrap()).collect();
        assert_eq!(got, want);
        // With the kernel, the same graph calls it.
        let lowered = crate::lower::lower(&g, &Caps::CPU).unwrap();
        assert!(lowered.steps.iter().any(|s| matches!(s, crate::kernel_ir::Step::Call(c) if c.kernel == Kernel::Sgemm)));
    }

    /// Batch dims fold into rows only where B stays put and A's and C's rows continue.
    #[test]
    fn batch_dims_fold_into_rows_only_where_the_rows_continue() {
        use super::{Matrix, fold_batch_into_rows};
        use crate::kernel_ir::Mem;
        let mat = |batch_strides: Vec<i64>, rs: i64| Matrix { mem: Mem::Temp(0), offset: 0, batch_strides, rs, cs: 1 };
        let fold = |batch: Vec<usize>, m: usize, [a, b, c]: [Matrix; 3]| {
            let (mut batch, mut m, mut a, mut b, mut c) = (batch, m, a, b, c);
            fold_batch_into_rows(&mut batch, &mut m, 3, [&mut a, &mut b, &mut c]);
            (batch, m, a.rs, a.batch_strides, b.batch_strides, c.rs, c.batch_strides)
        };
        // One row per time step (an LSTM's input projection): any row stride, the steps' strides become it.
        assert_eq!(fold(vec![32], 1, [mat(vec![64], 999), mat(vec![0], 1), mat(vec![256], 7)]), (vec![], 32, 64, vec![], vec![], 256, vec![]));
        // Two rows per point whose strides are two rows; then the outer dim moves B and stays.
        assert_eq!(fold(vec![3, 4], 2, [mat(vec![80, 20], 10), mat(vec![9, 0], 1), mat(vec![40, 10], 5)]), (vec![3], 8, 10, vec![80], vec![9], 5, vec![40]));
        // A gap between the points' rows, B moving, or C not moving: nothing folds.
        for mats in [[mat(vec![21], 10), mat(vec![0], 1), mat(vec![10], 5)], [mat(vec![20], 10), mat(vec![3], 1), mat(vec![10], 5)], [mat(vec![20], 10), mat(vec![0], 1), mat(vec![0], 5)]] {
            assert_eq!(fold(vec![4], 2, mats.clone()).1, 2, "{mats:?}");
        }
        // One row per point, but the points' 3-column rows of C overlap (stride 2): no fold.
        assert_eq!(fold(vec![4], 1, [mat(vec![8], 8), mat(vec![0], 1), mat(vec![2], 3)]).1, 1);
    }
}
