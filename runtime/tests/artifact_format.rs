//! The `.neo` format: writer → bytes → parse round trips, and every kind of corruption
//! is an error, never a panic.

mod common;

use common::{Rng, meta_f32x4, write};
use neoc_runtime::artifact::{self, CODE_ALIGN, FORMAT_VERSION, SectionKind, WEIGHTS_ALIGN, stamp_checksum};
use neoc_runtime::{Artifact, ArtifactWriter, CallConv, DType, FormatError, Isa, Metadata, TensorSig};

fn rich_meta() -> Metadata {
    Metadata {
        target: "c5".into(),
        isa: Isa::X86_64,
        call_conv: CallConv::SystemV,
        cpu_features: vec!["avx2".into(), "fma".into(), "avx512f".into()],
        inputs: vec![
            TensorSig::new("input_ids", DType::I64, [1, 128]),
            TensorSig::new("attention_mask", DType::I64, [1, 128]),
            TensorSig::new("scalar", DType::F32, []),
        ],
        outputs: vec![TensorSig::new("logits", DType::F32, [1, 128, 768]), TensorSig::new("packed", DType::I4, [3, 3])],
        arena_size: 1 << 20,
        entry_offset: 2,
        kernel_abi_version: 1,
        runtime_features: vec![],
    }
}

fn rich_artifact() -> Vec<u8> {
    let mut w = ArtifactWriter::new(rich_meta());
    w.neoc_version("0.1.0-test");
    assert_eq!(w.push_weights(&[1; 10]), 0);
    assert_eq!(w.push_weights(&[2; 100]), 64);
    assert_eq!(w.push_weights(&[3; 1]), 192);
    w.set_code(vec![0x90, 0x90, 0x31, 0xc0, 0xc3]);
    w.finish().unwrap()
}

/// Where the section table starts for a neoc version of `len` bytes.
fn table_at(version_len: usize) -> usize {
    artifact::FIXED_HEADER_LEN + version_len.div_ceil(8) * 8
}

#[test]
fn round_trip() {
    let bytes = rich_artifact();
    let a = Artifact::parse(&bytes).unwrap();
    assert_eq!(a.format_version, FORMAT_VERSION);
    assert_eq!(a.neoc_version, "0.1.0-test");
    assert_eq!(a.metadata, rich_meta());
    assert_eq!(a.code(), &[0x90, 0x90, 0x31, 0xc0, 0xc3]);
    let w = a.weights();
    assert_eq!(w.len(), 193);
    assert_eq!(&w[0..10], &[1; 10]);
    assert!(w[10..64].iter().all(|&b| b == 0));
    assert_eq!(&w[64..164], &[2; 100]);
    assert_eq!(w[192], 3);
    assert_eq!(a.code_range().start as u64 % CODE_ALIGN, 0);
    assert_eq!(a.weights_range().start as u64 % WEIGHTS_ALIGN, 0);
    assert_eq!(&bytes[..8], b"NEOC\0ART");
    assert_eq!(a.checksum, artifact::checksum(&bytes));
    assert_eq!(a.metadata.outputs[0].byte_len(), 128 * 768 * 4);
    assert_eq!(a.metadata.outputs[1].byte_len(), 5, "nine 4-bit values pack into 5 bytes");
}

#[test]
fn empty_weights_and_no_inputs_round_trip() {
    let mut m = meta_f32x4();
    m.inputs.clear();
    m.cpu_features.clear();
    let bytes = write(m.clone(), &[0xc3], &[]);
    let a = Artifact::parse(&bytes).unwrap();
    assert_eq!(a.metadata, m);
    assert!(a.weights().is_empty());
}

