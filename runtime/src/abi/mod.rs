//! The contract between compiled code and the runtime.
//!
//! The artifact's code section holds position-independent machine code with **no
//! relocations**: the runtime copies it into its own memory, makes it read+execute and
//! calls `code + entry_offset` as an [`EntryFn`] with the platform's C calling convention
//! (the artifact records which one, and load refuses a mismatch). Everything the code
//! needs from the outside arrives through the one [`RunContext`] argument; runtime
//! services (GEMM, threads, memcpy) are called through the [`KernelTable`] it points to.
//!
//! Layouts are `#[repr(C)]` and fixed; the `*_OFFSET` constants below are what the code
//! generator should use (they are checked against the Rust layout at compile time, and
//! are the same on every 64-bit target).

use std::ffi::c_void;
use std::mem::offset_of;

pub mod errors;
mod table;

pub use table::*;

/// The version of the [`KernelTable`] layout and of the meaning of its entries.
///
/// The table only ever grows at its end, and each addition bumps this number. An
/// artifact records the version its code was built against; a runtime loads artifacts
/// built for its own version or any older one, and refuses newer ones with a clear error.
///
/// 2: `low_decode` and `low_encode` (the 8-, 4- and 2-bit types).
/// 3: conv weight layout 2 (channel-blocked depthwise), and layout 1 on the im2col path.
/// 4: `strings` (string tensors).
/// 5: `sgemm_epilogue`.
/// 6: `sgemm_packed_b`.
/// 7: activations 7 and 8 (GELU, erf and tanh forms) in the conv and GEMM epilogues.
/// 8: conv weight layout 3 (Winograd F(4×4, 3×3) and F(2×2, 3×3)), and layout 4
/// (layout 1 in panels of 12 output channels, which neoc writes instead of layout 1).
pub const KERNEL_ABI_VERSION: u32 = 8;

/// The runtime services: the kernel-table entries that are not numeric kernels (threads,
/// copies, fills) plus the scalar math functions of the C library (`math_f32`/`math_f64`:
/// one call per element, for the functions the code generator does not expand inline).
/// Code for aarch64 targets calls these and nothing else; GEMM, convolution, pooling and
/// the low-bit codecs are generated code in the artifact (or refused), so a host that runs
/// it (the Rust runtime, or the C host in `tests/qemu/`) needs only these five functions.
pub const SERVICES: &[Kernel] = &[Kernel::ParallelFor, Kernel::Memcpy, Kernel::Memset, Kernel::MathF32, Kernel::MathF64];

/// The single argument of the entry point. All pointers are valid for the whole call.
#[repr(C)]
#[derive(Debug)]
pub struct RunContext {
    /// One pointer per graph input, in the artifact's input order. Each points to the
    /// input's dense row-major little-endian bytes, aligned to at least the element's
    /// scalar size ([`crate::DType::align`]; no more is promised, so vector loads must
    /// be unaligned ones). Read-only; input buffers do not overlap outputs.
    pub inputs: *const *const u8,
    /// One pointer per graph output, in the artifact's output order, to buffers of
    /// exactly the output's byte size, aligned as inputs are. Write-only as far as the
    /// caller is concerned: their contents on entry are unspecified.
    pub outputs: *const *mut u8,
    /// Scratch memory of the artifact's `arena_size` bytes, 64-byte aligned, exclusive to
    /// this call. Its contents on entry are unspecified (not necessarily zero).
    pub arena: *mut u8,
    /// The artifact's weights section, 64-byte aligned, read-only.
    pub weights: *const u8,
    /// The runtime's kernels; the table is at least as new as the artifact's
    /// `kernel_abi_version`.
    pub kernels: *const KernelTable,
    /// How many threads the code may use for intra-op parallelism (always ≥ 1). Code
    /// does not make threads itself: it passes work to `kernels.parallel_for`, and
    /// kernels read this number from the context they are given.
    pub thread_count: usize,
    /// The run's string heap (a `kernels::strings::StringHeap`), read only by the
    /// [`KernelTable::strings`] kernel; compiled code passes the context on and never
    /// reads this field. Null when the caller made no heap (the string kernel then fails
    /// with `kernels::ERR_STRINGS`). Added with kernel ABI version 2.
    pub strings: *mut c_void,
    /// The run's worker threads and scratch (a `pool::Workers`), used only by the
    /// runtime's own kernels (`parallel_for`, the GEMM's packing buffers); compiled code
    /// passes the context on and never reads this field. Null: kernels run on the
    /// calling thread or on threads spawned for the call, and allocate their scratch.
    /// Added after kernel ABI version 5; artifacts never read it, so it needs no version.
    pub workers: *const c_void,
}

/// The entry point: `code + entry_offset`. Returns 0 on success, anything else is an
/// error code that [`crate::RunError::Code`] hands to the caller.
pub type EntryFn = unsafe extern "C" fn(ctx: *const RunContext) -> i32;

