//! Bad input never panics: truncated, bit-flipped and random files fed to the loader and the
//! importer each end in an error (or, for harmless flips, a model), never in a panic.

use bytes::Bytes;
use neoc::onnx::{self, ImportOptions};
use neoc_tests::root;

/// xorshift64*: a tiny deterministic generator, so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Loads and imports `bytes`; returns whether it was accepted. Panics propagate (failing the test).
fn try_model(bytes: Vec<u8>) -> bool {
    match onnx::load::from_bytes(Bytes::from(bytes), None) {
        Ok(m) => onnx::import(&m, &ImportOptions::default()).is_ok(),
        Err(e) => {
            assert!(!format!("{e:#}").is_empty());
            false
        }
    }
}

fn seeds() -> Vec<Vec<u8>> {
    let mut v = vec![std::fs::read(root().join("models/digits.onnx")).expect("digits model")];
    for m in ["crnn_ocr", "vad_lstm"] {
        v.push(std::fs::read(root().join(format!("tests/models/{m}.onnx"))).expect("test model"));
    }
    v
}

#[test]
fn truncated_files_are_errors() {
    for seed in seeds() {
        let n = seed.len();
        for cut in (0..n).step_by((n / 200).max(1)).chain([n - 1]) {
            assert!(!try_model(seed[..cut].to_vec()) || cut == n, "a file truncated to {cut} of {n} bytes was accepted");
        }
    }
}

#[test]
fn bit_flips_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut accepted = 0;
    for seed in seeds() {
        for _ in 0..400 {
            let mut b = seed.clone();
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            accepted += try_model(b) as usize;
        }
    }
    println!("{accepted} of 1200 bit-flipped models still imported");
}

#[test]
fn random_bytes_are_errors() {
    let mut rng = Rng(42);
    for len in [0usize, 1, 2, 7, 64, 1000, 100_000] {
        for _ in 0..20 {
            let b: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            assert!(!try_model(b), "{len} random bytes were accepted as a model");
        }
    }
}

#[test]
fn missing_files_and_external_data_are_clear_errors() {
    let e = onnx::load(&root().join("no/such/model.onnx")).err().expect("missing file is an error");
    assert!(format!("{e:#}").contains("no/such/model.onnx"), "{e:#}");

    // A model whose initializer lives in a side file that is not there.
    use neoc::onnx::proto::*;
    use prost::Message;
    let w = TensorProto {
        name: Some("w".into()),
        data_type: Some(1),
        dims: vec![4],
        data_location: Some(tensor_proto::DataLocation::External as i32),
        external_data: vec![StringStringEntryProto { key: Some("location".into()), value: Some("weights.bin".into()) }],
        ..Default::default()
    };
    let vi = |n: &str| ValueInfoProto {
        name: Some(n.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(1),
                shape: Some(TensorShapeProto {
                    dim: vec![tensor_shape_proto::Dimension { value: Some(tensor_shape_proto::dimension::Value::DimValue(4)), ..Default::default() }],
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    };
    let model = ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(17) }],
        graph: Some(GraphProto {
            node: vec![NodeProto { op_type: Some("Identity".into()), input: vec!["w".into()], output: vec!["y".into()], ..Default::default() }],
            initializer: vec![w],
            output: vec![vi("y")],
            ..Default::default()
        }),
        ..Default::default()
    };
    let dir = std::env::temp_dir().join(format!("neoc-ext-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.onnx");
    std::fs::write(&path, model.encode_to_vec()).unwrap();
    let m = onnx::load(&path).expect("the model itself decodes");
    let e = onnx::import(&m, &ImportOptions::default()).err().expect("missing side file is an error");
    assert!(e.to_string().contains("weights.bin"), "{e}");
    // With the side file present (16 bytes = 4 floats) it imports and evaluates; a short
    // file is an error that says so.
    let floats: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(dir.join("weights.bin"), &floats).unwrap();
    let m = onnx::load(&path).unwrap();
    let g = onnx::import(&m, &ImportOptions::default()).expect("external data imports");
    let out = neoc::eval::run(&g, &[]).unwrap();
    assert_eq!(out[0].to_f64_vec().unwrap(), vec![1.0, 2.0, 3.0, 4.0]);
    std::fs::write(dir.join("weights.bin"), &floats[..8]).unwrap();
    let m = onnx::load(&path).unwrap();
    let e = onnx::import(&m, &ImportOptions::default()).err().expect("short external data is an error");
    assert!(e.to_string().contains("raw_data holds 8 bytes"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}