#[test]
fn writer_rejects_invalid_metadata() {
    type Edit = Box<dyn Fn(&mut Metadata)>;
    let cases: Vec<(&str, Edit, Vec<u8>)> = vec![
        ("entry outside code", Box::new(|m| m.entry_offset = 5), vec![0xc3]),
        ("empty code", Box::new(|_| {}), vec![]),
        ("unknown feature", Box::new(|m| m.cpu_features = vec!["avx9000".into()]), vec![0xc3]),
        ("aarch64 feature on x86", Box::new(|m| m.cpu_features = vec!["dotprod".into()]), vec![0xc3]),
        ("duplicate input names", Box::new(|m| m.inputs.push(m.inputs[0].clone())), vec![0xc3]),
        ("x86 with the Apple aarch64 convention", Box::new(|m| m.call_conv = CallConv::AppleAarch64), vec![0xc3]),
        ("kernel ABI 0", Box::new(|m| m.kernel_abi_version = 0), vec![0xc3]),
        ("unaddressable shape", Box::new(|m| m.outputs[0].shape = vec![usize::MAX, 4]), vec![0xc3]),
        (
            "misaligned aarch64 entry",
            Box::new(|m| {
                m.isa = Isa::Aarch64;
                m.entry_offset = 2;
            }),
            vec![0; 8],
        ),
    ];
    for (what, edit, code) in cases {
        let mut m = meta_f32x4();
        m.isa = Isa::X86_64;
        m.call_conv = CallConv::SystemV;
        edit(&mut m);
        let mut w = ArtifactWriter::new(m);
        w.set_code(code);
        let err = w.finish().expect_err(what);
        eprintln!("{what}: {err}");
    }
    let mut m = meta_f32x4();
    m.isa = Isa::X86_64;
    m.cpu_features = vec!["avx9000".into()];
    let mut w = ArtifactWriter::new(m);
    w.set_code(vec![0xc3]);
    assert_eq!(w.finish().unwrap_err().to_string(), "the code requires CPU feature 'avx9000', which this runtime does not know for x86_64 and so cannot check");
}

#[test]
fn newer_format_version_names_both_versions() {
    let mut bytes = rich_artifact();
    bytes[8..12].copy_from_slice(&7u32.to_le_bytes());
    // Refused before the checksum is looked at, since a newer format may hash differently.
    let err = Artifact::parse(&bytes).unwrap_err();
    assert_eq!(err, FormatError::NewerVersion { found: 7, supported: 6 });
    let msg = err.to_string();
    assert!(msg.contains("version 7") && msg.contains("version 6"), "{msg}");
    bytes[8..12].copy_from_slice(&0u32.to_le_bytes());
    assert_eq!(Artifact::parse(&bytes).unwrap_err(), FormatError::UnknownVersion { found: 0, supported: 6 });
}

/// An artifact of a little over `mib` MiB: weights of a byte pattern that differs per chunk.
fn artifact_of_mib(mib: usize) -> Vec<u8> {
    let mut w = ArtifactWriter::new(meta_f32x4());
    w.set_code(vec![0xc3]);
    let weights: Vec<u8> = (0..mib << 20).map(|i| (i % 251) as u8 ^ (i >> 20) as u8).collect();
    w.push_weights(&weights);
    w.finish().unwrap()
}

#[test]
fn the_checksum_is_the_digest_of_the_chunk_digests() {
    use neoc_runtime::xxh64;
    let bytes = artifact_of_mib(2);
    assert_eq!(Artifact::parse(&bytes).unwrap().format_version, FORMAT_VERSION);
    // Three chunks, the last one short; the checksum field reads as zero.
    let mut zeroed = bytes.clone();
    zeroed[24..32].fill(0);
    let digests: Vec<u8> = zeroed.chunks(artifact::CHECKSUM_CHUNK).flat_map(|c| xxh64(c, 0).to_le_bytes()).collect();
    assert_eq!(digests.len(), 3 * 8);
    let want = xxh64(&digests, 0);
    assert_eq!(u64::from_le_bytes(bytes[24..32].try_into().unwrap()), want);
    assert_eq!(artifact::checksum(&bytes), want);
    // A file of a whole number of chunks, hashed on any number of threads (more threads
    // than chunks, parts of unequal length), gives the same.
    let big = artifact_of_mib(40);
    let one = artifact::checksum_on(&big, 1);
    for threads in [2, 3, 5, 7, 64] {
        assert_eq!(artifact::checksum_on(&big, threads), one, "{threads} threads");
    }
    let mut exact = big[..8 << 20].to_vec();
    let len = exact.len() as u64;
    exact[16..24].copy_from_slice(&len.to_le_bytes());
    assert_eq!(artifact::checksum_on(&exact, 3), artifact::checksum_on(&exact, 1));
    // A flipped bit in the first, a middle and the last chunk is caught (the big file is
    // verified on several threads).
    for at in [33, 20 << 20, big.len() - 1] {
        let mut bad = big.clone();
        bad[at] ^= 0x40;
        assert!(matches!(Artifact::parse(&bad), Err(FormatError::ChecksumMismatch { .. })), "flip at {at}");
    }
}

