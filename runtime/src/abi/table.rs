//! The kernel table: every runtime service compiled code calls, declared once.
//!
//! Each entry names the table field, its function-pointer type, its [`Kernel`] id, the
//! [`KERNEL_ABI_VERSION`] that added it, the function that implements it in this runtime,
//! and its C signature with the role of every argument. From that one declaration follow:
//! - the [`KernelTable`] struct (`#[repr(C)]`, entries in declaration order, only ever
//!   appended) and a function-pointer type per entry;
//! - this runtime's table, [`GENERIC`] (what [`crate::kernels::for_host`] hands out);
//! - what the compiler emits calls from: [`Kernel::offset`], [`Kernel::args`] and
//!   [`Kernel::ret`], and what the kernel IR's verifier checks calls against.
//!
//! Adding a kernel: append an entry here (bumping [`KERNEL_ABI_VERSION`]), write the
//! function, and lower an op to a call of it. Nothing else needs to know.

use std::ffi::c_void;
use std::mem::{offset_of, size_of};

use super::{GemmParams, ConvParams, PoolParams, RunContext, TaskFn, KERNEL_ABI_VERSION};
use crate::kernels;

/// What an argument of a kernel is, for the code that calls it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgKind {
    /// The run's context (`*const RunContext`): compiled code passes its own.
    Context,
    /// A pointer to memory the kernel only reads.
    Read,
    /// A pointer to memory the kernel only writes.
    Write,
    /// A pointer to memory the kernel may read and write.
    ReadWrite,
    /// A pointer to a parameter block in the weights section: `bytes` long (a
    /// `#[repr(C)]` struct of this module), or of a length it states itself when 0.
    Params { bytes: usize },
    Usize,
    Isize,
    I32,
    U32,
    F32,
    F64,
    /// A [`TaskFn`], with its data pointer in the next argument.
    Task,
    /// The data pointer handed to a [`TaskFn`].
    TaskData,
}

impl ArgKind {
    /// Whether the argument is a pointer into the run's memory (a buffer or a parameter
    /// block), as opposed to a scalar, the context or a task.
    pub fn is_buffer(self) -> bool {
        matches!(self, ArgKind::Read | ArgKind::Write | ArgKind::ReadWrite | ArgKind::Params { .. })
    }
    /// Whether the kernel may read through the argument.
    pub fn reads(self) -> bool {
        matches!(self, ArgKind::Read | ArgKind::ReadWrite | ArgKind::Params { .. })
    }
    /// Whether the kernel may write through the argument.
    pub fn writes(self) -> bool {
        matches!(self, ArgKind::Write | ArgKind::ReadWrite)
    }
}

/// One argument of a kernel's C signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arg {
    pub name: &'static str,
    pub kind: ArgKind,
}

/// What a kernel returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ret {
    Nothing,
    /// An `i32` status: 0, or an error code ([`super::errors`]) the caller returns at once.
    Status,
    U32,
    F32,
    F64,
}

