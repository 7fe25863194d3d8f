//! Code variants: one artifact carrying machine code for several levels of one ISA
//! (x86-64-v2, -v3, -v4), the runtime picking the best one this CPU supports at load.
//! Format version 5 (see [`crate::artifact`]) adds them; artifacts with one code section
//! are written as version 4.
//!
//! # The variants section (kind 4, 8-byte aligned; versions 5 and 2 only)
//!
//! ```text
//! u32 n                      number of variants, 2..=8; equal to the number of code sections
//! n × { str name             e.g. "x86-64-v3"
//!       u32 k, k × str       CPU features this variant's code requires (Rust's names)
//!       u64 entry_offset }   of its entry function, from the start of its code section
//! ```
//!
//! Variant `i` runs the code section whose table entry has `flags == i`. Variant 0 is the
//! baseline: its features and entry offset are also the metadata's `cpu_features` and
//! `entry_offset`, so a reader that looks only at the metadata sees code that runs on the
//! most machines. Writers order variants from the least to the most demanding; the
//! loader runs the last one whose features the CPU has (or the one named in
//! [`LoadOptions::code_variant`]). Variants share the weights, the arena size and the
//! signatures: they are the same lowered program, compiled once per ISA level.

use std::ops::Range;

use crate::LoadOptions;
use crate::artifact::{FormatError, Reader, put_str, put_u32, put_u64};
use crate::host::{HostCpu, Isa};
use crate::error::LoadError;

/// At most this many code variants in one artifact.
pub const MAX_VARIANTS: usize = 8;

/// One compiled version of the program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeVariant {
    /// The level it was compiled for (a target name: `x86-64-v3`).
    pub name: String,
    /// CPU features its code requires, by Rust's names.
    pub cpu_features: Vec<String>,
    /// Offset of its entry function from the start of its code section.
    pub entry_offset: u64,
}

pub(crate) fn encode(variants: &[CodeVariant]) -> Vec<u8> {
    let mut w = Vec::new();
    put_u32(&mut w, variants.len() as u32);
    for v in variants {
        put_str(&mut w, &v.name);
        put_u32(&mut w, v.cpu_features.len() as u32);
        for f in &v.cpu_features {
            put_str(&mut w, f);
        }
        put_u64(&mut w, v.entry_offset);
    }
    w
}

/// How the section's errors begin.
const SECTION: &str = "code variants: ";

fn err<T>(msg: impl Into<String>) -> Result<T, FormatError> {
    Err(FormatError::Metadata(format!("{SECTION}{}", msg.into())))
}

pub(crate) fn decode(bytes: &[u8]) -> Result<Vec<CodeVariant>, FormatError> {
    let mut r = Reader::new(bytes, SECTION);
    let n = r.u32("the count")? as usize;
    if !(2..=MAX_VARIANTS).contains(&n) {
        return err(format!("{n} variants (2 to {MAX_VARIANTS})"));
    }
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let name = r.str(&format!("variant {i} name"))?;
        let k = r.u32("a feature count")?;
        let mut cpu_features = Vec::new();
        for j in 0..k {
            cpu_features.push(r.str(&format!("variant {i} feature {j}"))?);
        }
        let entry_offset = r.u64("an entry offset")?;
        out.push(CodeVariant { name, cpu_features, entry_offset });
    }
    r.finish("the last variant")?;
    Ok(out)
}

/// Checks variants against their code sections and the metadata's ISA, baseline
/// features and entry offset.
pub(crate) fn validate(variants: &[CodeVariant], code_lens: &[u64], isa: Isa, cpu_features: &[String], entry_offset: u64) -> Result<(), FormatError> {
    if variants.len() != code_lens.len() {
        return err(format!("{} variants but {} code sections", variants.len(), code_lens.len()));
    }
    for (i, (v, &len)) in variants.iter().zip(code_lens).enumerate() {
        if v.name.is_empty() || v.name.chars().any(char::is_control) || variants[..i].iter().any(|o| o.name == v.name) {
            return err(format!("variant {i} has an empty, unprintable or repeated name"));
        }
        for f in &v.cpu_features {
            if !isa.known_features().contains(&f.as_str()) {
                return Err(FormatError::UnknownCpuFeature { isa, feature: f.clone() });
            }
        }
        if len == 0 || v.entry_offset >= len {
            return err(format!("variant '{}': entry offset {} is outside its {len}-byte code section", v.name, v.entry_offset));
        }
        if isa == Isa::Aarch64 && !v.entry_offset.is_multiple_of(4) {
            return err(format!("variant '{}': entry offset {} is not 4-byte aligned", v.name, v.entry_offset));
        }
    }
    if variants[0].cpu_features != cpu_features || variants[0].entry_offset != entry_offset {
        return err("variant 0 must match the metadata's CPU features and entry offset (it is the baseline)");
    }
    Ok(())
}

/// Which variant to run: the named one, or the last one whose features `host` has.
pub(crate) fn choose(variants: &[(CodeVariant, Range<usize>)], host: &HostCpu, wanted: Option<&str>) -> Result<usize, LoadError> {
    let missing = |v: &CodeVariant| -> Vec<String> { v.cpu_features.iter().filter(|f| !host.has(f)).cloned().collect() };
    if let Some(name) = wanted {
        let Some(i) = variants.iter().position(|(v, _)| v.name == name) else {
            return Err(LoadError::NoSuchVariant { wanted: name.to_string(), available: variants.iter().map(|(v, _)| v.name.clone()).collect() });
        };
        let m = missing(&variants[i].0);
        if !m.is_empty() {
            return Err(LoadError::MissingCpuFeatures { missing: m });
        }
        return Ok(i);
    }
    match variants.iter().rposition(|(v, _)| missing(v).is_empty()) {
        Some(i) => Ok(i),
        // None runs: report what the baseline lacks.
        None => Err(LoadError::MissingCpuFeatures { missing: missing(&variants[0].0) }),
    }
}

/// Narrows a parsed artifact to the variant to run (see [`choose`]) and returns its name;
/// `None` for an artifact with one code section.
pub(crate) fn pick(art: &mut crate::Artifact<'_>, host: &HostCpu, opts: &LoadOptions) -> Result<Option<String>, LoadError> {
    if art.code_variants().is_empty() {
        return match &opts.code_variant {
            None => Ok(None),
            Some(w) => Err(LoadError::NoSuchVariant { wanted: w.clone(), available: vec![] }),
        };
    }
    if art.metadata.isa.as_str() != host.arch {
        return Err(LoadError::WrongIsa { artifact: art.metadata.isa, host: host.arch.clone() });
    }
    let i = choose(art.code_variants(), host, opts.code_variant.as_deref())?;
    let name = art.code_variants()[i].0.name.clone();
    art.use_variant(i);
    Ok(Some(name))
}