#[test]
fn whole_file_checksums_of_versions_1_to_3_are_still_read() {
    use neoc_runtime::xxh64;
    let mut bytes = artifact_of_mib(2);
    bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
    stamp_checksum(&mut bytes);
    let mut zeroed = bytes.clone();
    zeroed[24..32].fill(0);
    assert_eq!(u64::from_le_bytes(bytes[24..32].try_into().unwrap()), xxh64(&zeroed, 0));
    let a = Artifact::parse(&bytes).unwrap();
    assert_eq!(a.format_version, 1);
    assert_eq!(a.weights().len(), 2 << 20);
    // A version 4 header over a whole-file checksum is a mismatch, and the reverse.
    let mut four = bytes.clone();
    four[8..12].copy_from_slice(&4u32.to_le_bytes());
    assert!(matches!(Artifact::parse(&four), Err(FormatError::ChecksumMismatch { .. })));
    let mut one = artifact_of_mib(2);
    one[8..12].copy_from_slice(&1u32.to_le_bytes());
    assert!(matches!(Artifact::parse(&one), Err(FormatError::ChecksumMismatch { .. })));
}

#[test]
fn bad_magic_and_short_files() {
    let mut bytes = rich_artifact();
    bytes[0] = b'X';
    assert!(matches!(Artifact::parse(&bytes), Err(FormatError::BadMagic { .. })));
    assert!(Artifact::parse(&[]).unwrap_err().to_string().contains("too short"));
    let onnx_like = b"\x08\x07\x12\x07pytorch\x1a\x032.1:\xa0\x01\n\x1e\n\x05input\x12\x06output\x1a\x04Relu\x22\x04Relu";
    assert!(onnx_like.len() >= 40);
    assert!(matches!(Artifact::parse(onnx_like), Err(FormatError::BadMagic { .. })));
}

#[test]
fn checksum_mismatch_is_reported() {
    let mut bytes = rich_artifact();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let err = Artifact::parse(&bytes).unwrap_err();
    assert!(matches!(err, FormatError::ChecksumMismatch { .. }), "{err}");
    assert!(err.to_string().contains("corrupt"));
}

#[test]
fn truncated_at_every_point_is_an_error() {
    let bytes = rich_artifact();
    for len in 0..bytes.len() {
        let t = &bytes[..len];
        assert!(Artifact::parse(t).is_err(), "truncated to {len}");
        // Also with the length field and checksum made to agree, so the structure checks
        // (section bounds) are what must catch it.
        if len >= artifact::FIXED_HEADER_LEN {
            let mut t = t.to_vec();
            t[16..24].copy_from_slice(&(len as u64).to_le_bytes());
            stamp_checksum(&mut t);
            assert!(Artifact::parse(&t).is_err(), "truncated to {len}, restamped");
        }
    }
    // Extended files are refused too.
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(Artifact::parse(&longer), Err(FormatError::LengthMismatch { .. })));
}

/// Every bit of the header, section table and metadata flipped in turn: always an
/// error (the checksum at least). Then the same with the checksum restamped, so the
/// structure and metadata checks face every flip: no panic, whatever the outcome.
#[test]
fn every_bit_flipped_in_header_and_metadata() {
    let bytes = rich_artifact();
    let a = Artifact::parse(&bytes).unwrap();
    let meta_end = a.code_range().start; // the metadata and its padding lie before the code
    let mut accepted_after_restamp = 0;
    for byte in 0..meta_end {
        for bit in 0..8 {
            let mut b = bytes.clone();
            b[byte] ^= 1 << bit;
            assert!(Artifact::parse(&b).is_err(), "flip of byte {byte} bit {bit} accepted");
            stamp_checksum(&mut b);
            if Artifact::parse(&b).is_ok() {
                accepted_after_restamp += 1;
                // Only string contents can change harmlessly, never the fixed header
                // (bar the checksum itself, which restamping puts back).
                assert!(byte >= 40 || (24..32).contains(&byte), "restamped flip of header byte {byte} bit {bit} accepted");
            }
        }
    }
    eprintln!("{accepted_after_restamp} restamped flips gave another valid artifact (string contents)");
}

#[test]
fn bits_flipped_in_code_and_weights_fail_the_checksum() {
    let bytes = rich_artifact();
    let a = Artifact::parse(&bytes).unwrap();
    for range in [a.code_range(), a.weights_range()] {
        for byte in range {
            for bit in [0, 3, 7] {
                let mut b = bytes.clone();
                b[byte] ^= 1 << bit;
                assert!(matches!(Artifact::parse(&b), Err(FormatError::ChecksumMismatch { .. })));
            }
        }
    }
}

