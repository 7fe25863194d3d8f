//! The kernel IR on real lowerings: every ONNX node conformance case and every real model
//! that the CPU backend lowers passes the kernel IR verifier, and its text form reads back
//! as the same lowering (node cases printed in full; models with their large blobs as
//! hashes, read back lossily and compared with the original blobs put back). A verifier
//! that passes everything would pass these too, so the last test breaks a real lowering
//! and checks that the verifier says where.

use std::path::Path;

use neoc::conformance::{self, discover};
use neoc::driver::CompileOptions;
use neoc::ir::Graph;
use neoc::kernel_ir::parse::{identical, parse, parse_lossy};
use neoc::kernel_ir::print::{Blobs, lowered_text};
use neoc::kernel_ir::verify::verify;
use neoc::kernel_ir::{CallArg, Mem, Step};
use neoc::lower::{Caps, Lowered};
use neoc::target::Target;
use neoc_tests::cases_dir;

/// The case's graph, imported for its first data set as the conformance runner does and
/// optimised at `level` as the compiler does (`None` when it does not import).
fn optimised(dir: &Path, level: u8) -> Option<Graph> {
    let (graph, _) = conformance::import_case(dir).ok()?;
    let opts = CompileOptions { opt_level: level, ..CompileOptions::default() };
    neoc::driver::optimise(graph, &Target::host(), &opts).ok().map(|(g, _)| g)
}

/// The case lowered for the CPU backend at `level` (`None` when it does not import or lower).
fn lowered(dir: &Path, level: u8) -> Option<Lowered> {
    neoc::lower::lower(&optimised(dir, level)?, &Caps::CPU).ok()
}

/// At opt level 0 (every op lowered by itself) and 2 (the default, fused ops).
#[test]
fn every_lowered_node_case_verifies_and_round_trips() {
    let cases = discover(&cases_dir().join("node")).expect("node cases");
    let (mut done, mut failures) = (0, vec![]);
    for (dir, level) in cases.iter().flat_map(|d| [(d, 0), (d, 2)]) {
        let Some(l) = lowered(dir, level) else { continue };
        let name = format!("{} (opt {level})", dir.file_name().unwrap_or_default().to_string_lossy());
        if let Err(e) = verify(&l) {
            failures.push(format!("{name}: {e}"));
            continue;
        }
        let text = lowered_text(&l, Blobs::Full);
        match parse(&text) {
            Ok(back) if identical(&l, &back) => done += 1,
            Ok(_) => failures.push(format!("{name}: the text parses to another lowering")),
            Err(e) => failures.push(format!("{name}: {e:#}")),
        }
    }
    println!("{done} lowerings of {} node cases (opt 0 and 2) verified and round-tripped", cases.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(done >= 3600, "only {done} node case lowerings");
}

#[test]
fn real_models_verify_and_their_steps_round_trip() {
    for name in ["resnet50", "mobilenet_v2", "efficientnet_b0", "bert", "crnn_ocr", "vad_lstm"] {
        let l = lowered(&cases_dir().join("models").join(name), 2).unwrap_or_else(|| panic!("{name} lowers"));
        verify(&l).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (mut back, hashed) = parse_lossy(&lowered_text(&l, Blobs::Hashed)).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        for i in hashed {
            back.blobs[i as usize] = l.blobs[i as usize].clone();
        }
        assert!(identical(&l, &back), "{name}: the text parses to another lowering");
        println!("{name}: {} steps, {} temporaries, {} blobs", l.steps.len(), l.temps.len(), l.blobs.len());
    }
}

/// ResNet-50's first call writes a temporary; one float less of it is an error at that
/// step, naming the node and the argument.
#[test]
fn the_verifier_catches_a_short_buffer_in_a_real_lowering() {
    let mut l = lowered(&cases_dir().join("models/resnet50"), 2).expect("resnet50 lowers");
    let (step, t) = l
        .steps
        .iter()
        .enumerate()
        .find_map(|(i, s)| match s {
            Step::Call(c) => c.declared_args().find_map(|(d, a)| match a {
                CallArg::Buf { mem: Mem::Temp(t), .. } if d.kind.writes() && d.name == "y" => Some((i, *t)),
                _ => None,
            }),
            _ => None,
        })
        .expect("a conv writing a temporary");
    l.temps[t as usize] -= 4;
    let errs = verify(&l).expect_err("a short buffer").0;
    assert!(
        errs.iter().any(|e| e.step == Some(step) && e.node == l.step_nodes[step] && e.message.contains(&format!("(y) of conv reaches bytes 0..{} of t{t}", l.temps[t as usize] + 4))),
        "{errs:#?}"
    );
}
