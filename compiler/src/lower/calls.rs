//! Calls of the runtime's heavy kernels (GEMM, convolution, pooling, strings), set up from
//! what the lowerings know: GEMM operands as strided matrix views, parameter blocks as
//! weights blobs. The argument order is the kernel table's declaration
//! (`neoc_runtime::abi`); these functions are the only place that spells it out.

use neoc_runtime::abi::Kernel;

use crate::kernel_ir::{Call, CallArg, Mem, Step};

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

/// For every point of `batch`: `C = alpha·A·B + beta·C` (f32), with the runtime's `sgemm`.
/// An empty product (m or n zero) makes no call.
#[allow(clippy::too_many_arguments)]
pub fn sgemm(batch: Vec<usize>, [m, n, k]: [usize; 3], alpha: f32, beta: f32, a: &Matrix, b: &Matrix, c: &Matrix) -> Step {
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
    Step::Call(Call { kernel: Kernel::Sgemm, batch, args })
}

/// For every point of `batch`: `C = act(alpha·A·B + bias + residual)` (f32), by the
/// runtime's `sgemm_epilogue`; `params` is a weights blob holding an `abi::GemmParams`
/// whose sizes and strides are the matrices' own. With `packed_b`, B is a weights blob
/// packed by `neoc_runtime::kernels::pack_gemm_b` (the same at every batch point) and the
/// call goes to `sgemm_packed_b`.
#[allow(clippy::too_many_arguments)]
pub fn sgemm_epilogue(batch: Vec<usize>, params: Mem, a: &Matrix, b: &Matrix, bias: Option<&Matrix>, residual: Option<&Matrix>, c: &Matrix, packed_b: bool) -> Step {
    let opt = |m: Option<&Matrix>| m.map_or(CallArg::Null, Matrix::arg);
    let args = vec![CallArg::buf(params), a.arg(), b.arg(), opt(bias), opt(residual), c.arg()];
    Step::Call(Call { kernel: if packed_b { Kernel::SgemmPackedB } else { Kernel::SgemmEpilogue }, batch, args })
}

/// The runtime's `conv`: `params` is a weights blob holding an `abi::ConvParams`.
pub fn conv(params: Mem, x: Mem, w: Mem, bias: Option<Mem>, residual: Option<Mem>, y: Mem, scratch: Option<Mem>) -> Step {
    let args = vec![CallArg::buf(params), CallArg::buf(x), CallArg::buf(w), CallArg::opt(bias), CallArg::opt(residual), CallArg::buf(y), CallArg::opt(scratch)];
    Step::Call(Call::new(Kernel::Conv, args))
}

/// The runtime's `pool`: `params` is a weights blob holding an `abi::PoolParams`.
pub fn pool(params: Mem, x: Mem, y: Mem, indices: Option<Mem>) -> Step {
    Step::Call(Call::new(Kernel::Pool, vec![CallArg::buf(params), CallArg::buf(x), CallArg::buf(y), CallArg::opt(indices)]))
}

/// The runtime's string kernel: `params` is a weights blob naming the op
/// (`neoc_runtime::kernels::strings`); it reads `a` and `b` and writes `c`.
pub fn strings(params: Mem, a: Option<Mem>, b: Option<Mem>, c: Mem) -> Step {
    Step::Call(Call::new(Kernel::Strings, vec![CallArg::buf(params), CallArg::opt(a), CallArg::opt(b), CallArg::buf(c)]))
}
