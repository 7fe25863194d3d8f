//! Helpers shared by the runtime's integration tests.
#![allow(dead_code)]

use neoc_runtime::{ArtifactWriter, CallConv, DType, Isa, Metadata, TensorSig};

/// The ISA of the machine running the tests (x86_64 where not aarch64).
pub fn host_isa() -> Isa {
    Isa::parse(std::env::consts::ARCH).unwrap_or(Isa::X86_64)
}

pub fn other_isa() -> Isa {
    match host_isa() {
        Isa::X86_64 => Isa::Aarch64,
        Isa::Aarch64 => Isa::X86_64,
    }
}

/// Metadata for this machine with the given signatures and no required features.
pub fn meta(inputs: Vec<TensorSig>, outputs: Vec<TensorSig>) -> Metadata {
    Metadata {
        target: "host".into(),
        isa: host_isa(),
        call_conv: CallConv::host(),
        cpu_features: vec![],
        inputs,
        outputs,
        arena_size: 256,
        entry_offset: 0,
        kernel_abi_version: 1,
        runtime_features: vec![],
    }
}

/// One f32 input `x` and one f32 output `y`, both [4] (16 bytes).
pub fn meta_f32x4() -> Metadata {
    meta(vec![TensorSig::new("x", DType::F32, [4])], vec![TensorSig::new("y", DType::F32, [4])])
}

pub fn write(meta: Metadata, code: &[u8], weights: &[&[u8]]) -> Vec<u8> {
    let mut w = ArtifactWriter::new(meta);
    w.neoc_version("test");
    for block in weights {
        w.push_weights(block);
    }
    w.set_code(code.to_vec());
    w.finish().expect("valid artifact")
}

/// A small deterministic PRNG (xorshift64*), so the fuzz tests need no crate.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// x86-64 machine code for the tests, System V convention (`rdi` = `*const RunContext`).
/// Each was assembled with GNU as and checked with objdump; the comments are the
/// instructions. RunContext offsets: inputs 0, outputs 8, arena 16, weights 24,
/// kernels 32, thread_count 40. KernelTable: version 0, parallel_for 16, memset 32.
pub mod x86 {
    /// `xor eax, eax; ret`: succeeds, does nothing.
    pub const RET_OK: &[u8] = &[0x31, 0xc0, 0xc3];

    /// `mov eax, 7; ret`: fails with code 7.
    pub const RET_7: &[u8] = &[0xb8, 0x07, 0x00, 0x00, 0x00, 0xc3];

    /// Copies 16 bytes from inputs[0] to outputs[0].
    pub const COPY16: &[u8] = &[
        0x48, 0x8b, 0x07, //       mov rax, [rdi]       ; rax = ctx->inputs
        0x48, 0x8b, 0x00, //       mov rax, [rax]       ; rax = inputs[0]
        0x48, 0x8b, 0x4f, 0x08, // mov rcx, [rdi+8]     ; rcx = ctx->outputs
        0x48, 0x8b, 0x09, //       mov rcx, [rcx]       ; rcx = outputs[0]
        0x0f, 0x10, 0x00, //       movups xmm0, [rax]   ; load 16 input bytes
        0x0f, 0x11, 0x01, //       movups [rcx], xmm0   ; store them to the output
        0x31, 0xc0, //             xor eax, eax         ; status 0
        0xc3, //                   ret
    ];

    /// Writes five u64 to outputs[0]: thread_count, the weights pointer, the arena
    /// pointer, the first 8 weight bytes (after a round trip through the arena), and the
    /// kernel table's version.
    pub const PROBE: &[u8] = &[
        0x48, 0x8b, 0x4f, 0x08, // mov rcx, [rdi+8]     ; rcx = ctx->outputs
        0x48, 0x8b, 0x09, //       mov rcx, [rcx]       ; rcx = outputs[0]
        0x48, 0x8b, 0x47, 0x28, // mov rax, [rdi+40]    ; rax = ctx->thread_count
        0x48, 0x89, 0x01, //       mov [rcx], rax       ; out[0] = thread_count
        0x48, 0x8b, 0x47, 0x18, // mov rax, [rdi+24]    ; rax = ctx->weights
        0x48, 0x89, 0x41, 0x08, // mov [rcx+8], rax     ; out[1] = weights pointer
        0x48, 0x8b, 0x57, 0x10, // mov rdx, [rdi+16]    ; rdx = ctx->arena
        0x48, 0x89, 0x51, 0x10, // mov [rcx+16], rdx    ; out[2] = arena pointer
        0x48, 0x8b, 0x00, //       mov rax, [rax]       ; rax = first 8 weight bytes
        0x48, 0x89, 0x02, //       mov [rdx], rax       ; arena[0..8] = them
        0x48, 0x8b, 0x02, //       mov rax, [rdx]       ; read them back from the arena
        0x48, 0x89, 0x41, 0x18, // mov [rcx+24], rax    ; out[3] = them
        0x48, 0x8b, 0x47, 0x20, // mov rax, [rdi+32]    ; rax = ctx->kernels
        0x8b, 0x00, //             mov eax, [rax]       ; eax = kernels->version (zero-extends)
        0x48, 0x89, 0x41, 0x20, // mov [rcx+32], rax    ; out[4] = version
        0x31, 0xc0, //             xor eax, eax
        0xc3, //                   ret
    ];

