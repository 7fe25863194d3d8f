//! Load-time checks: ISA, calling convention, CPU features, kernel ABI, files.

mod common;

use common::{meta_f32x4, other_isa, write};
use neoc_runtime::{CallConv, FormatError, HostCpu, Isa, LoadError, Model, X86_64_FEATURES, AARCH64_FEATURES};

/// Code that would crash if it ran: load must refuse before running anything.
const TRAP: &[u8] = &[0x0f, 0x0b, 0x00, 0x00]; // ud2 on x86; an undefined word on aarch64

#[test]
fn wrong_isa_is_a_clear_error() {
    let mut m = meta_f32x4();
    m.isa = other_isa();
    m.call_conv = CallConv::SystemV;
    let err = Model::from_bytes(&write(m, TRAP, &[])).unwrap_err();
    assert!(matches!(err, LoadError::WrongIsa { .. }), "{err}");
    let msg = err.to_string();
    assert_eq!(msg, format!("artifact is for {}, this machine is {}", other_isa(), std::env::consts::ARCH));
}

#[test]
fn wrong_calling_convention_is_a_clear_error() {
    let mut m = meta_f32x4();
    m.call_conv = match m.isa {
        Isa::X86_64 if CallConv::host() == CallConv::SystemV => CallConv::WindowsFastcall,
        Isa::Aarch64 if CallConv::host() == CallConv::SystemV => CallConv::AppleAarch64,
        _ => CallConv::SystemV,
    };
    let err = Model::from_bytes(&write(m, TRAP, &[])).unwrap_err();
    assert!(matches!(err, LoadError::WrongCallConv { .. }), "{err}");
    assert!(err.to_string().contains("calling convention"));
}

/// A described machine without AVX-512: the check names the feature.
#[test]
fn missing_feature_on_a_described_cpu() {
    let mut m = meta_f32x4();
    m.isa = Isa::X86_64;
    m.call_conv = CallConv::SystemV;
    m.cpu_features = vec!["avx2".into(), "fma".into(), "avx512f".into()];
    let host = HostCpu {
        arch: "x86_64".into(),
        call_conv: CallConv::SystemV,
        features: ["sse2", "avx", "avx2", "fma"].iter().map(|s| s.to_string()).collect(),
    };
    let err = host.check(&m).unwrap_err();
    assert_eq!(err.to_string(), "artifact needs avx512f, this CPU lacks it");
    m.cpu_features.push("avx512bw".into());
    m.cpu_features.push("avx512vnni".into());
    assert_eq!(host.check(&m).unwrap_err().to_string(), "artifact needs avx512f, avx512bw and avx512vnni, this CPU lacks them");
    m.cpu_features.truncate(2);
    host.check(&m).unwrap();
}

/// On this machine: require every known feature it lacks (there is always one, e.g.
/// AVX-512 or SVE on most machines; otherwise the check is skipped with a note).
#[test]
fn missing_feature_on_this_cpu() {
    let host = HostCpu::detect();
    let known = match common::host_isa() {
        Isa::X86_64 => X86_64_FEATURES,
        Isa::Aarch64 => AARCH64_FEATURES,
    };
    let lacking: Vec<String> = known.iter().filter(|f| !host.has(f)).map(|f| f.to_string()).collect();
    eprintln!("this CPU has {:?}", host.features);
    let Some(first) = lacking.first() else {
        eprintln!("this CPU has every feature the runtime knows; nothing to test");
        return;
    };
    let mut m = meta_f32x4();
    m.cpu_features = host.features.iter().cloned().chain([first.clone()]).collect();
    let err = Model::from_bytes(&write(m.clone(), TRAP, &[])).unwrap_err();
    assert_eq!(err.to_string(), format!("artifact needs {first}, this CPU lacks it"));
    // With only features it has, the same artifact loads.
    m.cpu_features.pop();
    Model::from_bytes(&write(m, TRAP, &[])).unwrap();
}

#[test]
fn newer_kernel_abi_is_refused() {
    let mut m = meta_f32x4();
    m.kernel_abi_version = neoc_runtime::abi::KERNEL_ABI_VERSION + 1;
    let err = Model::from_bytes(&write(m, TRAP, &[])).unwrap_err();
    assert!(matches!(err, LoadError::KernelAbiTooNew { .. }), "{err}");
    assert!(err.to_string().contains(&format!("kernel ABI version {}", neoc_runtime::abi::KERNEL_ABI_VERSION + 1)), "{err}");
}

#[test]
fn huge_arena_is_an_error_not_an_abort() {
    let mut m = meta_f32x4();
    m.arena_size = 1 << 62;
    let bytes = write(m, TRAP, &[]);
    // Over this machine's memory: refused before anything is allocated, with the numbers.
    let err = Model::from_bytes(&bytes).unwrap_err();
    if neoc_runtime::physical_memory().is_some() {
        assert!(matches!(err, LoadError::TooMuchMemory { needs, .. } if needs >= 1 << 62), "{err}");
        assert!(err.to_string().contains("this machine's memory"), "{err}");
    }
    // With no limit, the allocation itself fails, as an error.
    let err = Model::from_bytes_with(&bytes, &neoc_runtime::LoadOptions::max_memory(None)).unwrap_err();
    assert!(matches!(err, LoadError::OutOfMemory { .. }), "{err}");
}

#[test]
fn memory_limit_is_checked_at_load() {
    let mut m = meta_f32x4();
    m.arena_size = 1 << 20;
    let bytes = write(m, TRAP, &[]);
    let err = Model::from_bytes_with(&bytes, &neoc_runtime::LoadOptions::max_memory(Some(1 << 19))).unwrap_err();
    assert!(matches!(err, LoadError::TooMuchMemory { arena: 1048576, limit: 524288, .. }), "{err}");
    assert!(err.to_string().contains("limit of 524288 bytes"), "{err}");
    Model::from_bytes_with(&bytes, &neoc_runtime::LoadOptions::max_memory(Some(2 << 20))).unwrap();
}

fn temp_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("neoc-runtime-test-{}-{name}", std::process::id()))
}

#[test]
fn load_from_file() {
    let path = temp_path("ok.neo");
    let bytes = write(meta_f32x4(), TRAP, &[&[1; 300]]);
    std::fs::write(&path, &bytes).unwrap();
    let model = Model::load(&path).unwrap();
    assert_eq!(model.inputs()[0].name, "x");
    assert_eq!(model.outputs()[0].shape, vec![4]);
    assert_eq!(model.neoc_version(), "test");
    assert_eq!(model.format_version(), 4);

    // A corrupted copy: the checksum names the problem.
    let mut bad = bytes.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x10;
    std::fs::write(&path, &bad).unwrap();
    let err = Model::load(&path).unwrap_err();
    assert!(matches!(err, LoadError::Format(FormatError::ChecksumMismatch { .. })), "{err}");

    // Empty and short files.
    std::fs::write(&path, b"").unwrap();
    assert!(matches!(Model::load(&path), Err(LoadError::Format(FormatError::TooShort { len: 0 }))));
    std::fs::write(&path, b"NEOC\0ART").unwrap();
    assert!(matches!(Model::load(&path), Err(LoadError::Format(FormatError::TooShort { len: 8 }))));
    std::fs::remove_file(&path).unwrap();

    let err = Model::load(&path).unwrap_err();
    assert!(matches!(err, LoadError::Io { .. }));
    assert!(err.to_string().contains("cannot read"), "{err}");
}
