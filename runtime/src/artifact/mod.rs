//! The `.neo` artifact: one file holding compiled code, weights and the metadata needed
//! to check and call them. The runtime owns this format; the compiler writes it only
//! through [`ArtifactWriter`], and [`Artifact::parse`] validates every byte of it.
//!
//! # Layout (format version 4, little-endian throughout)
//!
//! ```text
//! offset  size  field
//!      0     8  magic  b"NEOC\0ART"
//!      8     4  format version (u32) = 4
//!     12     4  header length (u32): bytes from 0 to the end of the section table
//!     16     8  file length (u64): the whole file, in bytes
//!     24     8  checksum (u64) of the whole file with these 8 bytes read as 0: XXH64 of
//!               the XXH64 digests of its 1 MiB chunks ([`checksum`])
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
//! 5 adds code variants ([`crate::variants`]): several code sections, the i-th with
//! `flags == i`, and a variants section (kind 4) saying which CPU features each needs;
//! artifacts with one code section are still written as version 4. Format version 6 is a
//! CUDA artifact ([`crate::cuda`]): a cuda section (kind 5) holding PTX and the launch
//! sequence takes the place of the code section, and the metadata names the runtime
//! feature `cuda`. Artifacts with machine code never use version 6. An optional steps
//! section (kind 6, versions 4 and 5) is the step table ([`StepTable`]). Versions 1, 2 and
//! 3 are read too: they are 4, 5 and 6 with the checksum taken over the whole file in one
//! pass, which cannot be split between cores. The reader checks magic, then version (a
//! newer version is refused, naming both versions, before anything else is read), file
//! length, checksum, header, every section's bounds, alignment and overlap, and finally
//! decodes and validates the metadata.
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

mod bytes;
mod metadata;
mod steps;
mod writer;

pub(crate) use bytes::Reader;
pub(crate) use bytes::{put_str, put_u32, put_u64};
pub use metadata::{Metadata, TensorSig};
pub use steps::{StepInfo, StepTable};
pub use writer::ArtifactWriter;

use crate::checksum::Xxh64;
use crate::host::Isa;
use crate::variants::CodeVariant;

pub const MAGIC: [u8; 8] = *b"NEOC\0ART";
/// The format version of artifacts with one code section (the writer's choice for them).
pub const FORMAT_VERSION: u32 = 4;
/// The format version of artifacts with code variants.
pub const VARIANTS_FORMAT_VERSION: u32 = 5;
/// The format version of CUDA artifacts (a cuda section instead of code).
pub const CUDA_FORMAT_VERSION: u32 = 6;
/// The newest format version this runtime reads and writes.
pub const NEWEST_FORMAT_VERSION: u32 = 6;
/// The oldest format version this runtime reads (1-3 are 4-6 with the whole-file checksum).
pub const OLDEST_FORMAT_VERSION: u32 = 1;
/// From this format version on, the checksum is over [`CHECKSUM_CHUNK`]-byte chunks.
pub const CHUNKED_CHECKSUM_VERSION: u32 = 4;
/// The chunk size of the chunked checksum (format versions 4-6).
pub const CHECKSUM_CHUNK: usize = 1 << 20;
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
    /// Format version 5 (and 2): the code variants ([`crate::variants`]).
    Variants = 4,
    /// Format version 6 (and 3): a CUDA program ([`crate::cuda::Program`]), instead of code.
    Cuda = 5,
    /// Optional, with machine code (versions 4, 5, 1, 2): the step table ([`StepTable`]).
    Steps = 6,
}

impl SectionKind {
    fn from_u32(k: u32) -> Option<SectionKind> {
        match k {
            1 => Some(SectionKind::Metadata),
            2 => Some(SectionKind::Code),
            3 => Some(SectionKind::Weights),
            4 => Some(SectionKind::Variants),
            5 => Some(SectionKind::Cuda),
            6 => Some(SectionKind::Steps),
            _ => None,
        }
    }

