//! The `.neo` artifact: one file holding compiled code, weights and the metadata needed
//! to check and call them. The runtime owns this format; the compiler writes it only
//! through [`ArtifactWriter`], and [`Artifact::parse`] validates every byte of it.
//!
//! # Layout (format version 1, little-endian throughout)
//!
//! ```text
//! offset  size  field
//!      0     8  magic  b"NEOC\0ART"
//!      8     4  format version (u32) = 1
//!     12     4  header length (u32): bytes from 0 to the end of the section table
//!     16     8  file length (u64): the whole file, in bytes
//!     24     8  checksum (u64): XXH64, seed 0, of the whole file with these 8 bytes read as 0
//!     32     4  section count (u32), at most 16
//!     36     4  neoc version length (u32), at most 256
//!     40     v  neoc version (UTF-8, no control characters), zero-padded to a multiple of 8
//!   40+v'  24n  section table, one entry per section:
//!               kind u32 (1 metadata, 2 code, 3 weights), flags u32 (0),
//!               offset u64, length u64 (from the start of the file)
//! then the sections, in any order, inside the file, after the header, not overlapping:
//!   metadata  8-byte aligned      (encoding below)
//!   code      4096-byte aligned   position-independent machine code, no relocations
//!   weights   64-byte aligned     read by the code through `RunContext::weights`
//! ```
//!
//! Each of the three sections appears exactly once (weights may be empty). Format version
//! 2 adds code variants ([`crate::variants`]): several code sections, the i-th with
//! `flags == i`, and a variants section (kind 4) saying which CPU features each needs;
//! artifacts with one code section are still written as version 1. The reader
//! Format version 3 is a CUDA artifact ([`crate::cuda`]): a cuda section (kind 5) holding
//! PTX and the launch sequence takes the place of the code section, and the metadata names
//! the runtime feature `cuda`. Artifacts with machine code never use version 3. The reader
//! checks magic, then version (a newer version is refused, naming both versions, before
//! anything else is read), file length, checksum, header, every section's bounds,
//! alignment and overlap, and finally decodes and validates the metadata.
//!
//! # Metadata encoding
//!
//! `str` is a u32 byte length and UTF-8 bytes; `sig` is `str name, u32 dtype (ONNX
//! code), u32 rank, rank × u64 dims`. In order:
//!
//! ```text
//! str target            e.g. "c5", "host"
//! str isa               "x86_64" | "aarch64"
//! str call_conv         "system_v" | "windows_fastcall" | "apple_aarch64"
//! u32 n, n × str        CPU features the code requires (Rust's names: "avx512f", "dotprod")
//! u32 n, n × sig        inputs, in the order of RunContext::inputs
//! u32 n, n × sig        outputs, in the order of RunContext::outputs
//! u64 arena_size        bytes of scratch the code needs
//! u64 entry_offset      of the entry function, from the start of the code section
//! u32 kernel_abi_version
//! [u32 n, n × str]      runtime features the artifact needs (cargo features of
//!                       neoc-runtime, e.g. "strings-regex"); written only when n > 0
//! ```
//! and nothing after. The optional last list keeps artifacts that need no runtime feature
//! byte-identical to those of earlier writers; a runtime too old to know the list refuses
//! the artifacts that have one (trailing bytes), which is what they need.

use std::fmt;
use std::ops::Range;

use crate::checksum::Xxh64;
use crate::host::{CallConv, Isa};
use crate::tensor::{self, DType, ShapeDisplay};
use crate::variants::CodeVariant;

pub const MAGIC: [u8; 8] = *b"NEOC\0ART";
/// The format version of artifacts with one code section (the writer's choice for them).
pub const FORMAT_VERSION: u32 = 1;
/// The format version of artifacts with code variants.
pub const VARIANTS_FORMAT_VERSION: u32 = 2;
/// The format version of CUDA artifacts (a cuda section instead of code).
pub const CUDA_FORMAT_VERSION: u32 = 3;
/// The newest format version this runtime reads and writes: 2 adds code variants, 3 CUDA
/// artifacts.
pub const NEWEST_FORMAT_VERSION: u32 = 3;
pub const FIXED_HEADER_LEN: usize = 40;
pub const SECTION_ENTRY_LEN: usize = 24;
pub const CHECKSUM_OFFSET: usize = 24;
pub const MAX_SECTIONS: usize = 16;
pub const MAX_NEOC_VERSION_LEN: usize = 256;
pub const METADATA_ALIGN: u64 = 8;
/// Page alignment in the file (4 KiB; the runtime copies the code, so hosts with larger
/// pages are fine too).
pub const CODE_ALIGN: u64 = 4096;
pub const WEIGHTS_ALIGN: u64 = 64;
/// Alignment of each block [`ArtifactWriter::push_weights`] adds.
pub const WEIGHT_BLOCK_ALIGN: usize = 64;

