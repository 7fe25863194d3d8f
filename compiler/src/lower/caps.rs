//! What a backend decides for the shared lowering: the few choices that depend on the code
//! generator and the runtime behind it. Family lowerings ask these questions and never test
//! which backend they lower for.

use neoc_runtime::abi::Kernel;

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