#[test]
fn random_bytes_are_errors() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for i in 0..3000 {
        let len = rng.below(6000);
        let mut b = rng.bytes(len);
        assert!(Artifact::parse(&b).is_err());
        // Random contents behind a plausible header: right magic, version and length,
        // a valid checksum, so the section table and metadata are what gets checked.
        if len >= 40 {
            b[..8].copy_from_slice(b"NEOC\0ART");
            b[8..12].copy_from_slice(&1u32.to_le_bytes());
            b[16..24].copy_from_slice(&(len as u64).to_le_bytes());
            if i % 2 == 0 {
                // A small, believable header length and section count.
                let count = rng.below(5) as u32;
                let ver = rng.below(16) as u32;
                let hl = 40 + (ver as usize).div_ceil(8) * 8 + 24 * count as usize;
                b[12..16].copy_from_slice(&(hl as u32).to_le_bytes());
                b[32..36].copy_from_slice(&count.to_le_bytes());
                b[36..40].copy_from_slice(&ver.to_le_bytes());
            }
            stamp_checksum(&mut b);
            assert!(Artifact::parse(&b).is_err());
        }
    }
}

/// Random mutations of a valid artifact (byte overwrites, including in the section
/// table and metadata lengths), restamped: never a panic.
#[test]
fn random_mutations_never_panic() {
    let bytes = rich_artifact();
    let meta_end = Artifact::parse(&bytes).unwrap().code_range().start;
    let mut rng = Rng(42);
    for _ in 0..20_000 {
        let mut b = bytes.clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(meta_end);
            b[at] = match rng.below(4) {
                0 => 0,
                1 => 0xff,
                _ => rng.next() as u8,
            };
        }
        stamp_checksum(&mut b);
        let _ = Artifact::parse(&b);
    }
}

/// Builds a structurally wrong file by editing the section table of a valid one.
fn with_entry(edit: impl Fn(&mut [u8], usize)) -> Result<(), FormatError> {
    let mut b = write(meta_f32x4(), &[0xc3], &[&[7; 100]]);
    let table = table_at("test".len());
    edit(&mut b, table);
    stamp_checksum(&mut b);
    Artifact::parse(&b).map(|_| ())
}

fn set_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn set_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn get_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

#[test]
fn section_table_errors_are_specific() {
    // Entries: 0 metadata, 1 code, 2 weights; fields kind +0, flags +4, offset +8, len +16.
    let e = |i: usize, t: usize| t + 24 * i;
    assert_eq!(with_entry(|b, t| set_u32(b, e(1, t), 9)), Err(FormatError::UnknownSection { index: 1, kind: 9 }));
    // The code entry relabelled as weights (its offset suits both alignments).
    assert_eq!(with_entry(|b, t| set_u32(b, e(1, t), 3)), Err(FormatError::DuplicateSection(SectionKind::Weights)));
    assert!(matches!(with_entry(|b, t| set_u32(b, e(0, t) + 4, 1)), Err(FormatError::BadHeader(_))));
    assert!(matches!(
        with_entry(|b, t| { let o = get_u64(b, e(1, t) + 8); set_u64(b, e(1, t) + 8, o + 64) }),
        Err(FormatError::SectionMisaligned { section: SectionKind::Code, align: 4096, .. })
    ));
    assert!(matches!(
        with_entry(|b, t| { let o = get_u64(b, e(2, t) + 8); set_u64(b, e(2, t) + 8, o - 8) }),
        Err(FormatError::SectionMisaligned { section: SectionKind::Weights, align: 64, .. })
    ));
    assert!(matches!(
        with_entry(|b, t| set_u64(b, e(2, t) + 16, 1 << 40)),
        Err(FormatError::SectionOutOfBounds { section: SectionKind::Weights, .. })
    ));
    assert!(matches!(
        with_entry(|b, t| set_u64(b, e(2, t) + 16, u64::MAX)),
        Err(FormatError::SectionOutOfBounds { .. })
    ));
    assert!(matches!(
        with_entry(|b, t| set_u64(b, e(0, t) + 8, 0)),
        Err(FormatError::SectionOutOfBounds { section: SectionKind::Metadata, .. })
    ));
    // Weights moved onto the code.
    assert!(matches!(
        with_entry(|b, t| { let o = get_u64(b, e(1, t) + 8); set_u64(b, e(2, t) + 8, o) }),
        Err(FormatError::SectionOverlap(..))
    ));
    // Three entries claimed, two kinds present: the third a second metadata.
    assert_eq!(with_entry(|b, t| set_u32(b, e(2, t), 1)), Err(FormatError::DuplicateSection(SectionKind::Metadata)));
    // Section count says 2: the header length no longer matches.
    assert!(matches!(with_entry(|b, _| set_u32(b, 32, 2)), Err(FormatError::BadHeader(_))));
    assert!(matches!(with_entry(|b, _| set_u32(b, 36, 1000)), Err(FormatError::BadHeader(_))));
    assert!(matches!(with_entry(|b, _| set_u32(b, 32, u32::MAX)), Err(FormatError::BadHeader(_))));
    // Metadata one byte shorter: the decoder runs out; one byte longer: trailing byte
    // (it then also overlaps nothing, as the code is page-aligned far away).
    assert!(matches!(
        with_entry(|b, t| { let l = get_u64(b, e(0, t) + 16); set_u64(b, e(0, t) + 16, l - 1) }),
        Err(FormatError::Metadata(m)) if m.contains("truncated")
    ));
    assert!(matches!(
        with_entry(|b, t| { let l = get_u64(b, e(0, t) + 16); set_u64(b, e(0, t) + 16, l + 1) }),
        Err(FormatError::Metadata(m)) if m.contains("unexpected bytes")
    ));
}

