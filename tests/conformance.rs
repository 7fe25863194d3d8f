//! The official ONNX backend conformance cases, through the reference evaluator and through
//! the compiled CPU backend (compile for the host, load with the runtime, run).
//!
//! Every case must pass except those in `conformance/expected_failures_<backend>.txt`, each
//! listed with its reason; a listed case that starts passing fails the suite too, so the
//! lists only shrink. The CPU list holds the reference list's cases plus the ops and dtypes
//! the CPU backend does not compile yet (compilation reports them by name: never a wrong
//! answer). A name in a list that is no case at all is an error too.
//!
//! The cpu backend with the target `rasp4b` (aarch64) runs the artifact's own code under
//! `qemu-aarch64-static` through `tests/qemu/`'s C host (`neoc::qemu`); its list (`_qemu`)
//! is the cpu list plus what aarch64 code does not compute yet, each refused at compile time
//! by name.
//! The `light` real networks are not run under qemu (the whole-model qemu runs are in
//! `models.rs`).
//!
//! Each run prints how many passed cases had every output computed at compile time (folded
//! by the compiler, so the backend's own code computed nothing).

use neoc::conformance::{self, Backend};
use neoc_tests::{cases_dir, root};
use std::collections::BTreeSet;

const LISTS: [&str; 3] = ["expected_failures_reference.txt", "expected_failures_cpu.txt", "expected_failures_qemu.txt"];

fn check(sub: &str, backend: Backend) {
    check_for(sub, backend, None)
}

/// [`check`] with the cpu backend compiling for `target` (an aarch64 one runs under qemu).
fn check_for(sub: &str, backend: Backend, target: Option<&str>) {
    let dir = cases_dir().join(sub);
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let report = conformance::run(&dir, backend, target, &[], threads).expect("runner works");
    assert!(report.passed + report.failed > 0, "no cases found in {}", dir.display());
    let file = match (backend, target) {
        (Backend::Reference, _) => LISTS[0],
        (_, Some(_)) => LISTS[2],
        _ => LISTS[1],
    };
    let list = root().join("tests/conformance").join(file);
    let expected = conformance::read_expected_failures(&list).expect("expected-failure list parses");
    let (unexpected, now_passing) = conformance::check_expected(&report, &expected);
    println!("{sub} ({backend:?}): {}", report.compile_time_line());
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

/// Every name in an expected-failure list is a case under the cases folder (any suite): a
/// stale name would hide nothing and mislead.
#[test]
fn expected_failure_lists_name_real_cases() {
    let dirs = conformance::discover(&cases_dir()).expect("cases are listed");
    let cases: BTreeSet<String> = dirs.iter().filter_map(|d| d.file_name()).map(|n| n.to_string_lossy().into_owned()).collect();
    let mut stale = vec![];
    for file in LISTS {
        let list = root().join("tests/conformance").join(file);
        let expected = conformance::read_expected_failures(&list).expect("expected-failure list parses");
        stale.extend(conformance::stale_names(&expected, &cases).into_iter().map(|n| format!("{}: '{n}' is no case", list.display())));
    }
    assert!(stale.is_empty(), "names in the expected-failure lists that are no case ({}):\n{}", stale.len(), stale.join("\n"));
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

#[test]
fn node_cases_qemu() {
    check_for("node", Backend::Cpu, Some(conformance::QEMU_TARGET));
}

#[test]
fn simple_cases_qemu() {
    check_for("simple", Backend::Cpu, Some(conformance::QEMU_TARGET));
}

#[test]
fn pytorch_converted_cases_qemu() {
    check_for("pytorch-converted", Backend::Cpu, Some(conformance::QEMU_TARGET));
}

#[test]
fn pytorch_operator_cases_qemu() {
    check_for("pytorch-operator", Backend::Cpu, Some(conformance::QEMU_TARGET));
}