/// A GEMM with a fused epilogue: `C = act(alpha·A·B + bias + residual)` (f32), for
/// [`SgemmEpilogueFn`] and [`SgemmPackedBFn`]. Strides are in elements; `bias` and `residual` are read at
/// `r·rs + c·cs` for element (r, c) of C (a stride of 0 broadcasts, e.g. a per-column
/// bias has `rs_bias == 0`). Unlike [`SgemmFn`]'s `beta`, C is never read.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GemmParams {
    pub m: u64,
    pub n: u64,
    pub k: u64,
    pub rsa: i64,
    pub csa: i64,
    pub rsb: i64,
    pub csb: i64,
    pub rsc: i64,
    pub csc: i64,
    pub rs_bias: i64,
    pub cs_bias: i64,
    pub rs_residual: i64,
    pub cs_residual: i64,
    pub alpha: f32,
    /// An [`Activation`] as u32.
    pub act: u32,
    pub act_alpha: f32,
    pub act_beta: f32,
}

/// A piece of parallel work: handle indices `begin..end`; return 0, or an error code.
pub type TaskFn = unsafe extern "C" fn(task_ctx: *mut c_void, begin: usize, end: usize) -> i32;

/// [`LowEncodeFn`] flag: out-of-range values saturate instead of becoming inf/NaN.
pub const LOW_SATURATE: u32 = 1;
/// [`LowEncodeFn`] round modes for f8e8m0 (the other types round to nearest even).
pub const LOW_ROUND_UP: u32 = 0;
pub const LOW_ROUND_DOWN: u32 = 2;
pub const LOW_ROUND_NEAREST: u32 = 4;

/// The functions behind [`KernelTable::math_f32`] / [`KernelTable::math_f64`].
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MathOp {
    Exp = 0,
    Log = 1,
    Tanh = 2,
    Erf = 3,
    Sin = 4,
    Cos = 5,
    Tan = 6,
    Asin = 7,
    Acos = 8,
    Atan = 9,
    Sinh = 10,
    Cosh = 11,
    Asinh = 12,
    Acosh = 13,
    Atanh = 14,
    /// `a.powf(b)`.
    Pow = 15,
    /// C `fmod(a, b)` (the dividend's sign).
    Fmod = 16,
    /// `1 / (1 + exp(-a))`, computed without overflow for large |a|.
    Sigmoid = 17,
    /// `ln(1 + exp(a))`, without overflow.
    Softplus = 18,
    /// `exp(a) - 1`.
    Expm1 = 19,
    /// `ln(1 + a)`.
    Log1p = 20,
}

impl MathOp {
    pub const ALL: [MathOp; 21] = [
        MathOp::Exp,
        MathOp::Log,
        MathOp::Tanh,
        MathOp::Erf,
        MathOp::Sin,
        MathOp::Cos,
        MathOp::Tan,
        MathOp::Asin,
        MathOp::Acos,
        MathOp::Atan,
        MathOp::Sinh,
        MathOp::Cosh,
        MathOp::Asinh,
        MathOp::Acosh,
        MathOp::Atanh,
        MathOp::Pow,
        MathOp::Fmod,
        MathOp::Sigmoid,
        MathOp::Softplus,
        MathOp::Expm1,
        MathOp::Log1p,
    ];

    pub fn from_u32(v: u32) -> Option<MathOp> {
        MathOp::ALL.get(v as usize).copied()
    }
}

/// Up to this many spatial dimensions in [`ConvParams`] and [`PoolParams`].
pub const MAX_SPATIAL: usize = 3;

/// Activation applied by a kernel's epilogue (after bias and residual).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Activation {
    None = 0,
    Relu = 1,
    /// `min(max(x, alpha), beta)`.
    Clip = 2,
    /// `x < 0 ? alpha * x : x`.
    LeakyRelu = 3,
    Sigmoid = 4,
    /// `x * sigmoid(x)`.
    Silu = 5,
    /// `x * clamp(x/6 + 1/2, 0, 1)`.
    HardSwish = 6,
    /// `x/2 · (1 + erf(x/√2))` (ONNX Gelu, approximate = "none").
    Gelu = 7,
    /// `x/2 · (1 + tanh(√(2/π)·(x + 0.044715·x³)))` (ONNX Gelu, approximate = "tanh").
    GeluTanh = 8,
}

impl Activation {
    pub const ALL: [Activation; 9] = [
        Activation::None,
        Activation::Relu,
        Activation::Clip,
        Activation::LeakyRelu,
        Activation::Sigmoid,
        Activation::Silu,
        Activation::HardSwish,
        Activation::Gelu,
        Activation::GeluTanh,
    ];

    /// The activation with code `v`, if there is one.
    pub fn from_u32(v: u32) -> Option<Activation> {
        Activation::ALL.get(v as usize).copied()
    }
}

