//! Every input that ever crashed a fuzz target (`fuzz/regressions/<target>/*`) goes through
//! that target's body again, on the stable toolchain, and must not panic. With no saved
//! crashes yet for a target, its body still runs here on a few seeds (empty input, the demo
//! model, an artifact), so the targets build and run in every test run, not only under
//! `cargo +nightly fuzz`.

use neoc_tests::fuzzing::TARGETS;
use neoc_tests::root;
use std::panic::{AssertUnwindSafe, catch_unwind};

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let digits = std::fs::read(root().join("models/digits.onnx")).expect("demo model");
    match target {
        "onnx_import" => vec![("empty".into(), vec![]), ("digits.onnx".into(), digits)],
        "compile_generated" => (0..16u8).map(|k| (format!("bytes {k}"), vec![k; 8 * k as usize])).collect(),
        _ => {
            let g = neoc::onnx::import(&neoc::onnx::load::from_bytes(digits.into(), None).unwrap(), &Default::default()).unwrap();
            let art = neoc::driver::compile(&g, &neoc::target::Target::host(), &Default::default()).unwrap().bytes;
            let mut restamp = vec![1u8];
            restamp.extend(&art);
            restamp[100] ^= 0x40;
            vec![("empty".into(), vec![]), ("artifact".into(), [vec![0u8], art].concat()), ("restamped".into(), restamp)]
        }
    }
}

#[test]
fn saved_crash_inputs_and_seeds_pass_every_target() {
    let mut failed = vec![];
    let mut total = 0;
    for (name, run) in TARGETS {
        let dir = root().join("fuzz/regressions").join(name);
        let mut inputs = seeds(name);
        let mut saved = 0;
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.flatten() {
                if e.path().is_file() && e.file_name() != ".gitkeep" {
                    inputs.push((e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).expect("readable")));
                    saved += 1;
                }
            }
        }
        for (label, bytes) in inputs {
            total += 1;
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| run(&bytes))) {
                let msg = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
                failed.push(format!("{name}/{label}: {msg}"));
            }
        }
        println!("{name}: {saved} saved crash input(s)");
    }
    assert!(failed.is_empty(), "{} of {total} inputs fail their fuzz target:\n{}", failed.len(), failed.join("\n"));
}
