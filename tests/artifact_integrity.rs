//! Artifact integrity: every byte of a compiled artifact is covered by the checks the
//! loader makes before it maps any code (magic, version, length, checksum, sections,
//! metadata, ISA, CPU features, kernel ABI), and code is mapped write-xor-execute.

use neoc::driver::{self, CompileOptions};
use neoc::onnx::{self, ImportOptions};
use neoc::target::Target;
use neoc_runtime::{LoadError, Model, code_mappings_made};
use neoc_tests::root;

/// The tests of this file count code mappings process-wide: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn digits_artifact(target: &str) -> Vec<u8> {
    let model = onnx::load(&root().join("models/digits.onnx")).expect("model loads");
    let g = onnx::import(&model, &ImportOptions::default()).expect("imports");
    let t = Target::by_name(target).expect("target");
    let opts = CompileOptions::default();
    let (g, _) = driver::optimise(g, &t, &opts).expect("optimises");
    driver::compile(&g, &t, &opts).expect("compiles").bytes
}

/// Flips every byte of the artifact in turn (all 8 bits): each of the corrupt files is
/// refused, and none of them gets its code mapped.
#[test]
fn every_flipped_byte_is_refused_before_code_is_mapped() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let bytes = digits_artifact("host");
    Model::from_bytes(&bytes).expect("the intact artifact loads");
    let before = code_mappings_made();
    let mut kinds = std::collections::BTreeMap::<String, usize>::new();
    for i in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 0xff;
        let err = Model::from_bytes(&bad).expect_err("a corrupt artifact was accepted");
        let kind = match &err {
            LoadError::Format(f) => format!("{:?}", f).split(['{', '(', ' ']).next().unwrap_or("").to_string(),
            other => format!("{other:?}").split(['{', '(', ' ']).next().unwrap_or("").to_string(),
        };
        *kinds.entry(kind).or_default() += 1;
    }
    let mapped = code_mappings_made() - before;
    println!("{} of {} single-byte corruptions refused: {kinds:?}; code mappings made meanwhile: {mapped}", bytes.len(), bytes.len());
    assert_eq!(mapped, 0, "corrupt artifacts had their code mapped");
}

/// Corruption that keeps a valid checksum (restamped) is still refused by the structural
/// checks, and an artifact for another machine by the host checks: before code mapping.
#[test]
fn valid_checksums_do_not_get_bad_artifacts_mapped() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let bytes = digits_artifact("host");
    let before = code_mappings_made();
    // Restamped flips in the header and the section table.
    let mut refused = 0;
    for i in (0..64).filter(|i| !(24..32).contains(i)) {
        let mut bad = bytes.clone();
        bad[i] ^= 0x55;
        neoc_runtime::artifact::stamp_checksum(&mut bad);
        if Model::from_bytes(&bad).is_err() {
            refused += 1;
        }
    }
    assert!(refused >= 50, "only {refused} of 56 restamped header corruptions were refused");
    let arm = digits_artifact("rasp4b");
    assert!(matches!(Model::from_bytes(&arm), Err(LoadError::WrongIsa { .. })));
    // Only the accepted ones (a flip inside the neoc version string, say) were mapped.
    assert_eq!(code_mappings_made() - before, 56 - refused, "refused artifacts had code mapped");
}

/// No mapping of this process is writable and executable at once after models load.
#[test]
fn code_is_mapped_write_xor_execute() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let bytes = digits_artifact("host");
    let models: Vec<Model> = (0..3).map(|_| Model::from_bytes(&bytes).expect("loads")).collect();
    let maps = std::fs::read_to_string("/proc/self/maps").expect("Linux /proc");
    let wx: Vec<&str> = maps.lines().filter(|l| l.split_whitespace().nth(1).is_some_and(|p| p.contains('w') && p.contains('x'))).collect();
    assert!(wx.is_empty(), "writable and executable mappings: {wx:?}");
    // The code lives in anonymous read+execute mappings (adjacent ones show as one line).
    let rx = maps.lines().filter(|l| l.split_whitespace().nth(1).is_some_and(|p| p.starts_with("r-x")) && l.split_whitespace().count() == 5).count();
    assert!(rx >= 1, "no anonymous r-x mapping holds the {} models' code", models.len());
}