/// The kinds of section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SectionKind {
    Metadata = 1,
    Code = 2,
    Weights = 3,
    /// Format version 2: the code variants ([`crate::variants`]).
    Variants = 4,
    /// Format version 3: a CUDA program ([`crate::cuda::Program`]), instead of code.
    Cuda = 5,
}

impl SectionKind {
    fn from_u32(k: u32) -> Option<SectionKind> {
        match k {
            1 => Some(SectionKind::Metadata),
            2 => Some(SectionKind::Code),
            3 => Some(SectionKind::Weights),
            4 => Some(SectionKind::Variants),
            5 => Some(SectionKind::Cuda),
            _ => None,
        }
    }

    fn align(self) -> u64 {
        match self {
            SectionKind::Metadata | SectionKind::Variants | SectionKind::Cuda => METADATA_ALIGN,
            SectionKind::Code => CODE_ALIGN,
            SectionKind::Weights => WEIGHTS_ALIGN,
        }
    }

    fn index(self) -> usize {
        self as usize - 1
    }
}

impl fmt::Display for SectionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SectionKind::Metadata => "metadata",
            SectionKind::Code => "code",
            SectionKind::Weights => "weights",
            SectionKind::Variants => "variants",
            SectionKind::Cuda => "cuda",
        })
    }
}

/// Why bytes are not a valid artifact.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormatError {
    #[error("file is {len} bytes, too short for the {FIXED_HEADER_LEN}-byte artifact header")]
    TooShort { len: usize },
    #[error("not a neoc artifact: the file starts with {found:02x?}, not \"NEOC\\0ART\"")]
    BadMagic { found: [u8; 8] },
    #[error("artifact format version {found} is newer than this runtime reads (version {supported}); upgrade neoc-runtime or recompile with a matching neoc")]
    NewerVersion { found: u32, supported: u32 },
    #[error("artifact format version {found} is not a version this runtime reads (version {supported})")]
    UnknownVersion { found: u32, supported: u32 },
    #[error("file is {actual} bytes but its header says {header}: it is truncated or was extended")]
    LengthMismatch { header: u64, actual: usize },
    #[error("checksum mismatch: the header says {stored:#018x}, the contents hash to {computed:#018x}; the file is corrupt")]
    ChecksumMismatch { stored: u64, computed: u64 },
    #[error("bad header: {0}")]
    BadHeader(String),
    #[error("unknown section kind {kind} in section table entry {index}")]
    UnknownSection { index: usize, kind: u32 },
    #[error("section {0} appears more than once")]
    DuplicateSection(SectionKind),
    #[error("section {0} is missing")]
    MissingSection(SectionKind),
    #[error("section {section} ({offset}..+{len}) lies outside the file's data ({header_len}..{file_len})")]
    SectionOutOfBounds { section: SectionKind, offset: u64, len: u64, header_len: u64, file_len: u64 },
    #[error("section {section} starts at {offset}, which is not a multiple of {align}")]
    SectionMisaligned { section: SectionKind, offset: u64, align: u64 },
    #[error("sections {0} and {1} overlap")]
    SectionOverlap(SectionKind, SectionKind),
    #[error("metadata: {0}")]
    Metadata(String),
    #[error("the code requires CPU feature '{feature}', which this runtime does not know for {isa} and so cannot check")]
    UnknownCpuFeature { isa: Isa, feature: String },
}

