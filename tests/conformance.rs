//! The official ONNX backend conformance cases through the reference evaluator.
//!
//! Every case must pass except those in `conformance/expected_failures_reference.txt`, each
//! listed with its reason; a listed case that starts passing fails the suite too, so the list
//! only shrinks.

use neoc::conformance::{self, Backend};
use neoc_tests::{cases_dir, root};

fn check(sub: &str) {
    let dir = cases_dir().join(sub);
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let report = conformance::run(&dir, Backend::Reference, &[], threads).expect("runner works");
    assert!(report.passed + report.failed > 0, "no cases found in {}", dir.display());
    let list = root().join("tests/conformance/expected_failures_reference.txt");
    let expected = conformance::read_expected_failures(&list).expect("expected-failure list parses");
    let (unexpected, now_passing) = conformance::check_expected(&report, &expected);
    println!("{sub}: {} passed, {} failed", report.passed, report.failed);
    assert!(
        unexpected.is_empty() && now_passing.is_empty(),
        "{sub}: {} unexpected failures:\n{}\n{} listed cases now pass (remove them from {}):\n{}",
        unexpected.len(),
        unexpected.join("\n"),
        now_passing.len(),
        list.display(),
        now_passing.join("\n")
    );
}

#[test]
fn node_cases() {
    check("node");
}

#[test]
fn simple_cases() {
    check("simple");
}

#[test]
fn pytorch_converted_cases() {
    check("pytorch-converted");
}

#[test]
fn pytorch_operator_cases() {
    check("pytorch-operator");
}

#[test]
fn light_model_cases() {
    check("light");
}
