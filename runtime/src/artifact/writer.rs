//! [`ArtifactWriter`]: the compiler's only way to write a `.neo` file.

use super::bytes::{put_u32, put_u64};
use super::*;

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
    steps: Option<super::StepTable>,
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
            steps: None,
        }
    }

    /// Code variants instead of one code section (format version 5): `(variant, code)`
    /// from the least to the most demanding. The metadata's CPU features and entry offset
    /// are taken from the first; [`ArtifactWriter::set_code`] is then unused.
    pub fn set_code_variants(&mut self, variants: Vec<(CodeVariant, Vec<u8>)>) -> &mut Self {
        self.variants = variants;
        self
    }

    /// A CUDA program instead of code (format version 6; see [`crate::cuda`]). The metadata
    /// must name the runtime feature `cuda` and no CPU feature; code is then unused.
    pub fn set_cuda_program(&mut self, program: crate::cuda::Program) -> &mut Self {
        self.program = Some(program);
        self
    }

    /// The step table (section kind 6): each step function's node, op, kind, FLOPs and
    /// offset in every code section; checked against the code by [`ArtifactWriter::finish`].
    pub fn set_steps(&mut self, steps: super::StepTable) -> &mut Self {
        self.steps = Some(steps);
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
        let meta = self.metadata.encode();
        let steps = self.steps_section(&[self.code.len() as u64])?;
        let mut sections = vec![(SectionKind::Metadata, 0, &meta[..]), (SectionKind::Code, 0, &self.code[..]), (SectionKind::Weights, 0, &self.weights[..])];
        sections.extend(steps.as_deref().map(|s| (SectionKind::Steps, 0, s)));
        self.assemble(FORMAT_VERSION, &sections)
    }

    /// The step table's bytes, checked against the code sections' lengths.
    fn steps_section(&self, code_lens: &[u64]) -> Result<Option<Vec<u8>>, FormatError> {
        let Some(t) = &self.steps else { return Ok(None) };
        t.validate(code_lens)?;
        Ok(Some(t.encode()))
    }

    /// Format version 6: metadata, the cuda section, weights.
    fn finish_cuda(&self, program: &crate::cuda::Program) -> Result<Vec<u8>, FormatError> {
        self.metadata.validate_signatures()?;
        if !self.metadata.cpu_features.is_empty() || !self.metadata.runtime_features.iter().any(|f| f == crate::cuda::RUNTIME_FEATURE) {
            return meta_err("a CUDA artifact requires no CPU feature and names the runtime feature 'cuda'");
        }
        program.validate(&self.metadata.inputs, &self.metadata.outputs, self.weights.len() as u64)?;
        let meta = self.metadata.encode();
        let prog = program.encode();
        self.assemble(CUDA_FORMAT_VERSION, &[(SectionKind::Metadata, 0, &meta), (SectionKind::Cuda, 0, &prog), (SectionKind::Weights, 0, &self.weights)])
    }

    /// Format version 5: metadata, the variants section, one code section per variant
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
        let meta_bytes = meta.encode();
        let variant_bytes = crate::variants::encode(&list);
        let steps = self.steps_section(&lens)?;
        let mut sections: Vec<(SectionKind, u32, &[u8])> = vec![(SectionKind::Metadata, 0, &meta_bytes), (SectionKind::Variants, 0, &variant_bytes)];
        for (i, (_, code)) in self.variants.iter().enumerate() {
            sections.push((SectionKind::Code, i as u32, code));
        }
        sections.push((SectionKind::Weights, 0, &self.weights));
        sections.extend(steps.as_deref().map(|s| (SectionKind::Steps, 0, s)));
        self.assemble(VARIANTS_FORMAT_VERSION, &sections)
    }

    /// The file: the header (magic, format version, lengths, neoc version, the section
    /// table of kind, flags, offset and length) and then the sections in order, each at the
    /// first offset its kind's alignment allows; the checksum is stamped last.
    fn assemble(&self, format_version: u32, sections: &[(SectionKind, u32, &[u8])]) -> Result<Vec<u8>, FormatError> {
        let version = self.neoc_version.as_bytes();
        if version.len() > MAX_NEOC_VERSION_LEN {
            return Err(FormatError::BadHeader(format!("neoc version is {} bytes long (at most {MAX_NEOC_VERSION_LEN})", version.len())));
        }
        if self.neoc_version.chars().any(char::is_control) {
            return Err(FormatError::BadHeader("the neoc version is not printable UTF-8".into()));
        }
        let table = FIXED_HEADER_LEN + pad8(version.len());
        let header_len = table + sections.len() * SECTION_ENTRY_LEN;
        let mut at = header_len as u64;
        let mut offsets = Vec::with_capacity(sections.len());
        for (kind, _, data) in sections {
            at = align_up(at, kind.align());
            offsets.push(at);
            at += data.len() as u64;
        }
        let mut out = Vec::with_capacity(at as usize);
        out.extend_from_slice(&MAGIC);
        put_u32(&mut out, format_version);
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
        debug_assert_eq!(out.len() as u64, at);
        stamp_checksum(&mut out);
        Ok(out)
    }
}