    fn align(self) -> u64 {
        match self {
            SectionKind::Metadata | SectionKind::Variants | SectionKind::Cuda | SectionKind::Steps => METADATA_ALIGN,
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
            SectionKind::Steps => "steps",
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

/// What a format version lays out: one code section, code variants, or a CUDA program.
/// Versions 4-6 are versions 1-3 with the chunked checksum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    OneCode,
    Variants,
    Cuda,
}

impl Layout {
    /// For a version between [`OLDEST_FORMAT_VERSION`] and [`NEWEST_FORMAT_VERSION`].
    fn of(version: u32) -> Layout {
        match (version - 1) % 3 {
            0 => Layout::OneCode,
            1 => Layout::Variants,
            _ => Layout::Cuda,
        }
    }
}

/// The artifact checksum of `bytes`, which must be at least [`FIXED_HEADER_LEN`] long, with
/// the checksum field read as zero. For the format version the header names:
/// - versions 1-3: XXH64 (seed 0) of the whole file;
/// - versions 4-6: XXH64 (seed 0) of the list of the XXH64 digests (seed 0, little-endian
///   u64s) of the file's consecutive [`CHECKSUM_CHUNK`]-byte chunks (the last one shorter).
///   The chunks are hashed independently, so a big artifact is verified on several cores
///   ([`checksum_on`]): one core hashes about 15 GB/s, and BERT-base's 440 MB took 28 ms of
///   its 36 ms load.
pub fn checksum(bytes: &[u8]) -> u64 {
    checksum_on(bytes, 1)
}

/// [`checksum`], hashing a chunked file's chunks on up to `threads` threads (the calling
/// one and scoped helpers; a helper the OS refuses to start leaves its share to the caller).
pub fn checksum_on(bytes: &[u8], threads: usize) -> u64 {
    if le_u32(bytes, 8) < CHUNKED_CHECKSUM_VERSION {
        let mut h = Xxh64::new(0);
        h.update(&bytes[..CHECKSUM_OFFSET]);
        h.update(&[0; 8]);
        h.update(&bytes[CHECKSUM_OFFSET + 8..]);
        return h.finish();
    }
    let chunks = bytes.len().div_ceil(CHECKSUM_CHUNK);
    // A helper thread costs tens of microseconds to start: give each at least 8 MiB.
    let threads = threads.clamp(1, chunks.div_ceil(8).max(1));
    let per = chunks.div_ceil(threads);
    let parts: Vec<Range<usize>> = (0..threads).map(|t| t * per..((t + 1) * per).min(chunks)).collect();
    let digests: Vec<u64> = std::thread::scope(|scope| {
        // Parts 1.. on helpers; a helper the OS refuses to start leaves its part to us.
        let helpers: Vec<_> = parts[1..]
            .iter()
            .map(|part| {
                let part = part.clone();
                let helper = std::thread::Builder::new().name("neoc-checksum".into());
                (part.clone(), helper.spawn_scoped(scope, move || chunk_digests(bytes, part)).ok())
            })
            .collect();
        let mut all = chunk_digests(bytes, parts[0].clone());
        for (part, handle) in helpers {
            // `chunk_digests` does not panic (its slices are in bounds), so `join` is Ok.
            all.extend(handle.and_then(|h| h.join().ok()).unwrap_or_else(|| chunk_digests(bytes, part)));
        }
        all
    });
    let mut h = Xxh64::new(0);
    for d in &digests {
        h.update(&d.to_le_bytes());
    }
    h.finish()
}

/// The digests of chunks `part` of `bytes`.
fn chunk_digests(bytes: &[u8], part: Range<usize>) -> Vec<u64> {
    part.map(|i| {
        let start = i * CHECKSUM_CHUNK;
        let chunk = &bytes[start..(start + CHECKSUM_CHUNK).min(bytes.len())];
        if i == 0 {
            // The checksum field lies in the first chunk (a chunk is longer than the header).
            let mut h = Xxh64::new(0);
            h.update(&chunk[..CHECKSUM_OFFSET]);
            h.update(&[0; 8]);
            h.update(&chunk[CHECKSUM_OFFSET + 8..]);
            h.finish()
        } else {
            crate::checksum::xxh64(chunk, 0)
        }
    })
    .collect()
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
    steps: Option<StepTable>,
    /// The code section [`Artifact::code`] is (0 until [`Artifact::use_variant`]).
    variant: usize,
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
        if version < OLDEST_FORMAT_VERSION {
            return Err(FormatError::UnknownVersion { found: version, supported: NEWEST_FORMAT_VERSION });
        }
        let file_len = le_u64(bytes, 16);
        if file_len != bytes.len() as u64 {
            return Err(FormatError::LengthMismatch { header: file_len, actual: bytes.len() });
        }
        let stored = le_u64(bytes, CHECKSUM_OFFSET);
        // Only a big file is worth helper threads (see `checksum_on`).
        let threads = if bytes.len() >= 16 * CHECKSUM_CHUNK { crate::threads::default_thread_count() } else { 1 };
        let computed = checksum_on(bytes, threads);
        if stored != computed {
            return Err(FormatError::ChecksumMismatch { stored, computed });
        }

        let layout = Layout::of(version);
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

        let mut found: [Option<(u64, u64)>; 6] = [None; 6];
        // Version 2: every code section, as (flags = variant index, offset, length).
        let mut codes: Vec<(u32, u64, u64)> = Vec::new();
        for index in 0..count {
            let e = table + index * SECTION_ENTRY_LEN;
            let kind = le_u32(bytes, e);
            let flags = le_u32(bytes, e + 4);
            let offset = le_u64(bytes, e + 8);
            let len = le_u64(bytes, e + 16);
            // Variants exist only in the variants layout, the cuda section only in the CUDA
            // layout (which has no code).
            let known = |s: &SectionKind| match s {
                SectionKind::Variants => layout == Layout::Variants,
                SectionKind::Cuda => layout == Layout::Cuda,
                SectionKind::Code | SectionKind::Steps => layout != Layout::Cuda,
                _ => true,
            };
            let Some(section) = SectionKind::from_u32(kind).filter(known) else {
                return Err(FormatError::UnknownSection { index, kind });
            };
            let variants = layout == Layout::Variants && section == SectionKind::Code;
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
        let cuda = layout == Layout::Cuda;
        let mut kinds = vec![SectionKind::Metadata, if cuda { SectionKind::Cuda } else { SectionKind::Code }, SectionKind::Weights];
        if layout == Layout::Variants {
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
        let steps_range = found[SectionKind::Steps.index()].map(|(o, l)| o as usize..(o + l) as usize);
        ranges.extend(steps_range.clone().map(|r| (SectionKind::Steps, r)));
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
        if layout == Layout::Variants {
            let list = crate::variants::decode(&bytes[ranges[3].1.clone()])?;
            let lens: Vec<u64> = code_ranges.iter().map(|r| r.len() as u64).collect();
            crate::variants::validate(&list, &lens, metadata.isa, &metadata.cpu_features, metadata.entry_offset)?;
            variants = list.into_iter().zip(code_ranges.clone()).collect();
        }
        let steps = match steps_range {
            Some(r) => {
                let table = StepTable::decode(&bytes[r])?;
                let lens: Vec<u64> = if code_ranges.is_empty() { vec![code.len() as u64] } else { code_ranges.iter().map(|r| r.len() as u64).collect() };
                table.validate(&lens)?;
                Some(table)
            }
            None => None,
        };
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
            steps,
            variant: 0,
        })
    }

    /// The program of a CUDA artifact (format version 6), validated; `None` for artifacts
    /// with machine code.
    pub fn cuda_program(&self) -> Option<&crate::cuda::Program> {
        self.program.as_ref()
    }

    /// The code variants of a version 5 artifact, each with where its code lies in the
    /// file (empty for a version 4 artifact, whose one code section is [`Artifact::code`]).
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
        self.variant = index;
    }

    /// The step table, if the artifact has one (neoc writes one into every CPU artifact;
    /// artifacts from before it have none).
    pub fn step_table(&self) -> Option<&StepTable> {
        self.steps.as_ref()
    }

    /// Each step and its function's offset in [`Artifact::code`] (the chosen variant's).
    pub fn steps(&self) -> Option<Vec<(StepInfo, u64)>> {
        let t = self.steps.as_ref()?;
        Some(t.steps.iter().cloned().zip(t.offsets[self.variant].iter().copied()).collect())
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
