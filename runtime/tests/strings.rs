//! String tensors through the runtime: inputs become handles, outputs come back as
//! `String`s, dtype checks, corrupt handles, and the `strings-regex` load check.

mod common;

use common::{meta, write};
use neoc_runtime::{DType, LoadError, Model, Role, RunError, Tensor, TensorMut, TensorRef, TensorSig};

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Code copying 16 bytes (two handles) from input 0 to output 0.
#[cfg(all(target_arch = "x86_64", unix))]
fn copy_model(input: DType) -> Model {
    let m = meta(vec![TensorSig::new("x", input, [2])], vec![TensorSig::new("y", DType::String, [2])]);
    Model::from_bytes(&write(m, common::x86::COPY16, &[])).unwrap()
}

#[cfg(all(target_arch = "x86_64", unix))]
#[test]
fn strings_round_trip() {
    let model = copy_model(DType::String);
    let x = Tensor::from_strings([2], strings(&["héllo", ""])).unwrap();
    let out = model.run(std::slice::from_ref(&x)).unwrap();
    assert_eq!(out[0].dtype(), DType::String);
    assert_eq!(out[0].as_strings().unwrap(), x.as_strings().unwrap());

    // run_into overwrites whatever the caller's strings held.
    let mut y = strings(&["old", "stale"]);
    let shape = [2];
    let inputs = strings(&["a", "日本"]);
    model.run_into(&[TensorRef::from_strings(&shape, &inputs).unwrap()], &mut [TensorMut::from_strings(&shape, &mut y).unwrap()]).unwrap();
    assert_eq!(y, inputs);
    let named = model.run_named(&[("x", TensorRef::from_strings(&shape, &inputs).unwrap())]).unwrap();
    assert_eq!(named[0].as_strings().unwrap(), inputs.as_slice());
}

#[cfg(all(target_arch = "x86_64", unix))]
#[test]
fn wrong_dtypes_are_errors() {
    let model = copy_model(DType::String);
    let f = Tensor::from_vec([2], vec![1f32, 2.]).unwrap();
    let err = model.run(&[f]).unwrap_err();
    assert_eq!(err, RunError::DType { role: Role::Input, index: 0, name: "x".into(), expected: DType::String, got: DType::F32 });
    assert_eq!(err.to_string(), "input 0 ('x'): expected dtype string, got f32");
    let x = Tensor::from_strings([2], strings(&["a", "b"])).unwrap();
    let mut wrong = [0u64; 2];
    let shape = [2];
    let err = model.run_into(&[x.view()], &mut [TensorMut::from_slice(&shape, &mut wrong).unwrap()]).unwrap_err();
    assert!(matches!(err, RunError::DType { role: Role::Output, expected: DType::String, got: DType::U64, .. }), "{err}");
    assert!(matches!(Tensor::from_strings([3], strings(&["a"])), Err(neoc_runtime::TensorError::StringCount { expected: 3, got: 1, .. })));
}

/// Code that leaves a handle the heap never gave out: an error, not a wild read.
#[cfg(all(target_arch = "x86_64", unix))]
#[test]
fn a_bad_handle_is_an_error() {
    let model = copy_model(DType::U64);
    let err = model.run(&[Tensor::from_vec([2], vec![0u64, 12345]).unwrap()]).unwrap_err();
    assert_eq!(err, RunError::BadStringHandle { index: 0, name: "y".into(), handle: 12345 });
    // Handle 0 is the empty string.
    let out = model.run(&[Tensor::from_vec([2], vec![0u64, 0]).unwrap()]).unwrap();
    assert_eq!(out[0].as_strings().unwrap(), &["", ""]);
}

#[test]
fn runtime_features_are_checked_at_load() {
    const TRAP: &[u8] = &[0x0f, 0x0b, 0x00, 0x00];
    let mut m = meta(vec![], vec![TensorSig::new("y", DType::String, [1])]);
    m.runtime_features = vec!["strings-regex".into()];
    let loaded = Model::from_bytes(&write(m.clone(), TRAP, &[]));
    if cfg!(feature = "strings-regex") {
        assert_eq!(loaded.unwrap().metadata().runtime_features, ["strings-regex"]);
    } else {
        let err = loaded.unwrap_err();
        assert!(matches!(err, LoadError::MissingRuntimeFeature { .. }), "{err}");
        assert!(err.to_string().contains("features = [\"strings-regex\"]"), "{err}");
    }
    m.runtime_features = vec!["no-such-feature".into()];
    let err = Model::from_bytes(&write(m, TRAP, &[])).unwrap_err();
    assert!(err.to_string().contains("cargo feature 'no-such-feature'"), "{err}");
}
