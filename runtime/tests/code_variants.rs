//! Format version 2: several code variants in one artifact, the best the CPU has chosen at
//! load (or the one asked for), and every inconsistency an error.

mod common;

use common::meta_f32x4;
use neoc_runtime::artifact::{self, SectionKind, stamp_checksum};
use neoc_runtime::{Artifact, ArtifactWriter, CodeVariant, FormatError, HostCpu, LoadError, LoadOptions, Model, RunError, Tensor};

/// `mov eax, code; ret`: an entry that fails with `code`, so a run says which variant ran.
fn returns(code: u32) -> Vec<u8> {
    let mut v = vec![0xb8];
    v.extend_from_slice(&code.to_le_bytes());
    v.push(0xc3);
    v
}

fn variant(name: &str, features: &[&str]) -> CodeVariant {
    CodeVariant { name: name.into(), cpu_features: features.iter().map(|s| s.to_string()).collect(), entry_offset: 0 }
}

/// Three variants: none needed, sse2, and avx512f + avx512vl; variant i returns 100 + i.
fn three() -> Vec<u8> {
    let mut w = ArtifactWriter::new(meta_f32x4());
    w.neoc_version("test");
    w.push_weights(&[7; 40]);
    w.set_code_variants(vec![
        (variant("base", &[]), returns(100)),
        (variant("sse2", &["sse2"]), returns(101)),
        (variant("avx512", &["avx512f", "avx512vl"]), returns(102)),
    ]);
    w.finish().expect("valid artifact")
}

#[test]
fn round_trip() {
    let bytes = three();
    let a = Artifact::parse(&bytes).unwrap();
    assert_eq!(a.format_version, artifact::VARIANTS_FORMAT_VERSION);
    let names: Vec<&str> = a.code_variants().iter().map(|(v, _)| v.name.as_str()).collect();
    assert_eq!(names, ["base", "sse2", "avx512"]);
    assert_eq!(a.metadata.cpu_features, Vec::<String>::new(), "the metadata describes the baseline");
    for (v, r) in a.code_variants() {
        assert_eq!(r.start as u64 % artifact::CODE_ALIGN, 0, "{}", v.name);
    }
    assert_eq!(&a.weights()[..40], &[7; 40]);
    assert_eq!(&bytes[r(&a, 2)], &returns(102)[..]);
}

fn r(a: &Artifact<'_>, i: usize) -> std::ops::Range<usize> {
    a.code_variants()[i].1.clone()
}

#[test]
fn one_code_section_is_version_4() {
    let mut w = ArtifactWriter::new(meta_f32x4());
    w.set_code(vec![0xc3]);
    let a = w.finish().unwrap();
    assert_eq!(Artifact::parse(&a).unwrap().format_version, 4);
    assert!(Artifact::parse(&a).unwrap().code_variants().is_empty());
}

#[cfg(target_arch = "x86_64")]
#[test]
fn load_runs_the_best_variant_the_cpu_has_or_the_one_asked_for() {
    let bytes = three();
    let x = Tensor::from_vec([4], vec![0f32; 4]).unwrap();
    let host = HostCpu::detect();
    let best = if host.has("avx512f") && host.has("avx512vl") { 2 } else { 1 };
    let m = Model::from_bytes(&bytes).unwrap();
    assert_eq!(m.code_variant(), Some(["base", "sse2", "avx512"][best]));
    assert_eq!(m.run(&[x.clone()]).unwrap_err(), RunError::Code(100 + best as i32));
    for (i, name) in ["base", "sse2"].iter().enumerate() {
        let m = Model::from_bytes_with(&bytes, &LoadOptions { code_variant: Some(name.to_string()), ..LoadOptions::default() }).unwrap();
        assert_eq!(m.run(&[x.clone()]).unwrap_err(), RunError::Code(100 + i as i32));
    }
    let e = Model::from_bytes_with(&bytes, &LoadOptions { code_variant: Some("sve".into()), ..LoadOptions::default() }).unwrap_err();
    assert!(matches!(e, LoadError::NoSuchVariant { .. }), "{e}");
    assert!(e.to_string().contains("base, sse2, avx512"), "{e}");
    if best == 1 {
        let e = Model::from_bytes_with(&bytes, &LoadOptions { code_variant: Some("avx512".into()), ..LoadOptions::default() }).unwrap_err();
        assert!(matches!(e, LoadError::MissingCpuFeatures { .. }), "{e}");
    }
}

#[test]
fn a_single_code_artifact_refuses_a_variant_name() {
    let mut w = ArtifactWriter::new(meta_f32x4());
    w.set_code(vec![0xc3]);
    let e = Model::from_bytes_with(&w.finish().unwrap(), &LoadOptions { code_variant: Some("x86-64-v3".into()), ..LoadOptions::default() }).unwrap_err();
    assert!(e.to_string().contains("only one code section"), "{e}");
}

#[test]
fn inconsistent_variants_are_errors() {
    let mut w = ArtifactWriter::new(meta_f32x4());
    w.set_code_variants(vec![(variant("only", &[]), returns(1))]);
    assert!(w.finish().is_err(), "one variant is version 1's job");
    w.set_code_variants(vec![(variant("a", &[]), returns(1)), (variant("a", &["sse2"]), returns(2))]);
    assert!(w.finish().unwrap_err().to_string().contains("repeated name"));
    let mut far = variant("b", &[]);
    far.entry_offset = 100;
    w.set_code_variants(vec![(variant("a", &[]), returns(1)), (far, returns(2))]);
    assert!(w.finish().unwrap_err().to_string().contains("outside"));

    // A version 2 file whose second code section claims to be variant 0 too.
    let mut bytes = three();
    let table = header_table(&bytes);
    let code_entries: Vec<usize> = table.iter().copied().filter(|&e| u32::from_le_bytes(bytes[e..e + 4].try_into().unwrap()) == SectionKind::Code as u32).collect();
    bytes[code_entries[1] + 4..code_entries[1] + 8].copy_from_slice(&0u32.to_le_bytes());
    stamp_checksum(&mut bytes);
    assert!(matches!(Artifact::parse(&bytes), Err(FormatError::BadHeader(_))));

    // A version 1 file may not have a variants section.
    let mut bytes = three();
    bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
    stamp_checksum(&mut bytes);
    assert!(Artifact::parse(&bytes).is_err());
}

/// Byte offsets of the section table's entries.
fn header_table(bytes: &[u8]) -> Vec<usize> {
    let count = u32::from_le_bytes(bytes[32..36].try_into().unwrap()) as usize;
    let ver = u32::from_le_bytes(bytes[36..40].try_into().unwrap()) as usize;
    let at = artifact::FIXED_HEADER_LEN + ver.div_ceil(8) * 8;
    (0..count).map(|i| at + i * artifact::SECTION_ENTRY_LEN).collect()
}

#[test]
fn every_single_byte_flip_is_an_error_or_still_valid() {
    // Mutations of a v2 file with a restamped checksum must never panic.
    let bytes = three();
    for i in (0..bytes.len()).step_by(7) {
        let mut b = bytes.clone();
        b[i] ^= 0x5a;
        if b.len() >= 40 {
            stamp_checksum(&mut b);
        }
        let _ = Artifact::parse(&b);
    }
}