/// An N-d convolution (N = `spatial`, 1 to [`MAX_SPATIAL`]) on f32 in NC(D)HW layout,
/// with groups, strides, dilations and begin padding (end padding follows from the
/// sizes). Unused trailing entries of the arrays are 1 (sizes, strides, dilations) or 0
/// (pads). `y = act(conv(x, w) + bias + residual)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConvParams {
    pub spatial: u32,
    pub group: u32,
    pub batch: u64,
    pub c_in: u64,
    pub c_out: u64,
    pub in_size: [u64; MAX_SPATIAL],
    pub out_size: [u64; MAX_SPATIAL],
    pub kernel: [u64; MAX_SPATIAL],
    pub stride: [u64; MAX_SPATIAL],
    pub dilation: [u64; MAX_SPATIAL],
    pub pad_begin: [u64; MAX_SPATIAL],
    /// An [`Activation`] as u32.
    pub act: u32,
    /// 0: `w` is ONNX's (C_out, C_in/group, k...) layout. 1: pointwise and im2col weights
    /// packed in panels of 6 output channels (kernel ABI 3 to 7; still run). 4: the same in
    /// panels of 12, by [`crate::kernels::pack_conv_weights`]. 2: depthwise weights packed in blocks of 8
    /// channels by [`crate::kernels::pack_depthwise_weights`] (the kernel then computes
    /// on channel blocks). 3: 3×3 weights transformed for Winograd's algorithm by
    /// [`crate::kernels::pack_winograd_weights`]. The kernel refuses other values, and
    /// layouts that do not apply to the parameters.
    pub weight_layout: u32,
    pub act_alpha: f32,
    pub act_beta: f32,
    /// Bytes of scratch memory at `scratch`: at least
    /// [`crate::kernels::conv_scratch_bytes`] of these parameters (the compiler calls it
    /// and reserves that much in the arena; the kernel refuses less and uses no more).
    pub scratch_bytes: u64,
}

/// What [`PoolParams`] computes over each window.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PoolKind {
    Max = 0,
    /// The mean; the divisor counts padding when `count_include_pad` is 1.
    Average = 1,
    /// `(sum |x|^p)^(1/p)`.
    Lp = 2,
}

/// N-d pooling on f32 in NC(D)HW layout; `channels` is N*C (every plane is pooled alike).
/// Windows may run past the input (padding and ceil mode): padded positions are ignored
/// by Max and Lp, and counted by Average only when `count_include_pad` is 1 (and then
/// only up to the padded input's end, as ONNX specifies).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PoolParams {
    pub kind: u32,
    pub spatial: u32,
    pub channels: u64,
    pub in_size: [u64; MAX_SPATIAL],
    pub out_size: [u64; MAX_SPATIAL],
    pub kernel: [u64; MAX_SPATIAL],
    pub stride: [u64; MAX_SPATIAL],
    pub dilation: [u64; MAX_SPATIAL],
    pub pad_begin: [u64; MAX_SPATIAL],
    pub pad_end: [u64; MAX_SPATIAL],
    pub count_include_pad: u32,
    pub p: u32,
}

pub const RUN_CONTEXT_INPUTS_OFFSET: usize = 0;
pub const RUN_CONTEXT_OUTPUTS_OFFSET: usize = 8;
pub const RUN_CONTEXT_ARENA_OFFSET: usize = 16;
pub const RUN_CONTEXT_WEIGHTS_OFFSET: usize = 24;
pub const RUN_CONTEXT_KERNELS_OFFSET: usize = 32;
pub const RUN_CONTEXT_THREAD_COUNT_OFFSET: usize = 40;
pub const RUN_CONTEXT_STRINGS_OFFSET: usize = 48;
pub const RUN_CONTEXT_WORKERS_OFFSET: usize = 56;
pub const RUN_CONTEXT_SIZE: usize = 64;

/// Alignment of the arena and the weights section in memory.
pub const ARENA_ALIGN: usize = 64;
pub const WEIGHTS_ALIGN: usize = 64;

// The layout above is for 64-bit targets, the only ones neoc generates code for.
const _: () = assert!(std::mem::size_of::<usize>() == 8, "neoc-runtime needs a 64-bit target");
const _: () = {
    assert!(offset_of!(RunContext, inputs) == RUN_CONTEXT_INPUTS_OFFSET);
    assert!(offset_of!(RunContext, outputs) == RUN_CONTEXT_OUTPUTS_OFFSET);
    assert!(offset_of!(RunContext, arena) == RUN_CONTEXT_ARENA_OFFSET);
    assert!(offset_of!(RunContext, weights) == RUN_CONTEXT_WEIGHTS_OFFSET);
    assert!(offset_of!(RunContext, kernels) == RUN_CONTEXT_KERNELS_OFFSET);
    assert!(offset_of!(RunContext, thread_count) == RUN_CONTEXT_THREAD_COUNT_OFFSET);
    assert!(offset_of!(RunContext, strings) == RUN_CONTEXT_STRINGS_OFFSET);
    assert!(offset_of!(RunContext, workers) == RUN_CONTEXT_WORKERS_OFFSET);
    assert!(std::mem::size_of::<RunContext>() == RUN_CONTEXT_SIZE);
};
