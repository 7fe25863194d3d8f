//! Runtime kernels the compiled code calls through the [`KernelTable`].
//!
//! `generic` holds plain, portable, correct versions. Faster per-ISA versions will
//! override entries after feature detection (AVX2 → AVX-512 → VNNI; NEON), each
//! property-tested against the generic one; [`for_host`] is where that choice is made.

mod erf;
pub mod generic;
pub mod math;

pub use erf::erf;

use crate::abi::{KERNEL_ABI_VERSION, KernelTable};

/// The generic table.
pub static GENERIC: KernelTable = KernelTable {
    version: KERNEL_ABI_VERSION,
    reserved: 0,
    sgemm: generic::sgemm,
    parallel_for: generic::parallel_for,
    memcpy: generic::memcpy,
    memset: generic::memset,
    math_f32: math::math_f32,
    math_f64: math::math_f64,
    conv: generic::conv_unimplemented,
    pool: generic::pool_unimplemented,
};

/// The best table for this machine. For now, the generic one.
pub fn for_host() -> &'static KernelTable {
    &GENERIC
}