#[test]
fn missing_section_is_reported() {
    // Rewrite a valid file with a 2-entry table (metadata and code, no weights).
    let b = write(meta_f32x4(), &[0xc3], &[]);
    let old_table = table_at(4);
    let mut out = b[..old_table].to_vec();
    set_u32(&mut out, 32, 2);
    set_u32(&mut out, 12, (old_table + 48) as u32);
    out.extend_from_slice(&b[old_table..old_table + 48]);
    // The metadata sits right after the old 3-entry table; keep every offset as it was
    // by padding back to the old header length.
    out.resize(old_table + 72, 0);
    out.extend_from_slice(&b[old_table + 72..]);
    stamp_checksum(&mut out);
    assert_eq!(Artifact::parse(&out).unwrap_err(), FormatError::MissingSection(SectionKind::Weights));
}

#[test]
fn metadata_decoding_errors_name_the_field() {
    // An unknown dtype code: find the input's dtype by re-encoding with a marker shape.
    let mut m = meta_f32x4();
    m.isa = Isa::X86_64;
    m.call_conv = CallConv::SystemV;
    m.inputs[0].shape = vec![0x0123_4567_89ab];
    let mut b = write(m, &[0xc3], &[]);
    let marker = 0x0123_4567_89abu64.to_le_bytes();
    let at = b.windows(8).position(|w| w == marker).unwrap();
    // Layout before the dim: dtype u32, rank u32.
    set_u32(&mut b, at - 8, 99);
    stamp_checksum(&mut b);
    let msg = Artifact::parse(&b).unwrap_err().to_string();
    assert!(msg.contains("input 0 ('x')") && msg.contains("dtype code 99"), "{msg}");
    set_u32(&mut b, at - 8, 8); // strings (code 8) are runtime tensors: one handle per element
    stamp_checksum(&mut b);
    assert_eq!(Artifact::parse(&b).unwrap().metadata.inputs[0].dtype, DType::String);
}

#[test]
fn checksum_of_100_mb_is_fast() {
    let mut w = ArtifactWriter::new(meta_f32x4());
    w.set_code(vec![0xc3]);
    w.push_weights(&vec![0x5a; 100 << 20]);
    let bytes = w.finish().unwrap();
    let t = std::time::Instant::now();
    Artifact::parse(&bytes).unwrap();
    let dt = t.elapsed();
    eprintln!("parsed (and hashed) a {} MB artifact in {dt:?}", bytes.len() >> 20);
    assert!(dt.as_secs_f64() < 5.0, "hashing 100 MB took {dt:?}");
}

#[test]
fn runtime_features_round_trip_and_stay_optional() {
    let plain = write(meta_f32x4(), &[0xc3], &[]);
    let mut m = meta_f32x4();
    m.runtime_features = vec!["strings-regex".into()];
    let with = write(m.clone(), &[0xc3], &[]);
    assert_eq!(Artifact::parse(&with).unwrap().metadata, m);
    assert_eq!(Artifact::parse(&plain).unwrap().metadata.runtime_features, Vec::<String>::new());
    // Without features the metadata ends at the kernel ABI version, as before the list existed.
    let meta_len = |b: &[u8]| u64::from_le_bytes(b[table_at(4) + 16..table_at(4) + 24].try_into().unwrap());
    assert_eq!(meta_len(&with) - meta_len(&plain), 4 + 4 + "strings-regex".len() as u64);
}
