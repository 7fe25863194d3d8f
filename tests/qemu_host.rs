//! The C host in `tests/qemu/` reads the same artifact format as the Rust runtime: on a
//! sample of real artifacts (x86-64 and aarch64 targets, format versions 4 and 5, one
//! rebuilt bigger than a checksum chunk and one rewritten as version 1) its
//! `--inspect` reports what `neoc_runtime::Artifact::parse` reads, and on corrupted ones it
//! refuses with the same `FormatError` variant and message (or its beginning). Run under qemu-aarch64.

use neoc_runtime::Artifact;
use neoc_tests::compile_digits;

/// What `--inspect` prints for the fields both sides read, from the Rust parse.
fn expected_lines(a: &Artifact) -> Vec<String> {
    let m = &a.metadata;
    let sig = |s: &neoc_runtime::TensorSig| format!("{} {} [{}]", s.name, s.dtype.onnx_code(), s.shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(","));
    let mut l = vec![
        format!("format_version {}", a.format_version),
        format!("neoc_version {}", a.neoc_version),
        format!("checksum {:#018x}", a.checksum),
        format!("target {}", m.target),
        format!("isa {}", m.isa),
        format!("call_conv {}", m.call_conv),
    ];
    l.extend(m.inputs.iter().map(|s| format!("input {}", sig(s))));
    l.extend(m.outputs.iter().map(|s| format!("output {}", sig(s))));
    l.push(format!("arena_size {}", m.arena_size));
    l.push(format!("kernel_abi_version {}", m.kernel_abi_version));
    l
}

#[test]
fn the_c_host_reads_artifacts_as_the_runtime_does() {
    let mut samples: Vec<(String, Vec<u8>)> = ["rasp4b", "c7g", "c5", "x86-64"].iter().map(|t| (t.to_string(), compile_digits(t))).collect();
    // The checksum over several chunks (the last one short), and the whole-file checksum
    // of format version 1: the c7g artifact rebuilt with 2.5 MiB more weights, and as it is
    // with its version set to 1.
    let c7g = samples[1].1.clone();
    let a = Artifact::parse(&c7g).unwrap();
    assert!(a.code_variants().is_empty());
    let mut w = neoc_runtime::ArtifactWriter::new(a.metadata.clone());
    w.neoc_version(&a.neoc_version);
    w.set_code(a.code().to_vec());
    w.push_weights(a.weights());
    w.push_weights(&(0..5 << 19).map(|i| (i % 253) as u8).collect::<Vec<u8>>());
    samples.push(("c7g, 3.5 MiB".into(), w.finish().unwrap()));
    let mut v1 = c7g.clone();
    v1[8..12].copy_from_slice(&1u32.to_le_bytes());
    neoc_runtime::artifact::stamp_checksum(&mut v1);
    samples.push(("c7g, version 1".into(), v1));
    for (target, bytes) in samples {
        let a = Artifact::parse(&bytes).expect("parses");
        let text = neoc::qemu::inspect(&bytes).expect("host runs").unwrap_or_else(|e| panic!("{target}: the host refuses it: {e}"));
        let lines: Vec<&str> = text.lines().collect();
        for want in expected_lines(&a) {
            assert!(lines.contains(&want.as_str()), "{target}: the host's --inspect lacks '{want}':\n{text}");
        }
        // Corruptions: the same refusal from both.
        let mut flipped = bytes.clone();
        flipped[bytes.len() / 2] ^= 1;
        let mut bad_magic = bytes.clone();
        bad_magic[0] ^= 0xff;
        for (what, bad) in [("a flipped bit", flipped), ("bad magic", bad_magic), ("truncation", bytes[..bytes.len() - 7].to_vec()), ("a 5-byte file", bytes[..5].to_vec())] {
            let rust = Artifact::parse(&bad).err().unwrap_or_else(|| panic!("{target}, {what}: the runtime accepts it"));
            let kind = format!("{rust:?}");
            let kind = kind.split(|c: char| !c.is_alphanumeric()).next().unwrap_or_default();
            let c = neoc::qemu::inspect(&bad).expect("host runs").err().unwrap_or_else(|| panic!("{target}, {what}: the host accepts it"));
            // Same variant; the message is the runtime's or its beginning (the host leaves
            // out some details, e.g. the bytes found in place of the magic).
            let (rust_text, head) = (format!("error {kind}: {rust}"), format!("error {kind}: "));
            assert!(c.starts_with(&head) && rust_text.starts_with(&c), "{target}, {what}: host '{c}', runtime '{rust_text}'");
        }
    }
}
