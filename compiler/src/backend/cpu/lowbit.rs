//! Code generation for the low-precision element types: the 8-bit floats (f8e4m3fn,
//! f8e4m3fnuz, f8e5m2, f8e5m2fnuz, f8e8m0), the 4-bit float f4e2m1 and the packed 4- and
//! 2-bit integers (i4, u4, i2, u2).
//!
//! - The floats compute in f32, like f16 and bf16. Their conversion rules (rounding,
//!   saturation, NaN and inf per format) live once, in the runtime
//!   (`neoc_runtime::kernels::lowbit`, the same functions the reference evaluator uses):
//!   loads call [`KernelTable::low_decode`](neoc_runtime::abi::KernelTable::low_decode) on
//!   the stored code, stores and casts call `low_encode` (code that calls no codec kernel,
//!   aarch64's, computes the same inline: [`super::lowbit_inline`]). A cast to one of them rounds to
//!   it (encode, then decode), so the f32 value is exact and the store encodes it unchanged.
//! - The small integers compute as i8 (sign- or zero-extended); a store keeps the low bits,
//!   which is Cast's wrap-around.
//! - The 4- and 2-bit types are packed as ONNX packs them, the first element in the low bits
//!   of the first byte. Their accesses track the element index instead of a byte address
//!   (the byte is `base + index·bits/8`, the bit offset `index·bits mod 8`); a store reads,
//!   masks and writes back its byte, so neighbours in the same byte keep their values.
//!   Steps run one after the other on one thread, so no two writers race on a byte.

use cranelift_codegen::ir::types::{I8, I32, I64};
use cranelift_codegen::ir::{InstBuilder, MemFlagsData, Value};
use cranelift_codegen::isa::CallConv;
use cranelift_frontend::FunctionBuilder;
use neoc_runtime::abi::{self, Kernel};

use crate::tensor::DType;
use crate::tensor::low::RoundMode;

/// `low_encode` flags for a conversion with these options.
pub fn encode_flags(saturate: bool, round_mode: RoundMode) -> u32 {
    round_mode.flags() | if saturate { abi::LOW_SATURATE } else { 0 }
}

/// Flags of a store: the value is already exact in the type (every path to a store of a
/// coded float rounds first), so no rounding happens; were it not, it would round to
/// nearest without saturating.
fn store_flags() -> u32 {
    encode_flags(false, RoundMode::Nearest)
}

fn data_flags() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

/// What the generated code needs to call the runtime's conversions.
pub struct Runtime {
    /// The `*const KernelTable`.
    pub table: Value,
    pub call_conv: CallConv,
    /// Emit the float codecs inline ([`super::lowbit_inline`]) instead of calling
    /// `low_decode`/`low_encode`: for code that calls no codec kernel (aarch64).
    pub inline: bool,
}

impl Runtime {
    fn call(&self, b: &mut FunctionBuilder, kernel: Kernel, args: &[Value]) -> Value {
        let sigref = b.import_signature(super::codegen::kernel_signature(self.call_conv, kernel));
        let f = b.ins().load(I64, MemFlagsData::trusted(), self.table, kernel.offset() as i32);
        let call = b.ins().call_indirect(sigref, f, args);
        b.inst_results(call)[0]
    }

    /// The f32 value of `code` (an i32 holding the code in its low bits).
    pub fn decode(&self, b: &mut FunctionBuilder, d: DType, code: Value) -> Value {
        if self.inline {
            return super::lowbit_inline::decode(b, d, code);
        }
        let dt = b.ins().iconst(I32, d.onnx_code() as i64);
        self.call(b, Kernel::LowDecode, &[dt, code])
    }

    /// The code (an i32) of f32 `v`.
    pub fn encode(&self, b: &mut FunctionBuilder, d: DType, v: Value, flags: u32) -> Value {
        if self.inline {
            return super::lowbit_inline::encode(b, d, v, flags);
        }
        let dt = b.ins().iconst(I32, d.onnx_code() as i64);
        let fl = b.ins().iconst(I32, flags as i64);
        self.call(b, Kernel::LowEncode, &[dt, v, fl])
    }

    /// f32 `v` rounded to the coded float `d` (still an f32, now exact in `d`).
    pub fn round(&self, b: &mut FunctionBuilder, d: DType, v: Value, flags: u32) -> Value {
        let code = self.encode(b, d, v, flags);
        self.decode(b, d, code)
    }

    /// Loads element `loc` (a byte address, or the element index for packed types) of a
    /// buffer at `base` as its compute value: f32 for the coded floats, i8 for the small
    /// integers.
    pub fn load(&self, b: &mut FunctionBuilder, d: DType, base: Value, loc: Value) -> Value {
        let code = match d.packed_bits() {
            Some(bits) => {
                let (addr, shift) = place(b, base, loc, bits);
                let byte = b.ins().load(I8, data_flags(), addr, 0);
                let word = b.ins().uextend(I32, byte);
                let word = b.ins().ushr(word, shift);
                if d.is_signed_int() {
                    // Sign-extend from the element's top bit.
                    let up = b.ins().ishl_imm_s(word, 32 - bits);
                    b.ins().sshr_imm_s(up, 32 - bits)
                } else {
                    b.ins().band_imm_s(word, (1 << bits) - 1)
                }
            }
            None => {
                let byte = b.ins().load(I8, data_flags(), loc, 0);
                b.ins().uextend(I32, byte)
            }
        };
        if d.is_coded_float() { self.decode(b, d, code) } else { b.ins().ireduce(I8, code) }
    }

    /// Stores compute value `v` as element `loc` (see [`Runtime::load`]).
    pub fn store(&self, b: &mut FunctionBuilder, d: DType, v: Value, base: Value, loc: Value) {
        let code = if d.is_coded_float() { self.encode(b, d, v, store_flags()) } else { b.ins().uextend(I32, v) };
        match d.packed_bits() {
            Some(bits) => {
                let mask = (1i64 << bits) - 1;
                let code = b.ins().band_imm_s(code, mask);
                let (addr, shift) = place(b, base, loc, bits);
                let old = b.ins().load(I8, data_flags(), addr, 0);
                let old = b.ins().uextend(I32, old);
                let m = b.ins().iconst(I32, mask);
                let m = b.ins().ishl(m, shift);
                let kept = b.ins().band_not(old, m);
                let new = b.ins().ishl(code, shift);
                let new = b.ins().bor(kept, new);
                let new = b.ins().ireduce(I8, new);
                b.ins().store(data_flags(), new, addr, 0);
            }
            None => {
                let byte = b.ins().ireduce(I8, code);
                b.ins().store(data_flags(), byte, loc, 0);
            }
        }
    }
}

/// The byte address and the bit offset (i32) of packed element `index` of `base`.
fn place(b: &mut FunctionBuilder, base: Value, index: Value, bits: i64) -> (Value, Value) {
    let per_byte = 8 / bits;
    let byte = b.ins().ushr_imm_s(index, per_byte.trailing_zeros() as i64);
    let addr = b.ins().iadd(base, byte);
    let lane = b.ins().band_imm_s(index, per_byte - 1);
    let shift = b.ins().imul_imm_s(lane, bits);
    let shift = b.ins().ireduce(I32, shift);
    (addr, shift)
}

#[cfg(test)]
#[path = "lowbit_tests.rs"]
pub(crate) mod tests;
