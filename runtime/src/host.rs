//! The machine the runtime runs on: its ISA, its C calling convention and its CPU
//! features, and the check of an artifact's requirements against them.
//!
//! Feature names are Rust's (`is_x86_feature_detected!` / `is_aarch64_feature_detected!`),
//! e.g. `avx512f`, `sse4.1`, `dotprod`. Cranelift's `has_sse41` is `sse4.1` here.

use std::collections::BTreeSet;
use std::fmt;

use crate::artifact::Metadata;
use crate::error::LoadError;

/// The instruction sets neoc generates code for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    X86_64,
    Aarch64,
}

impl Isa {
    /// As `std::env::consts::ARCH` spells it: `x86_64`, `aarch64`.
    pub fn as_str(self) -> &'static str {
        match self {
            Isa::X86_64 => "x86_64",
            Isa::Aarch64 => "aarch64",
        }
    }

    pub fn parse(s: &str) -> Option<Isa> {
        match s {
            "x86_64" => Some(Isa::X86_64),
            "aarch64" => Some(Isa::Aarch64),
            _ => None,
        }
    }

    /// The CPU feature names an artifact for this ISA may require.
    pub fn known_features(self) -> &'static [&'static str] {
        match self {
            Isa::X86_64 => X86_64_FEATURES,
            Isa::Aarch64 => AARCH64_FEATURES,
        }
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The C calling convention the entry point and the kernel calls use. Names are
/// Cranelift's (`CallConv`'s `Display`), so the backend can record
/// `isa.default_call_conv().to_string()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallConv {
    /// System V AMD64 on x86-64 Linux/macOS; AAPCS64 on aarch64 Linux.
    SystemV,
    /// x86-64 Windows.
    WindowsFastcall,
    /// aarch64 Apple platforms.
    AppleAarch64,
}

impl CallConv {
    pub fn as_str(self) -> &'static str {
        match self {
            CallConv::SystemV => "system_v",
            CallConv::WindowsFastcall => "windows_fastcall",
            CallConv::AppleAarch64 => "apple_aarch64",
        }
    }

    pub fn parse(s: &str) -> Option<CallConv> {
        match s {
            "system_v" => Some(CallConv::SystemV),
            "windows_fastcall" => Some(CallConv::WindowsFastcall),
            "apple_aarch64" => Some(CallConv::AppleAarch64),
            _ => None,
        }
    }

    /// Whether code for `isa` can use this convention at all.
    pub fn fits(self, isa: Isa) -> bool {
        matches!(
            (isa, self),
            (_, CallConv::SystemV) | (Isa::X86_64, CallConv::WindowsFastcall) | (Isa::Aarch64, CallConv::AppleAarch64)
        )
    }

    /// The convention of `extern "C"` on the machine this runtime was built for.
    pub fn host() -> CallConv {
        if cfg!(all(target_arch = "x86_64", windows)) {
            CallConv::WindowsFastcall
        } else if cfg!(all(target_arch = "aarch64", target_vendor = "apple")) {
            CallConv::AppleAarch64
        } else {
            CallConv::SystemV
        }
    }
}

impl fmt::Display for CallConv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One list per ISA, and the detection function for the host's ISA, from one table so
/// they cannot drift apart.
macro_rules! features {
    ($list:ident, $detect:ident, $arch:literal, $mac:ident, [$($f:tt),* $(,)?]) => {
        pub const $list: &[&str] = &[$($f),*];

        #[cfg(target_arch = $arch)]
        fn $detect(name: &str) -> bool {
            match name {
                $($f => std::arch::$mac!($f),)*
                _ => false,
            }
        }
    };
}

features!(X86_64_FEATURES, detect_x86_64, "x86_64", is_x86_feature_detected, [
    "sse", "sse2", "sse3", "ssse3", "sse4.1", "sse4.2", "sse4a", "popcnt", "lzcnt", "bmi1", "bmi2",
    "movbe", "cmpxchg16b", "f16c", "fma", "avx", "avx2", "avx512f", "avx512cd", "avx512bw",
    "avx512dq", "avx512vl", "avx512ifma", "avx512vbmi", "avx512vbmi2", "avx512vnni",
    "avx512bitalg", "avx512vpopcntdq", "avx512bf16", "avx512fp16", "avxvnni", "gfni", "vaes",
    "vpclmulqdq", "pclmulqdq", "aes", "sha", "adx",
]);

features!(AARCH64_FEATURES, detect_aarch64, "aarch64", is_aarch64_feature_detected, [
    "neon", "fp16", "fhm", "fcma", "rdm", "dotprod", "i8mm", "bf16", "f32mm", "f64mm", "sve",
    "sve2", "crc", "lse", "lse2", "rcpc", "rcpc2", "aes", "sha2", "sha3", "frintts", "jsconv",
]);

/// What an artifact is checked against: a machine's architecture, C calling convention
/// and CPU features. [`HostCpu::detect`] describes this machine; tools can describe others.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostCpu {
    /// As `std::env::consts::ARCH` spells it.
    pub arch: String,
    pub call_conv: CallConv,
    pub features: BTreeSet<String>,
}

impl HostCpu {
    /// This machine: `std::env::consts::ARCH`, the convention of `extern "C"`, and every
    /// known feature the CPU (and OS) support.
    pub fn detect() -> HostCpu {
        let mut features = BTreeSet::new();
        #[cfg(target_arch = "x86_64")]
        features.extend(X86_64_FEATURES.iter().filter(|f| detect_x86_64(f)).map(|f| f.to_string()));
        #[cfg(target_arch = "aarch64")]
        features.extend(AARCH64_FEATURES.iter().filter(|f| detect_aarch64(f)).map(|f| f.to_string()));
        HostCpu { arch: std::env::consts::ARCH.to_string(), call_conv: CallConv::host(), features }
    }

    pub fn has(&self, feature: &str) -> bool {
        self.features.contains(feature)
    }
}

impl HostCpu {
    /// Checks that code described by `meta` can run here: same ISA, same calling
    /// convention, every required CPU feature present (all missing ones are named).
    pub fn check(&self, meta: &Metadata) -> Result<(), LoadError> {
        if meta.isa.as_str() != self.arch {
            return Err(LoadError::WrongIsa { artifact: meta.isa, host: self.arch.clone() });
        }
        if meta.call_conv != self.call_conv {
            return Err(LoadError::WrongCallConv { artifact: meta.call_conv, host: self.call_conv });
        }
        let mut missing: Vec<String> = Vec::new();
        for f in &meta.cpu_features {
            if !self.has(f) && !missing.contains(f) {
                missing.push(f.clone());
            }
        }
        if !missing.is_empty() {
            return Err(LoadError::MissingCpuFeatures { missing });
        }
        Ok(())
    }
}