    /// Calls kernels->memset(outputs[0], 0xAB, 16) through the table.
    pub const MEMSET_CALL: &[u8] = &[
        0x53, //                         push rbx             ; realign the stack to 16 for the call
        0x48, 0x8b, 0x47, 0x20, //       mov rax, [rdi+32]    ; rax = ctx->kernels
        0x48, 0x8b, 0x4f, 0x08, //       mov rcx, [rdi+8]     ; rcx = ctx->outputs
        0x48, 0x8b, 0x39, //             mov rdi, [rcx]       ; arg 0: outputs[0]
        0xbe, 0xab, 0x00, 0x00, 0x00, // mov esi, 0xab        ; arg 1: the byte
        0xba, 0x10, 0x00, 0x00, 0x00, // mov edx, 16          ; arg 2: 16 bytes
        0xff, 0x50, 0x20, //             call [rax+32]        ; kernels->memset
        0x5b, //                         pop rbx
        0x31, 0xc0, //                   xor eax, eax
        0xc3, //                         ret
    ];

    /// Calls kernels->parallel_for(ctx, 64, task, outputs[0]) where `task` is a function
    /// in the same code, found PC-relatively (no relocation); task(out, begin, end)
    /// writes out[i] = i + 1 (u32) for i in begin..end. Returns parallel_for's status.
    pub const PARALLEL_FOR: &[u8] = &[
        // entry:
        0x53, //                               push rbx            ; realign the stack
        0x48, 0x8b, 0x47, 0x20, //             mov rax, [rdi+32]   ; rax = ctx->kernels
        0x48, 0x8b, 0x4f, 0x08, //             mov rcx, [rdi+8]    ; rcx = ctx->outputs
        0x48, 0x8b, 0x09, //                   mov rcx, [rcx]      ; arg 3: task_ctx = outputs[0]
        0xbe, 0x40, 0x00, 0x00, 0x00, //       mov esi, 64         ; arg 1: n = 64 (arg 0, rdi, is ctx)
        0x48, 0x8d, 0x15, 0x05, 0x00, 0x00, 0x00, // lea rdx, [rip+5] ; arg 2: task (at 0x1d)
        0xff, 0x50, 0x10, //                   call [rax+16]       ; kernels->parallel_for
        0x5b, //                               pop rbx
        0xc3, //                               ret                 ; its status is ours
        // task (0x1d): rdi = out, rsi = begin, rdx = end
        0x48, 0x39, 0xd6, //                   cmp rsi, rdx
        0x73, 0x0e, //                         jae done
        // loop:
        0x8d, 0x46, 0x01, //                   lea eax, [rsi+1]
        0x89, 0x04, 0xb7, //                   mov [rdi+rsi*4], eax
        0x48, 0xff, 0xc6, //                   inc rsi
        0x48, 0x39, 0xd6, //                   cmp rsi, rdx
        0x72, 0xf2, //                         jb loop
        // done:
        0x31, 0xc0, //                         xor eax, eax
        0xc3, //                               ret
    ];

    /// Copies 16 bytes input → arena, spins 20,000 `pause`s, then copies arena → output.
    /// Runs that shared an arena would return each other's data.
    pub const COPY_VIA_ARENA: &[u8] = &[
        0x48, 0x8b, 0x07, //             mov rax, [rdi]       ; inputs
        0x48, 0x8b, 0x00, //             mov rax, [rax]       ; inputs[0]
        0x48, 0x8b, 0x57, 0x10, //       mov rdx, [rdi+16]    ; arena
        0x0f, 0x10, 0x00, //             movups xmm0, [rax]
        0x0f, 0x11, 0x02, //             movups [rdx], xmm0   ; arena[0..16] = input
        0xb9, 0x20, 0x4e, 0x00, 0x00, // mov ecx, 20000
        0xf3, 0x90, //                   pause                ; spin:
        0xff, 0xc9, //                   dec ecx
        0x75, 0xfa, //                   jnz spin
        0x0f, 0x10, 0x02, //             movups xmm0, [rdx]   ; read the arena back
        0x48, 0x8b, 0x47, 0x08, //       mov rax, [rdi+8]     ; outputs
        0x48, 0x8b, 0x00, //             mov rax, [rax]       ; outputs[0]
        0x0f, 0x11, 0x00, //             movups [rax], xmm0
        0x31, 0xc0, //                   xor eax, eax
        0xc3, //                         ret
    ];
}