macro_rules! kernel_table {
    ($(
        $(#[doc = $doc:literal])*
        $field:ident: $Fn:ident, $Variant:ident, since $since:literal, $imp:path,
        fn($($arg:ident: $kind:ident $(<$t:ty>)?),* $(,)?) -> $ret:ident;
    )*) => {
        $(
            $(#[doc = $doc])*
            pub type $Fn = unsafe extern "C" fn($($arg: kernel_table!(@ty $kind $(<$t>)?)),*) -> kernel_table!(@ret $ret);
        )*

        /// Runtime services the compiled code calls. Entries are only ever appended.
        #[repr(C)]
        #[derive(Debug)]
        pub struct KernelTable {
            /// [`KERNEL_ABI_VERSION`] of the runtime that built this table.
            pub version: u32,
            /// Zero; keeps the function pointers 8-byte aligned explicitly.
            pub reserved: u32,
            $($(#[doc = $doc])* pub $field: $Fn,)*
        }

        /// This runtime's table: the portable kernels, which pick ISA-specific code paths
        /// themselves at run time.
        pub static GENERIC: KernelTable = KernelTable {
            version: KERNEL_ABI_VERSION,
            reserved: 0,
            $($field: $imp,)*
        };

        /// The entries of the [`KernelTable`], by name.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Kernel {
            $($Variant,)*
        }

        impl Kernel {
            /// Every entry, in table order.
            pub const ALL: &'static [Kernel] = &[$(Kernel::$Variant),*];

            /// The field's name (`sgemm`, `conv`, …), as text forms print it.
            pub fn name(self) -> &'static str {
                match self { $(Kernel::$Variant => stringify!($field)),* }
            }

            /// The entry named `name`.
            pub fn from_name(name: &str) -> Option<Kernel> {
                Kernel::ALL.iter().copied().find(|k| k.name() == name)
            }

            /// The [`KERNEL_ABI_VERSION`] that added the entry.
            pub fn since(self) -> u32 {
                match self { $(Kernel::$Variant => $since),* }
            }

            /// Byte offset of the entry's function pointer in the [`KernelTable`].
            pub fn offset(self) -> usize {
                match self { $(Kernel::$Variant => offset_of!(KernelTable, $field)),* }
            }

            /// The C signature's arguments, in order.
            pub fn args(self) -> &'static [Arg] {
                match self {
                    $(Kernel::$Variant => &[$(Arg { name: stringify!($arg), kind: kernel_table!(@kind $kind $(<$t>)?) }),*],)*
                }
            }

            /// What the function returns.
            pub fn ret(self) -> Ret {
                match self { $(Kernel::$Variant => kernel_table!(@retkind $ret)),* }
            }
        }

        // Entries are appended in version order, none newer than the table itself.
        const _: () = {
            let since = [$($since),*];
            let mut i = 0;
            while i < since.len() {
                assert!(since[i] <= KERNEL_ABI_VERSION);
                assert!(i == 0 || since[i - 1] <= since[i]);
                i += 1;
            }
        };
    };

    (@ty ctx) => { *const RunContext };
    (@ty read<$t:ty>) => { *const $t };
    (@ty write<$t:ty>) => { *mut $t };
    (@ty readwrite<$t:ty>) => { *mut $t };
    (@ty params<$t:ty>) => { *const $t };
    (@ty blob) => { *const u8 };
    (@ty task) => { TaskFn };
    (@ty task_data) => { *mut c_void };
    (@ty $scalar:ident) => { $scalar };

    (@kind ctx) => { ArgKind::Context };
    (@kind read<$t:ty>) => { ArgKind::Read };
    (@kind write<$t:ty>) => { ArgKind::Write };
    (@kind readwrite<$t:ty>) => { ArgKind::ReadWrite };
    (@kind params<$t:ty>) => { ArgKind::Params { bytes: size_of::<$t>() } };
    (@kind blob) => { ArgKind::Params { bytes: 0 } };
    (@kind task) => { ArgKind::Task };
    (@kind task_data) => { ArgKind::TaskData };
    (@kind usize) => { ArgKind::Usize };
    (@kind isize) => { ArgKind::Isize };
    (@kind i32) => { ArgKind::I32 };
    (@kind u32) => { ArgKind::U32 };
    (@kind f32) => { ArgKind::F32 };
    (@kind f64) => { ArgKind::F64 };

    (@ret nothing) => { () };
    (@ret status) => { i32 };
    (@ret $scalar:ident) => { $scalar };
    (@retkind nothing) => { Ret::Nothing };
    (@retkind status) => { Ret::Status };
    (@retkind u32) => { Ret::U32 };
    (@retkind f32) => { Ret::F32 };
    (@retkind f64) => { Ret::F64 };
}

kernel_table! {
    /// Single-precision GEMM: `C = alpha * A * B + beta * C`, with `A` m×k, `B` k×n, `C` m×n.
    ///
    /// Each matrix is given by a pointer and a row stride and a column stride **in elements**
    /// (so element (i, j) of C is at `c[i * rsc + j * csc]`): row-major is `(ld, 1)`,
    /// a transposed operand is `(1, ld)`. When `beta == 0`, C is not read (it may hold NaN
    /// or garbage), as in BLAS. `ctx` is the run's context (kernels read `thread_count`).
    sgemm: SgemmFn, Sgemm, since 1, kernels::gemm::sgemm,
    fn(ctx: ctx, m: usize, n: usize, k: usize, alpha: f32, a: read<f32>, rsa: isize, csa: isize,
       b: read<f32>, rsb: isize, csb: isize, beta: f32, c: readwrite<f32>, rsc: isize, csc: isize) -> nothing;

    /// Runs `task` over `0..n`, split into contiguous ranges over at most `ctx.thread_count`
    /// threads (the calling thread is one of them); every index is covered exactly once.
    /// Returns 0, or the first non-zero code a task returned (the other ranges still run).
    /// Tasks must be safe to run concurrently on disjoint ranges.
    parallel_for: ParallelForFn, ParallelFor, since 1, kernels::generic::parallel_for,
    fn(ctx: ctx, n: usize, task: task, task_ctx: task_data) -> status;

    /// `memcpy`: copies `n` bytes; the ranges must not overlap.
    memcpy: MemcpyFn, Memcpy, since 1, kernels::generic::memcpy,
    fn(dst: write<u8>, src: read<u8>, n: usize) -> nothing;

    /// `memset`: sets `n` bytes to the low byte of `value`.
    memset: MemsetFn, Memset, since 1, kernels::generic::memset,
    fn(dst: write<u8>, value: i32, n: usize) -> nothing;

    /// Scalar math on f32 for ops the code generator does not expand inline: `op` is a
    /// [`super::MathOp`] as u32, `b` is ignored by one-argument ops.
    math_f32: MathF32Fn, MathF32, since 1, kernels::math::math_f32,
    fn(op: u32, a: f32, b: f32) -> f32;

    /// As [`MathF32Fn`], on f64.
    math_f64: MathF64Fn, MathF64, since 1, kernels::math::math_f64,
    fn(op: u32, a: f64, b: f64) -> f64;

    /// An N-d convolution with a fused epilogue ([`ConvParams`]): `bias` (c_out values) and
    /// `residual` (y's shape) may be null. `scratch` has `params.scratch_bytes` bytes,
    /// 64-byte aligned. `y` and `scratch` overlap no other buffer, except that `residual`
    /// may be exactly `y` (the conv then accumulates onto the residual in place). Returns 0,
    /// or an error code (`ERR_BAD_CONV_PARAMS`, `ERR_CONV_BUFFERS`).
    conv: ConvFn, Conv, since 1, kernels::conv::conv,
    fn(ctx: ctx, params: params<ConvParams>, x: read<f32>, w: read<f32>, bias: read<f32>,
       residual: read<f32>, y: write<f32>, scratch: write<u8>) -> status;

    /// N-d pooling ([`PoolParams`]): `indices` (i64, y's shape, may be null; only for Max)
    /// receives Max's argmax as a flat index into x's (N, C, spatial...) layout, row-major.
    /// A window that reads no input gives 0 and index -1 for Max, and 0/0 (NaN) for Average
    /// without `count_include_pad`. Returns 0, or an error code (`ERR_BAD_POOL_PARAMS`,
    /// `ERR_POOL_BUFFERS`).
    pool: PoolFn, Pool, since 1, kernels::pool::pool,
    fn(ctx: ctx, params: params<PoolParams>, x: read<f32>, y: write<f32>, indices: write<i64>) -> status;

    /// Decodes one element of a low-precision type (the 8-, 4- and 2-bit floats and
    /// integers): `dtype` is its ONNX `DataType` code, `code` holds the element in its low
    /// bits. Unknown dtypes give NaN. Rules: [`crate::kernels::lowbit`].
    low_decode: LowDecodeFn, LowDecode, since 2, kernels::lowbit::low_decode,
    fn(dtype: u32, code: u32) -> f32;

    /// Encodes `v` as a low-precision type with ONNX Cast's rules, returning the code in the
    /// low bits. `flags`: [`super::LOW_SATURATE`] or'ed with one of the `LOW_ROUND_*` modes
    /// (f8e8m0 only). Unknown dtypes give 0.
    low_encode: LowEncodeFn, LowEncode, since 2, kernels::lowbit::low_encode,
    fn(dtype: u32, v: f32, flags: u32) -> u32;

    /// One string operation. `params` points into the weights section at a parameter blob
    /// that names the operation and its sizes (`kernels::strings` documents the encoding);
    /// `a`, `b` and `c` are the operation's buffers (unused ones may be null). A string
    /// tensor in compiled memory is an array of u64 **handles** into the run's string heap
    /// (`RunContext::strings`): 0 is the empty string, so zeroed memory holds empty
    /// strings. The kernel checks every handle, offset and length it reads, including the
    /// blob's own place in the weights, so a corrupt blob or handle is an error code, never
    /// undefined behaviour. Returns 0, or an error code (`ERR_STRINGS`,
    /// `ERR_STRINGS_PARAMS`, `ERR_STRINGS_FEATURE`). The heap is the run's, unsynchronised:
    /// call it from the thread running the entry point, never from `parallel_for` tasks.
    strings: StringsFn, Strings, since 4, kernels::strings::strings,
    fn(ctx: ctx, params: blob, a: read<u8>, b: read<u8>, c: write<u8>) -> status;

    /// A GEMM with a fused epilogue, `C = act(alpha·A·B + bias + residual)` ([`GemmParams`]):
    /// `bias` and `residual` may be null. C's rows are contiguous (`csc == 1`) and C overlaps
    /// none of the other buffers. Returns 0, or `ERR_BAD_GEMM_PARAMS` for an unknown
    /// activation or `csc != 1`.
    sgemm_epilogue: SgemmEpilogueFn, SgemmEpilogue, since 5, kernels::gemm_epilogue::sgemm_epilogue,
    fn(ctx: ctx, params: params<GemmParams>, a: read<f32>, b: read<f32>, bias: read<f32>,
       residual: read<f32>, c: write<f32>) -> status;

    /// `sgemm_epilogue` with B packed at compile time by `kernels::pack_gemm_b` for the
    /// params' k and n (`rsb` and `csb` are not read).
    sgemm_packed_b: SgemmPackedBFn, SgemmPackedB, since 6, kernels::gemm_epilogue::sgemm_packed_b,
    fn(ctx: ctx, params: params<GemmParams>, a: read<f32>, b: read<f32>, bias: read<f32>,
       residual: read<f32>, c: write<f32>) -> status;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_layout_follows_the_declaration() {
        // Function pointers follow the two u32 header fields, 8 bytes each, in order.
        for (i, k) in Kernel::ALL.iter().enumerate() {
            assert_eq!(k.offset(), 8 + 8 * i, "{k:?}");
            assert_eq!(Kernel::from_name(k.name()), Some(*k));
        }
        assert_eq!(size_of::<KernelTable>(), 8 + 8 * Kernel::ALL.len());
        assert_eq!(Kernel::Conv.args()[1], Arg { name: "params", kind: ArgKind::Params { bytes: size_of::<ConvParams>() } });
        assert_eq!(Kernel::Memcpy.ret(), Ret::Nothing);
        assert_eq!(Kernel::SgemmPackedB.since(), 6);
    }
}
