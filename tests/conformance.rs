//! The official ONNX backend conformance cases, through the reference evaluator and through
//! the compiled CPU backend (compile for the host, load with the runtime, run).
//!
//! Every case must pass except those in `conformance/expected_failures_<backend>.txt`, each
//! listed with its reason; a listed case that starts passing fails the suite too, so the
//! lists only shrink. The CPU list holds the reference list's cases plus the ops and dtypes
//! the CPU backend does not compile yet (compilation reports them by name: never a wrong
//! answer).

use neoc::conformance::{self, Backend};
use neoc_tests::{cases_dir, root};

fn check(sub: &str, backend: Backend) {
    let dir = cases_dir().join(sub);
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let report = conformance::run(&dir, backend, &[], threads).expect("runner works");
    assert!(report.passed + report.failed > 0, "no cases found in {}", dir.display());
    let file = match backend {
        Backend::Reference => "expected_failures_reference.txt",
        _ => "expected_failures_cpu.txt",
    };
    let list = root().join("tests/conformance").join(file);
    let expected = conformance::read_expected_failures(&list).expect("expected-failure list parses");
    let (unexpected, now_passing) = conformance::check_expected(&report, &expected);
    println!("{sub} ({backend:?}): {} passed, {} failed", report.passed, report.failed);
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
    check("node", Backend::Reference);
}

#[test]
fn simple_cases() {
    check("simple", Backend::Reference);
}

#[test]
fn pytorch_converted_cases() {
    check("pytorch-converted", Backend::Reference);
}

#[test]
fn pytorch_operator_cases() {
    check("pytorch-operator", Backend::Reference);
}

#[test]
fn light_model_cases() {
    check("light", Backend::Reference);
}

#[test]
fn node_cases_cpu() {
    check("node", Backend::Cpu);
}

#[test]
fn simple_cases_cpu() {
    check("simple", Backend::Cpu);
}

#[test]
fn pytorch_converted_cases_cpu() {
    check("pytorch-converted", Backend::Cpu);
}

#[test]
fn pytorch_operator_cases_cpu() {
    check("pytorch-operator", Backend::Cpu);
}

#[test]
fn light_model_cases_cpu() {
    check("light", Backend::Cpu);
}