fn meta_err<T>(msg: impl Into<String>) -> Result<T, FormatError> {
    Err(FormatError::Metadata(msg.into()))
}

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

    fn encode(&self) -> Vec<u8> {
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

    fn decode(bytes: &[u8]) -> Result<Metadata, FormatError> {
        let mut r = Reader { bytes, pos: 0 };
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
        let inputs = r.sigs("input")?;
        let outputs = r.sigs("output")?;
        let arena_size = r.u64("arena size")?;
        let entry_offset = r.u64("entry offset")?;
        let kernel_abi_version = r.u32("kernel ABI version")?;
        let mut runtime_features = Vec::new();
        if bytes.len() - r.pos >= 4 {
            let n = r.u32("runtime feature count")?;
            if n == 0 {
                return meta_err("an empty runtime feature list (writers leave it out)");
            }
            for i in 0..n {
                runtime_features.push(r.str(&format!("runtime feature {i}"))?);
            }
        }
        if r.pos != bytes.len() {
            return meta_err(format!("{} unexpected bytes after the last field", bytes.len() - r.pos));
        }
        Ok(Metadata { target, isa, call_conv, cpu_features, inputs, outputs, arena_size, entry_offset, kernel_abi_version, runtime_features })
    }
}

fn put_u32(w: &mut Vec<u8>, v: u32) {
    w.extend_from_slice(&v.to_le_bytes());
}

fn put_u64(w: &mut Vec<u8>, v: u64) {
    w.extend_from_slice(&v.to_le_bytes());
}

fn put_str(w: &mut Vec<u8>, s: &str) {
    put_u32(w, s.len() as u32);
    w.extend_from_slice(s.as_bytes());
}

/// A bounds-checked little-endian reader over the metadata section.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize, what: &str) -> Result<&[u8], FormatError> {
        match self.bytes.len().checked_sub(self.pos) {
            Some(left) if left >= n => {
                let s = &self.bytes[self.pos..self.pos + n];
                self.pos += n;
                Ok(s)
            }
            _ => meta_err(format!("truncated while reading {what} at byte {}", self.pos)),
        }
    }

    fn u32(&mut self, what: &str) -> Result<u32, FormatError> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().unwrap()))
    }

    fn u64(&mut self, what: &str) -> Result<u64, FormatError> {
        Ok(u64::from_le_bytes(self.take(8, what)?.try_into().unwrap()))
    }

    fn str(&mut self, what: &str) -> Result<String, FormatError> {
        let len = self.u32(what)? as usize;
        let bytes = self.take(len, what)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_string()),
            Err(_) => meta_err(format!("{what} is not valid UTF-8")),
        }
    }

    fn sigs(&mut self, what: &str) -> Result<Vec<TensorSig>, FormatError> {
        let n = self.u32(&format!("{what} count"))?;
        let mut sigs = Vec::new();
        for i in 0..n {
            let name = self.str(&format!("{what} {i} name"))?;
            let code = self.u32(&format!("{what} {i} dtype"))?;
            let Some(dtype) = DType::from_onnx(code) else {
                return meta_err(format!("{what} {i} ('{name}'): unknown or unsupported dtype code {code}"));
            };
            let rank = self.u32(&format!("{what} {i} rank"))?;
            let mut shape = Vec::new();
            for a in 0..rank {
                let d = self.u64(&format!("{what} {i} dimension {a}"))?;
                let Ok(d) = usize::try_from(d) else {
                    return meta_err(format!("{what} {i} ('{name}'): dimension {a} ({d}) does not fit this machine"));
                };
                shape.push(d);
            }
            sigs.push(TensorSig { name, dtype, shape });
        }
        Ok(sigs)
    }
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn pad8(n: usize) -> usize {
    n.div_ceil(8) * 8
}

fn align_up(n: u64, a: u64) -> u64 {
    n.div_ceil(a) * a
}

/// The artifact checksum: XXH64 (seed 0) of `bytes` with the checksum field read as
/// zero. `bytes` must be at least [`FIXED_HEADER_LEN`] long.
pub fn checksum(bytes: &[u8]) -> u64 {
    let mut h = Xxh64::new(0);
    h.update(&bytes[..CHECKSUM_OFFSET]);
    h.update(&[0; 8]);
    h.update(&bytes[CHECKSUM_OFFSET + 8..]);
    h.finish()
}

/// Recomputes and stores the checksum (the writer's last step; tests use it to build
/// corrupt files that still pass the checksum).
pub fn stamp_checksum(bytes: &mut [u8]) {
    let sum = checksum(bytes);
    bytes[CHECKSUM_OFFSET..CHECKSUM_OFFSET + 8].copy_from_slice(&sum.to_le_bytes());
}

