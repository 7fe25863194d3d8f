//! Hostile graphs (`graphs::hostile`): every case runs through load → import → optimise →
//! compile → load → run in a child process (so an abort, a stack overflow or a hang is caught
//! and named, not fatal to the suite), with a 60-second limit and 6 GiB of address space per
//! case. Each must end in a clear error or in outputs equal to the reference evaluator's;
//! cases marked `Refuse` must be refused. The tally per class is printed.

use neoc_tests::graphs::hostile::{self, Must};
use neoc_tests::pipeline::{self, Outcome, PathOptions};
use std::collections::BTreeMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "NEOC_HOSTILE_CASE";
const TIMEOUT: Duration = Duration::from_secs(60);

/// Runs in the child: answers one case and prints the outcome on one line.
#[test]
fn hostile_child() {
    let Ok(i) = std::env::var(CHILD_ENV) else { return };
    let i: usize = i.parse().expect("case index");
    let case = hostile::cases().into_iter().nth(i).expect("case exists");
    // The pipeline runs on a thread with the main thread's usual 8 MiB stack, as `neoc` does.
    let bytes = case.bytes;
    let o = std::thread::Builder::new().stack_size(8 << 20).spawn(move || pipeline::answer(&bytes, &PathOptions::default())).expect("spawn").join().expect("no panic");
    let detail = match &o {
        Outcome::Refused { message, .. } | Outcome::RunError { message, .. } | Outcome::ReferenceFailed { message } => message.clone(),
        Outcome::Mismatch { detail } => detail.clone(),
        Outcome::Matches { outputs } => format!("{} output(s)", outputs.len()),
    };
    println!("\nOUTCOME\t{}\t{}", o.label(), detail.replace(['\n', '\t'], " "));
}

struct Result {
    name: String,
    class: &'static str,
    must: Must,
    /// The child's outcome label and detail, or what went wrong with the child.
    label: String,
    detail: String,
    ok: bool,
}

fn run_child(i: usize) -> (String, String) {
    let exe = std::env::current_exe().expect("test binary");
    // `ulimit -v`: an allocation the limits failed to stop aborts the child (and is reported)
    // instead of exhausting the machine.
    let mut child = Command::new("bash")
        .arg("-c")
        .arg("ulimit -v 6291456; exec \"$0\" hostile_child --exact --nocapture --test-threads=1")
        .arg(exe)
        .env(CHILD_ENV, i.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the child");
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut out = String::new();
            let mut err = String::new();
            child.stdout.take().map(|mut s| s.read_to_string(&mut out));
            child.stderr.take().map(|mut s| s.read_to_string(&mut err));
            // libtest prints "test hostile_child ... " before the line.
            if let Some(line) = out.lines().find_map(|l| l.find("OUTCOME\t").map(|at| &l[at..])) {
                let mut parts = line.splitn(3, '\t').skip(1);
                return (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
            }
            let tail: String = err.lines().filter(|l| !l.trim().is_empty()).take(4).collect::<Vec<_>>().join(" / ");
            return (format!("CRASH ({status})"), tail);
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return ("HANG".into(), format!("no answer in {} s", TIMEOUT.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn every_hostile_graph_is_answered() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let cases = hostile::cases();
    let n = cases.len();
    let meta: Vec<(String, &'static str, Must)> = cases.iter().map(|c| (c.name.clone(), c.class, c.must)).collect();
    drop(cases);
    // Two children at a time (the build machines have two cores).
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= n {
                    break;
                }
                let (label, detail) = run_child(i);
                let (name, class, must) = meta[i].clone();
                let answered = label.starts_with("refused") || label == "run error" || label.starts_with("ran, matches");
                let ok = answered && (must == Must::Answer || label.starts_with("refused"));
                results.lock().unwrap().push((i, Result { name, class, must, label, detail, ok }));
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|r| r.0);
    let mut tally: BTreeMap<(&str, String), usize> = BTreeMap::new();
    for (_, r) in &results {
        *tally.entry((r.class, r.label.clone())).or_default() += 1;
    }
    println!("{n} hostile graphs:");
    for ((class, label), count) in &tally {
        println!("  {class:<12} {label:<32} {count}");
    }
    if std::env::var_os("NEOC_HOSTILE_VERBOSE").is_some() {
        for (_, r) in &results {
            println!("  {:<44} {:<28} {}", r.name, r.label, r.detail);
        }
    }
    let bad: Vec<String> = results
        .iter()
        .filter(|(_, r)| !r.ok)
        .map(|(_, r)| format!("{} [{}, must {:?}]: {}: {}", r.name, r.class, r.must, r.label, r.detail))
        .collect();
    assert!(bad.is_empty(), "{} of {n} hostile graphs were not answered as they must be:\n{}", bad.len(), bad.join("\n"));
}

/// A model whose memory plan is over `--max-memory` is refused at compile time, with the
/// numbers, and compiles under a limit it fits.
#[test]
fn memory_limit_is_checked_at_compile() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let case = hostile::cases().into_iter().find(|c| c.name == "tile-200MB").expect("case");
    let tight = PathOptions { max_memory: Some(64 << 20), ..Default::default() };
    match pipeline::answer(&case.bytes, &tight) {
        Outcome::Refused { stage: "compile", message } => {
            assert!(message.contains("more than the limit of 67108864 bytes") && message.contains("--max-memory"), "{message}")
        }
        other => panic!("a 200 MB plan under a 64 MiB limit: {other:?}"),
    }
    let roomy = PathOptions { max_memory: Some(2 << 30), ..Default::default() };
    assert!(matches!(pipeline::answer(&case.bytes, &roomy), Outcome::Matches { .. }));
}
