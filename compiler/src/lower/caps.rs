//! What a backend decides for the shared lowering: the few choices that depend on the code
//! generator and the runtime behind it. Family lowerings ask these questions and never test
//! which backend they lower for.

use neoc_runtime::Isa;
use neoc_runtime::abi::{self, Kernel};

/// A backend's answers to the lowering.
#[derive(Clone, Debug, PartialEq)]
pub struct Caps {
    /// The backend's name, for messages ("cpu", "cuda").
    pub backend: &'static str,
    /// Runtime kernels the generated code may call. A GEMM without [`Kernel::Sgemm`]
    /// becomes a loop nest (a reduction over k); other heavy ops without their kernel are
    /// refused, naming the kernel.
    pub kernels: &'static [Kernel],
    /// Constant weights may be packed at compile time into the layouts of the CPU
    /// runtime's kernels (conv weight layouts 1 and 2, `sgemm_packed_b`'s strips).
    pub pack_weights: bool,
}

impl Caps {
    /// The CPU backend: every runtime kernel, and weights packed for the CPU kernels.
    pub const CPU: Caps = Caps { backend: "cpu", kernels: Kernel::ALL, pack_weights: true };

    /// The CPU backend generating self-contained code (aarch64 targets): the code may call
    /// only the runtime's services ([`abi::SERVICES`]: `parallel_for`, `memcpy`, `memset`
    /// and the scalar math functions), so GEMMs, convolutions and pooling lower to loop
    /// nests, which the code generator tiles; the low-bit float codecs are generated inline
    /// (`backend::cpu::lowbit_inline`); string ops are refused.
    pub const SELF_CONTAINED: Caps = Caps { backend: "cpu (aarch64, self-contained)", kernels: abi::SERVICES, pack_weights: false };

    /// The CPU backend's choices for code of `isa`: x86-64 calls the runtime's kernels,
    /// aarch64 is self-contained (nothing here can build or test Rust kernels for it).
    pub fn cpu(isa: Isa) -> Caps {
        match isa {
            Isa::X86_64 => Caps::CPU,
            Isa::Aarch64 => Caps::SELF_CONTAINED,
        }
    }

    /// Whether a constant GEMM operand B is packed at compile time for `sgemm_packed_b`.
    pub fn packs_gemm_weights(&self) -> bool {
        self.pack_weights && self.has(Kernel::SgemmPackedB)
    }

    /// Whether the generated code may call `k`.
    pub fn has(&self, k: Kernel) -> bool {
        self.kernels.contains(&k)
    }

    /// An error unless the generated code may call `k`.
    pub fn need(&self, k: Kernel, what: &str) -> anyhow::Result<()> {
        if self.has(k) {
            Ok(())
        } else {
            anyhow::bail!("{what} needs the runtime kernel `{}`, which the {} backend does not provide", k.name(), self.backend)
        }
    }
}