/// A parsed and validated artifact, borrowing the file's bytes.
#[derive(Clone, Debug)]
pub struct Artifact<'a> {
    pub format_version: u32,
    /// The version of neoc that wrote it.
    pub neoc_version: String,
    pub metadata: Metadata,
    pub checksum: u64,
    bytes: &'a [u8],
    code: Range<usize>,
    weights: Range<usize>,
    variants: Vec<(CodeVariant, Range<usize>)>,
    program: Option<crate::cuda::Program>,
}

impl<'a> Artifact<'a> {
    /// Parses and validates `bytes`. Never panics; any inconsistency is an error.
    pub fn parse(bytes: &'a [u8]) -> Result<Artifact<'a>, FormatError> {
        if bytes.len() < FIXED_HEADER_LEN {
            return Err(FormatError::TooShort { len: bytes.len() });
        }
        if bytes[..8] != MAGIC {
            return Err(FormatError::BadMagic { found: bytes[..8].try_into().unwrap() });
        }
        let version = le_u32(bytes, 8);
        if version > NEWEST_FORMAT_VERSION {
            return Err(FormatError::NewerVersion { found: version, supported: NEWEST_FORMAT_VERSION });
        }
        if version < FORMAT_VERSION {
            return Err(FormatError::UnknownVersion { found: version, supported: NEWEST_FORMAT_VERSION });
        }
        let file_len = le_u64(bytes, 16);
        if file_len != bytes.len() as u64 {
            return Err(FormatError::LengthMismatch { header: file_len, actual: bytes.len() });
        }
        let stored = le_u64(bytes, CHECKSUM_OFFSET);
        let computed = checksum(bytes);
        if stored != computed {
            return Err(FormatError::ChecksumMismatch { stored, computed });
        }

        let header_len = le_u32(bytes, 12) as usize;
        let count = le_u32(bytes, 32) as usize;
        let ver_len = le_u32(bytes, 36) as usize;
        if ver_len > MAX_NEOC_VERSION_LEN {
            return Err(FormatError::BadHeader(format!("neoc version is {ver_len} bytes long (at most {MAX_NEOC_VERSION_LEN})")));
        }
        if count > MAX_SECTIONS {
            return Err(FormatError::BadHeader(format!("{count} sections (at most {MAX_SECTIONS})")));
        }
        let table = FIXED_HEADER_LEN + pad8(ver_len);
        let expected_header_len = table + count * SECTION_ENTRY_LEN;
        if header_len != expected_header_len || header_len > bytes.len() {
            return Err(FormatError::BadHeader(format!(
                "header length {header_len} does not match its contents ({expected_header_len} bytes) or the file"
            )));
        }
        let neoc_version = match std::str::from_utf8(&bytes[FIXED_HEADER_LEN..FIXED_HEADER_LEN + ver_len]) {
            Ok(v) if !v.chars().any(char::is_control) => v,
            _ => return Err(FormatError::BadHeader("the neoc version is not printable UTF-8".into())),
        };
        if bytes[FIXED_HEADER_LEN + ver_len..table].iter().any(|&b| b != 0) {
            return Err(FormatError::BadHeader("non-zero padding after the neoc version".into()));
        }

        let mut found: [Option<(u64, u64)>; 5] = [None; 5];
        // Version 2: every code section, as (flags = variant index, offset, length).
        let mut codes: Vec<(u32, u64, u64)> = Vec::new();
        for index in 0..count {
            let e = table + index * SECTION_ENTRY_LEN;
            let kind = le_u32(bytes, e);
            let flags = le_u32(bytes, e + 4);
            let offset = le_u64(bytes, e + 8);
            let len = le_u64(bytes, e + 16);
            // Variants exist only in version 2, the cuda section only in version 3 (which
            // has no code).
            let known = |s: &SectionKind| match s {
                SectionKind::Variants => version == VARIANTS_FORMAT_VERSION,
                SectionKind::Cuda => version == CUDA_FORMAT_VERSION,
                SectionKind::Code => version != CUDA_FORMAT_VERSION,
                _ => true,
            };
            let Some(section) = SectionKind::from_u32(kind).filter(known) else {
                return Err(FormatError::UnknownSection { index, kind });
            };
            let variants = version == VARIANTS_FORMAT_VERSION && section == SectionKind::Code;
            if flags != 0 && !(variants && (flags as usize) < crate::variants::MAX_VARIANTS) {
                return Err(FormatError::BadHeader(format!("section {section} has flags {flags:#x}; version {version} defines none")));
            }
            let in_bounds = offset >= header_len as u64 && offset.checked_add(len).is_some_and(|end| end <= file_len);
            if !in_bounds {
                return Err(FormatError::SectionOutOfBounds { section, offset, len, header_len: header_len as u64, file_len });
            }
            if !offset.is_multiple_of(section.align()) {
                return Err(FormatError::SectionMisaligned { section, offset, align: section.align() });
            }
            if variants {
                if codes.iter().any(|c| c.0 == flags) {
                    return Err(FormatError::BadHeader(format!("two code sections have variant index {flags}")));
                }
                codes.push((flags, offset, len));
                if flags == 0 {
                    found[section.index()] = Some((offset, len));
                }
                continue;
            }
            if found[section.index()].replace((offset, len)).is_some() {
                return Err(FormatError::DuplicateSection(section));
            }
        }
        let cuda = version == CUDA_FORMAT_VERSION;
        let mut kinds = vec![SectionKind::Metadata, if cuda { SectionKind::Cuda } else { SectionKind::Code }, SectionKind::Weights];
        if version == VARIANTS_FORMAT_VERSION {
            kinds.push(SectionKind::Variants);
        }
        let mut ranges = Vec::with_capacity(kinds.len() + codes.len());
        for kind in kinds {
            let Some((offset, len)) = found[kind.index()] else {
                return Err(FormatError::MissingSection(kind));
            };
            // In bounds of `bytes`, checked above, so these fit in usize.
            ranges.push((kind, offset as usize..(offset + len) as usize));
        }
        codes.sort();
        if codes.iter().enumerate().any(|(i, c)| c.0 as usize != i) {
            return Err(FormatError::BadHeader("code sections' variant indices are not 0, 1, 2, ...".into()));
        }
        let code_ranges: Vec<Range<usize>> = codes.iter().map(|&(_, o, l)| o as usize..(o + l) as usize).collect();
        ranges.extend(code_ranges.iter().skip(1).map(|r| (SectionKind::Code, r.clone())));
        let mut sorted = ranges.clone();
        sorted.sort_by_key(|(_, r)| (r.start, r.end));
        for pair in sorted.windows(2) {
            if pair[0].1.end > pair[1].1.start {
                return Err(FormatError::SectionOverlap(pair[0].0, pair[1].0));
            }
        }
        let [meta, code, weights] = [ranges[0].1.clone(), ranges[1].1.clone(), ranges[2].1.clone()];

        let metadata = Metadata::decode(&bytes[meta])?;
        let mut program = None;
        if cuda {
            // The cuda section stands where the code would; there is no code.
            metadata.validate_signatures()?;
            if !metadata.cpu_features.is_empty() || !metadata.runtime_features.iter().any(|f| f == crate::cuda::RUNTIME_FEATURE) {
                return meta_err("a CUDA artifact requires no CPU feature and names the runtime feature 'cuda'");
            }
            let p = crate::cuda::Program::decode(&bytes[code.clone()])?;
            p.validate(&metadata.inputs, &metadata.outputs, weights.len() as u64)?;
            program = Some(p);
        } else {
            metadata.validate(code.len() as u64)?;
        }
        let code = if cuda { code.start..code.start } else { code };
        let mut variants = Vec::new();
        if version == VARIANTS_FORMAT_VERSION {
            let list = crate::variants::decode(&bytes[ranges[3].1.clone()])?;
            let lens: Vec<u64> = code_ranges.iter().map(|r| r.len() as u64).collect();
            crate::variants::validate(&list, &lens, metadata.isa, &metadata.cpu_features, metadata.entry_offset)?;
            variants = list.into_iter().zip(code_ranges).collect();
        }
        Ok(Artifact {
            format_version: version,
            neoc_version: neoc_version.to_string(),
            metadata,
            checksum: stored,
            bytes,
            code,
            weights,
            variants,
            program,
        })
    }

    /// The program of a CUDA artifact (format version 3), validated; `None` for artifacts
    /// with machine code.
    pub fn cuda_program(&self) -> Option<&crate::cuda::Program> {
        self.program.as_ref()
    }

    /// The code variants of a version 2 artifact, each with where its code lies in the
    /// file (empty for a version 1 artifact, whose one code section is [`Artifact::code`]).
    pub fn code_variants(&self) -> &[(CodeVariant, Range<usize>)] {
        &self.variants
    }

    /// Makes variant `index` the code this artifact describes: the metadata's CPU features
    /// and entry offset and [`Artifact::code`] become that variant's.
    pub fn use_variant(&mut self, index: usize) {
        let (v, range) = self.variants[index].clone();
        self.metadata.cpu_features = v.cpu_features;
        self.metadata.entry_offset = v.entry_offset;
        self.code = range;
    }

    pub fn code(&self) -> &'a [u8] {
        &self.bytes[self.code.clone()]
    }

