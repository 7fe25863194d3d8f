//! The metadata section: the target, ISA, calling convention and CPU features the code
//! needs, the signatures of the inputs and outputs, the arena size, the entry offset and the
//! kernel ABI version (the encoding is in the [module documentation](super)).

use std::fmt;

use super::bytes::{Reader, put_str, put_u32, put_u64};
use super::{FormatError, meta_err};
use crate::host::{CallConv, Isa};
use crate::tensor::{self, DType, ShapeDisplay};

/// The signature of one graph input or output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSig {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
}

impl TensorSig {
    pub fn new(name: impl Into<String>, dtype: DType, shape: impl Into<Vec<usize>>) -> TensorSig {
        TensorSig { name: name.into(), dtype, shape: shape.into() }
    }

    /// Bytes of one dense tensor of this signature as compiled code sees it (8-byte
    /// handles for strings); validated metadata always has one.
    pub fn byte_len(&self) -> usize {
        tensor::byte_len(self.dtype, &self.shape).expect("validated signature")
    }
}

impl fmt::Display for TensorSig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} {}", self.name, self.dtype, ShapeDisplay(&self.shape))
    }
}

/// What the runtime needs to know to check and call the code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metadata {
    /// The target the code was compiled for (`c5`, `rasp4b`, `host`, ...); informational.
    pub target: String,
    pub isa: Isa,
    pub call_conv: CallConv,
    /// CPU features the code requires, by Rust's names (see [`Isa::known_features`]).
    pub cpu_features: Vec<String>,
    pub inputs: Vec<TensorSig>,
    pub outputs: Vec<TensorSig>,
    /// Bytes of scratch memory the code needs (`RunContext::arena`).
    pub arena_size: u64,
    /// Offset of the entry function from the start of the code section.
    pub entry_offset: u64,
    /// The [`crate::abi::KernelTable`] version the code was built against.
    pub kernel_abi_version: u32,
    /// Cargo features of neoc-runtime the code needs (e.g. `strings-regex` for
    /// RegexFullMatch); load refuses the artifact when this build lacks one.
    pub runtime_features: Vec<String>,
}

impl Metadata {
    /// Checks everything that does not need the host: ISA and convention agree, features
    /// are known names, signatures have addressable sizes and unique names, the entry
    /// lies inside `code_len` bytes of code (4-byte aligned on aarch64).
    pub fn validate(&self, code_len: u64) -> Result<(), FormatError> {
        self.validate_signatures()?;
        if code_len == 0 {
            return meta_err("the code section is empty");
        }
        if self.entry_offset >= code_len {
            return meta_err(format!("entry offset {} is outside the {code_len}-byte code section", self.entry_offset));
        }
        if self.isa == Isa::Aarch64 && !self.entry_offset.is_multiple_of(4) {
            return meta_err(format!("entry offset {} is not 4-byte aligned, as aarch64 instructions must be", self.entry_offset));
        }
        Ok(())
    }

    /// What [`Metadata::validate`] checks apart from the code: ISA and convention, CPU
    /// feature names, signatures, arena size, kernel ABI version. CUDA artifacts (no code)
    /// are checked with this, and require no CPU features.
    pub fn validate_signatures(&self) -> Result<(), FormatError> {
        if !self.call_conv.fits(self.isa) {
            return meta_err(format!("calling convention {} does not exist on {}", self.call_conv, self.isa));
        }
        for f in &self.cpu_features {
            if !self.isa.known_features().contains(&f.as_str()) {
                return Err(FormatError::UnknownCpuFeature { isa: self.isa, feature: f.clone() });
            }
        }
        for (what, sigs) in [("input", &self.inputs), ("output", &self.outputs)] {
            for (i, s) in sigs.iter().enumerate() {
                if tensor::byte_len(s.dtype, &s.shape).is_none() {
                    return meta_err(format!("{what} {i} ('{}'): shape {} of {} is too large", s.name, ShapeDisplay(&s.shape), s.dtype));
                }
                if sigs[..i].iter().any(|o| o.name == s.name) {
                    return meta_err(format!("{what} name '{}' appears twice", s.name));
                }
            }
        }
        if self.arena_size > isize::MAX as u64 {
            return meta_err(format!("arena size {} is too large", self.arena_size));
        }
        if self.kernel_abi_version == 0 {
            return meta_err("kernel ABI version 0 does not exist (versions start at 1)");
        }
        Ok(())
    }

