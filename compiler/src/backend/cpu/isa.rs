//! A [`Target`] as a Cranelift ISA: the triple, the settings, and the CPU features the
//! generated code may use (which the artifact records, and the runtime checks).
//!
//! Feature names are Rust's (`is_x86_feature_detected!`): Cranelift's `has_sse41` is
//! `sse4.1`. Only features Cranelift can use are enabled and recorded; a target's other
//! features are harmless extra information.

use anyhow::{Context, Result, bail};
use cranelift_codegen::isa::{OwnedTargetIsa, TargetIsa};
use cranelift_codegen::settings::{self, Configurable};
use neoc_runtime::Isa;

use crate::target::Target;

/// (Rust feature name, Cranelift flag, features it implies).
const X86_FLAGS: &[(&str, &str, &[&str])] = &[
    ("sse3", "has_sse3", &[]),
    ("ssse3", "has_ssse3", &["sse3"]),
    ("sse4.1", "has_sse41", &["ssse3", "sse3"]),
    ("sse4.2", "has_sse42", &["sse4.1", "ssse3", "sse3"]),
    ("popcnt", "has_popcnt", &[]),
    ("avx", "has_avx", &["sse4.2", "sse4.1", "ssse3", "sse3"]),
    ("avx2", "has_avx2", &["avx"]),
    ("fma", "has_fma", &["avx"]),
    ("bmi1", "has_bmi1", &[]),
    ("bmi2", "has_bmi2", &[]),
    ("lzcnt", "has_lzcnt", &[]),
    ("avx512f", "has_avx512f", &["avx2", "fma"]),
    ("avx512dq", "has_avx512dq", &["avx512f"]),
    ("avx512vl", "has_avx512vl", &["avx512f"]),
    ("avx512vbmi", "has_avx512vbmi", &["avx512f"]),
    ("avx512bitalg", "has_avx512bitalg", &["avx512f"]),
];

const AARCH64_FLAGS: &[(&str, &str, &[&str])] =
    &[("lse", "has_lse", &[]), ("fp16", "has_fp16", &[]), ("dotprod", "has_dotprod", &[]), ("i8mm", "has_i8mm", &[])];

/// The ISA to generate code for, and what the code requires of the CPU.
pub struct CpuIsa {
    pub isa: OwnedTargetIsa,
    pub arch: Isa,
    /// Rust feature names, sorted: exactly the features Cranelift was allowed to use.
    pub features: Vec<String>,
}

impl CpuIsa {
    pub fn get(&self) -> &dyn TargetIsa {
        &*self.isa
    }
}

pub fn for_target(target: &Target) -> Result<CpuIsa> {
    if target.gpu.is_some() {
        bail!("target '{}' is a GPU target; the CUDA backend is not built yet (only CPU targets compile)", target.name);
    }
    let arch = Isa::parse(&target.isa).with_context(|| format!("target '{}': unknown ISA '{}'", target.name, target.isa))?;
    let (triple, table) = match arch {
        Isa::X86_64 => ("x86_64-unknown-linux-gnu", X86_FLAGS),
        Isa::Aarch64 => ("aarch64-unknown-linux-gnu", AARCH64_FLAGS),
    };
    // The target's features plus what they imply.
    let mut have: Vec<&str> = target.features.iter().map(String::as_str).collect();
    for (name, _, implies) in table {
        if have.contains(name) {
            have.extend(implies.iter().copied());
        }
    }
    if arch == Isa::X86_64 && !have.contains(&"sse4.1") {
        bail!(
            "target '{}' lacks sse4.1, which the x86-64 backend needs (rounding and blends); use x86-64-v2 or newer",
            target.name
        );
    }
    let mut shared = settings::builder();
    for (k, v) in [
        ("opt_level", "speed"),
        ("is_pic", "true"),
        ("enable_probestack", "true"),
        ("probestack_strategy", "inline"),
        ("enable_verifier", if cfg!(debug_assertions) { "true" } else { "false" }),
    ] {
        shared.set(k, v).with_context(|| format!("cranelift setting {k}={v}"))?;
    }
    let mut builder = cranelift_codegen::isa::lookup_by_name(triple).map_err(|e| anyhow::anyhow!("cranelift has no {triple} backend: {e}"))?;
    let mut features = Vec::new();
    for (name, flag, _) in table {
        if have.contains(name) {
            builder.enable(flag).with_context(|| format!("cranelift flag {flag}"))?;
            features.push(name.to_string());
        }
    }
    if arch == Isa::Aarch64 {
        features.push("neon".to_string());
    }
    features.sort();
    features.dedup();
    let isa = builder.finish(settings::Flags::new(shared)).map_err(|e| anyhow::anyhow!("cranelift ISA for {triple}: {e}"))?;
    Ok(CpuIsa { isa, arch, features })
}