    pub fn weights(&self) -> &'a [u8] {
        &self.bytes[self.weights.clone()]
    }

    /// Where the code section lies in the file.
    pub fn code_range(&self) -> Range<usize> {
        self.code.clone()
    }

    /// Where the weights section lies in the file.
    pub fn weights_range(&self) -> Range<usize> {
        self.weights.clone()
    }
}

/// Builds an artifact's bytes. The compiler's only way to write one.
///
/// ```
/// use neoc_runtime::{ArtifactWriter, Metadata, TensorSig, DType, Isa, CallConv};
/// let meta = Metadata {
///     target: "host".into(), isa: Isa::X86_64, call_conv: CallConv::SystemV,
///     cpu_features: vec!["avx2".into()],
///     inputs: vec![TensorSig::new("x", DType::F32, [1, 4])],
///     outputs: vec![TensorSig::new("y", DType::F32, [1, 4])],
///     arena_size: 0, entry_offset: 0, kernel_abi_version: 1, runtime_features: vec![],
/// };
/// let mut w = ArtifactWriter::new(meta);
/// let bias_offset = w.push_weights(&[0u8; 16]); // 64-byte aligned inside the weights section
/// w.set_code(vec![0x31, 0xc0, 0xc3]);          // xor eax, eax; ret
/// let bytes = w.finish().unwrap();
/// assert_eq!(bias_offset, 0);
/// assert!(neoc_runtime::Artifact::parse(&bytes).is_ok());
/// ```
#[derive(Clone, Debug)]
pub struct ArtifactWriter {
    neoc_version: String,
    metadata: Metadata,
    code: Vec<u8>,
    weights: Vec<u8>,
    variants: Vec<(CodeVariant, Vec<u8>)>,
    program: Option<crate::cuda::Program>,
}