    pub(super) fn encode(&self) -> Vec<u8> {
        let mut w = Vec::new();
        put_str(&mut w, &self.target);
        put_str(&mut w, self.isa.as_str());
        put_str(&mut w, self.call_conv.as_str());
        put_u32(&mut w, self.cpu_features.len() as u32);
        for f in &self.cpu_features {
            put_str(&mut w, f);
        }
        for sigs in [&self.inputs, &self.outputs] {
            put_u32(&mut w, sigs.len() as u32);
            for s in sigs {
                put_str(&mut w, &s.name);
                put_u32(&mut w, s.dtype.onnx_code());
                put_u32(&mut w, s.shape.len() as u32);
                for &d in &s.shape {
                    put_u64(&mut w, d as u64);
                }
            }
        }
        put_u64(&mut w, self.arena_size);
        put_u64(&mut w, self.entry_offset);
        put_u32(&mut w, self.kernel_abi_version);
        if !self.runtime_features.is_empty() {
            put_u32(&mut w, self.runtime_features.len() as u32);
            for f in &self.runtime_features {
                put_str(&mut w, f);
            }
        }
        w
    }

    pub(super) fn decode(bytes: &[u8]) -> Result<Metadata, FormatError> {
        let mut r = Reader::new(bytes, "");
        let target = r.str("target")?;
        let isa_name = r.str("ISA")?;
        let Some(isa) = Isa::parse(&isa_name) else {
            return meta_err(format!("unknown ISA '{isa_name}' (this runtime knows x86_64 and aarch64)"));
        };
        let cc_name = r.str("calling convention")?;
        let Some(call_conv) = CallConv::parse(&cc_name) else {
            return meta_err(format!("unknown calling convention '{cc_name}'"));
        };
        let n = r.u32("CPU feature count")?;
        let mut cpu_features = Vec::new();
        for i in 0..n {
            cpu_features.push(r.str(&format!("CPU feature {i}"))?);
        }
        let inputs = sigs(&mut r, "input")?;
        let outputs = sigs(&mut r, "output")?;
        let arena_size = r.u64("arena size")?;
        let entry_offset = r.u64("entry offset")?;
        let kernel_abi_version = r.u32("kernel ABI version")?;
        let mut runtime_features = Vec::new();
        if r.left() >= 4 {
            let n = r.u32("runtime feature count")?;
            if n == 0 {
                return meta_err("an empty runtime feature list (writers leave it out)");
            }
            for i in 0..n {
                runtime_features.push(r.str(&format!("runtime feature {i}"))?);
            }
        }
        r.finish("the last field")?;
        Ok(Metadata { target, isa, call_conv, cpu_features, inputs, outputs, arena_size, entry_offset, kernel_abi_version, runtime_features })
    }
}

/// A list of signatures: a u32 count, then each as `str name, u32 dtype, u32 rank, rank × u64 dims`.
fn sigs(r: &mut Reader<'_>, what: &str) -> Result<Vec<TensorSig>, FormatError> {
    let n = r.u32(&format!("{what} count"))?;
    let mut sigs = Vec::new();
    for i in 0..n {
        let name = r.str(&format!("{what} {i} name"))?;
        let code = r.u32(&format!("{what} {i} dtype"))?;
        let Some(dtype) = DType::from_onnx(code) else {
            return meta_err(format!("{what} {i} ('{name}'): unknown or unsupported dtype code {code}"));
        };
        let rank = r.u32(&format!("{what} {i} rank"))?;
        let mut shape = Vec::new();
        for a in 0..rank {
            let d = r.u64(&format!("{what} {i} dimension {a}"))?;
            let Ok(d) = usize::try_from(d) else {
                return meta_err(format!("{what} {i} ('{name}'): dimension {a} ({d}) does not fit this machine"));
            };
            shape.push(d);
        }
        sigs.push(TensorSig { name, dtype, shape });
    }
    Ok(sigs)
}