impl ArtifactWriter {
    /// A writer recording this crate's version as the neoc version (the workspace shares
    /// one version); see [`ArtifactWriter::neoc_version`].
    pub fn new(metadata: Metadata) -> ArtifactWriter {
        ArtifactWriter {
            neoc_version: env!("CARGO_PKG_VERSION").to_string(),
            metadata,
            code: Vec::new(),
            weights: Vec::new(),
            variants: Vec::new(),
            program: None,
        }
    }

    /// Code variants instead of one code section (format version 2): `(variant, code)`
    /// from the least to the most demanding. The metadata's CPU features and entry offset
    /// are taken from the first; [`ArtifactWriter::set_code`] is then unused.
    pub fn set_code_variants(&mut self, variants: Vec<(CodeVariant, Vec<u8>)>) -> &mut Self {
        self.variants = variants;
        self
    }

    /// A CUDA program instead of code (format version 3; see [`crate::cuda`]). The metadata
    /// must name the runtime feature `cuda` and no CPU feature; code is then unused.
    pub fn set_cuda_program(&mut self, program: crate::cuda::Program) -> &mut Self {
        self.program = Some(program);
        self
    }

    pub fn neoc_version(&mut self, version: impl Into<String>) -> &mut Self {
        self.neoc_version = version.into();
        self
    }

    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// For fields known only late, such as `arena_size` and `entry_offset`.
    pub fn metadata_mut(&mut self) -> &mut Metadata {
        &mut self.metadata
    }

    /// The whole code section; `metadata.entry_offset` points into it.
    pub fn set_code(&mut self, code: Vec<u8>) -> &mut Self {
        self.code = code;
        self
    }

    /// Appends one block of weights, 64-byte aligned, and returns its offset from the
    /// start of the weights section (what the code adds to `RunContext::weights`).
    pub fn push_weights(&mut self, bytes: &[u8]) -> u64 {
        let offset = self.weights.len().div_ceil(WEIGHT_BLOCK_ALIGN) * WEIGHT_BLOCK_ALIGN;
        self.weights.resize(offset, 0);
        self.weights.extend_from_slice(bytes);
        offset as u64
    }

    pub fn weights_len(&self) -> usize {
        self.weights.len()
    }

    /// Validates the metadata against the code and returns the artifact's bytes.
    pub fn finish(&self) -> Result<Vec<u8>, FormatError> {
        if !self.variants.is_empty() {
            return self.finish_variants();
        }
        if let Some(p) = &self.program {
            return self.finish_cuda(p);
        }
        self.metadata.validate(self.code.len() as u64)?;
        let version = self.neoc_version.as_bytes();
        if version.len() > MAX_NEOC_VERSION_LEN {
            return Err(FormatError::BadHeader(format!("neoc version is {} bytes long (at most {MAX_NEOC_VERSION_LEN})", version.len())));
        }
        if self.neoc_version.chars().any(char::is_control) {
            return Err(FormatError::BadHeader("the neoc version is not printable UTF-8".into()));
        }
        let meta = self.metadata.encode();
        let table = FIXED_HEADER_LEN + pad8(version.len());
        let header_len = table + 3 * SECTION_ENTRY_LEN;
        let meta_at = align_up(header_len as u64, METADATA_ALIGN);
        let code_at = align_up(meta_at + meta.len() as u64, CODE_ALIGN);
        let weights_at = align_up(code_at + self.code.len() as u64, WEIGHTS_ALIGN);
        let file_len = weights_at + self.weights.len() as u64;

        let mut out = Vec::with_capacity(file_len as usize);
        out.extend_from_slice(&MAGIC);
        put_u32(&mut out, FORMAT_VERSION);
        put_u32(&mut out, header_len as u32);
        put_u64(&mut out, file_len);
        put_u64(&mut out, 0); // checksum, stamped last
        put_u32(&mut out, 3);
        put_u32(&mut out, version.len() as u32);
        out.extend_from_slice(version);
        out.resize(table, 0);
        let sections: [(SectionKind, u64, &[u8]); 3] = [
            (SectionKind::Metadata, meta_at, &meta),
            (SectionKind::Code, code_at, &self.code),
            (SectionKind::Weights, weights_at, &self.weights),
        ];
        for (kind, at, data) in sections {
            put_u32(&mut out, kind as u32);
            put_u32(&mut out, 0);
            put_u64(&mut out, at);
            put_u64(&mut out, data.len() as u64);
        }
        for (_, at, data) in sections {
            out.resize(at as usize, 0);
            out.extend_from_slice(data);
        }
        debug_assert_eq!(out.len() as u64, file_len);
        stamp_checksum(&mut out);
        Ok(out)
    }

    /// Format version 3: metadata, the cuda section, weights.
    fn finish_cuda(&self, program: &crate::cuda::Program) -> Result<Vec<u8>, FormatError> {
        self.metadata.validate_signatures()?;
        if !self.metadata.cpu_features.is_empty() || !self.metadata.runtime_features.iter().any(|f| f == crate::cuda::RUNTIME_FEATURE) {
            return meta_err("a CUDA artifact requires no CPU feature and names the runtime feature 'cuda'");
        }
        program.validate(&self.metadata.inputs, &self.metadata.outputs, self.weights.len() as u64)?;
        let version = self.neoc_version.as_bytes();
        if version.len() > MAX_NEOC_VERSION_LEN || self.neoc_version.chars().any(char::is_control) {
            return Err(FormatError::BadHeader("the neoc version is too long or not printable".into()));
        }
        let meta = self.metadata.encode();
        let prog = program.encode();
        let sections: [(SectionKind, &[u8]); 3] = [(SectionKind::Metadata, &meta), (SectionKind::Cuda, &prog), (SectionKind::Weights, &self.weights)];
        let table = FIXED_HEADER_LEN + pad8(version.len());
        let header_len = table + sections.len() * SECTION_ENTRY_LEN;
        let mut at = header_len as u64;
        let mut offsets = Vec::with_capacity(sections.len());
        for (kind, data) in &sections {
            at = align_up(at, kind.align());
            offsets.push(at);
            at += data.len() as u64;
        }
        let mut out = Vec::with_capacity(at as usize);
        out.extend_from_slice(&MAGIC);
        put_u32(&mut out, CUDA_FORMAT_VERSION);
        put_u32(&mut out, header_len as u32);
        put_u64(&mut out, at);
        put_u64(&mut out, 0); // checksum, stamped last
        put_u32(&mut out, sections.len() as u32);
        put_u32(&mut out, version.len() as u32);
        out.extend_from_slice(version);
        out.resize(table, 0);
        for ((kind, data), &offset) in sections.iter().zip(&offsets) {
            put_u32(&mut out, *kind as u32);
            put_u32(&mut out, 0);
            put_u64(&mut out, offset);
            put_u64(&mut out, data.len() as u64);
        }
        for ((_, data), &offset) in sections.iter().zip(&offsets) {
            out.resize(offset as usize, 0);
            out.extend_from_slice(data);
        }
        stamp_checksum(&mut out);
        Ok(out)
    }

    /// Format version 2: metadata, the variants section, one code section per variant
    /// (flags = its index), weights.
    fn finish_variants(&self) -> Result<Vec<u8>, FormatError> {
        let mut meta = self.metadata.clone();
        meta.cpu_features = self.variants[0].0.cpu_features.clone();
        meta.entry_offset = self.variants[0].0.entry_offset;
        meta.validate(self.variants[0].1.len() as u64)?;
        let list: Vec<CodeVariant> = self.variants.iter().map(|v| v.0.clone()).collect();
        let lens: Vec<u64> = self.variants.iter().map(|v| v.1.len() as u64).collect();
        if !(2..=crate::variants::MAX_VARIANTS).contains(&list.len()) {
            return Err(FormatError::Metadata(format!("{} code variants (2 to {})", list.len(), crate::variants::MAX_VARIANTS)));
        }
        crate::variants::validate(&list, &lens, meta.isa, &meta.cpu_features, meta.entry_offset)?;
        let version = self.neoc_version.as_bytes();
        if version.len() > MAX_NEOC_VERSION_LEN || self.neoc_version.chars().any(char::is_control) {
            return Err(FormatError::BadHeader("the neoc version is too long or not printable".into()));
        }
        let meta_bytes = meta.encode();
        let variant_bytes = crate::variants::encode(&list);
        let mut sections: Vec<(SectionKind, u32, &[u8])> = vec![(SectionKind::Metadata, 0, &meta_bytes), (SectionKind::Variants, 0, &variant_bytes)];
        for (i, (_, code)) in self.variants.iter().enumerate() {
            sections.push((SectionKind::Code, i as u32, code));
        }
        sections.push((SectionKind::Weights, 0, &self.weights));
        let table = FIXED_HEADER_LEN + pad8(version.len());
        let header_len = table + sections.len() * SECTION_ENTRY_LEN;
        let mut at = header_len as u64;
        let mut offsets = Vec::with_capacity(sections.len());
        for (kind, _, data) in &sections {
            at = align_up(at, kind.align());
            offsets.push(at);
            at += data.len() as u64;
        }
        let mut out = Vec::with_capacity(at as usize);
        out.extend_from_slice(&MAGIC);
        put_u32(&mut out, VARIANTS_FORMAT_VERSION);
        put_u32(&mut out, header_len as u32);
        put_u64(&mut out, at);
        put_u64(&mut out, 0); // checksum, stamped last
        put_u32(&mut out, sections.len() as u32);
        put_u32(&mut out, version.len() as u32);
        out.extend_from_slice(version);
        out.resize(table, 0);
        for ((kind, flags, data), &offset) in sections.iter().zip(&offsets) {
            put_u32(&mut out, *kind as u32);
            put_u32(&mut out, *flags);
            put_u64(&mut out, offset);
            put_u64(&mut out, data.len() as u64);
        }
        for ((_, _, data), &offset) in sections.iter().zip(&offsets) {
            out.resize(offset as usize, 0);
            out.extend_from_slice(data);
        }
        stamp_checksum(&mut out);
        Ok(out)
    }
}
