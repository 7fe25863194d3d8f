//! No Rust-only kernel is left in the aarch64 path: the machine code of aarch64 artifacts
//! (every node conformance case that compiles for rasp4b, the real models for rasp4b and
//! c7g) calls only the documented runtime services, `neoc_runtime::abi::SERVICES`.
//!
//! This reads the artifact, not the compiler's bookkeeping: the code section is
//! disassembled (`aarch64-linux-gnu-objdump`, from the cross toolchain the qemu tests need
//! anyway; `NEOC_AARCH64_OBJDUMP` overrides it). The code has no relocations, so the only
//! way out of it is an indirect call (`blr xN`) through a pointer it loaded; each `blr`'s
//! register is traced back, within its basic block, to the instruction that set it, which
//! must be `ldr xN, [xT, #off]` with `off` the kernel-table offset of a service. A `blr`
//! whose callee cannot be traced that way fails the test, as do direct branches leaving the
//! code and system calls. A control compiles the digits model for rasp4b with the x86-64
//! choices (runtime GEMM) and checks the scan reports that call.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use neoc_runtime::abi::{Kernel, SERVICES};
use neoc_tests::{cases_dir, root, scratch};

/// One instruction as objdump prints it.
struct Ins {
    addr: u64,
    mnemonic: String,
    operands: String,
}

fn disassemble(code: &[u8], scratch_dir: &Path, tag: &str) -> Vec<Ins> {
    let path = scratch_dir.join(format!("{tag}.bin"));
    std::fs::write(&path, code).expect("write code");
    let objdump = std::env::var("NEOC_AARCH64_OBJDUMP").unwrap_or_else(|_| "aarch64-linux-gnu-objdump".into());
    let out = Command::new(&objdump)
        .args(["-D", "-b", "binary", "-m", "aarch64"])
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("{objdump}: {e} (Debian: apt-get install gcc-aarch64-linux-gnu; scripts/setup.sh does)"));
    assert!(out.status.success(), "{objdump}: {}", String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_file(&path);
    // Lines look like "  8a0:\t97fffdd8 \tbl\t0x0" (address, word, mnemonic, operands).
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (addr, rest) = l.split_once(":\t")?;
            let addr = u64::from_str_radix(addr.trim(), 16).ok()?;
            let mut f = rest.split('\t');
            let _word = f.next()?;
            let mnemonic = f.next()?.trim().to_string();
            let operands = f.next().unwrap_or("").split("//").next().unwrap_or("").trim().to_string();
            Some(Ins { addr, mnemonic, operands })
        })
        .collect()
}

/// The general registers (`xN`/`wN`) an operand list names, in order.
fn gprs(ops: &str) -> Vec<u32> {
    ops.split(|c: char| !c.is_ascii_alphanumeric())
        .filter_map(|t| t.strip_prefix('x').or_else(|| t.strip_prefix('w'))?.parse().ok())
        .collect()
}

/// The general registers an instruction writes (its first operand, both for a pair load),
/// by the aarch64 convention that the destination comes first; stores, compares, branches
/// and hints write none.
fn writes(i: &Ins) -> Vec<u32> {
    let m = i.mnemonic.as_str();
    let exclusive_store = m.starts_with("st") && (m.ends_with("xr") || m.ends_with("xp"));
    let none = (m.starts_with("st") && !exclusive_store)
        || m.starts_with("b")
        || m.starts_with("cb")
        || m.starts_with("tb")
        || m.starts_with("ccm")
        || m.starts_with("fcmp")
        || m.starts_with("fccmp")
        || ["cmp", "cmn", "tst", "ret", "prfm", "nop", "dmb", "dsb", "isb", "brk", "udf", "hint", "msr"].contains(&m);
    let first = i.operands.split(',').next().unwrap_or("").trim();
    let is_gpr = first.len() > 1 && (first.starts_with('x') || first.starts_with('w')) && first[1..].parse::<u32>().is_ok();
    if none || !is_gpr {
        return vec![];
    }
    let r = gprs(&i.operands);
    if m.starts_with("ldp") || m.starts_with("ldnp") { r.into_iter().take(2).collect() } else { r.into_iter().take(1).collect() }
}

/// A branch's target address (the last operand, `0x…`).
fn target(i: &Ins) -> Option<u64> {
    u64::from_str_radix(i.operands.rsplit(' ').next()?.strip_prefix("0x")?, 16).ok()
}

/// What an artifact's code calls: the count per kernel, and every problem found.
#[derive(Default)]
struct Scan {
    calls: BTreeMap<&'static str, usize>,
    problems: Vec<String>,
}

fn scan(code: &[u8], scratch_dir: &Path, tag: &str) -> Scan {
    let ins = disassemble(code, scratch_dir, tag);
    assert!(!ins.is_empty(), "{tag}: objdump printed no instructions");
    let is_branch = |m: &str| ["b", "bl", "cbz", "cbnz", "tbz", "tbnz", "adr"].contains(&m) || m.starts_with("b.");
    let mut starts: BTreeSet<u64> = BTreeSet::from([0]);
    for i in &ins {
        if is_branch(&i.mnemonic) {
            starts.extend(target(i));
        }
        if ["b", "br", "ret"].contains(&i.mnemonic.as_str()) {
            starts.insert(i.addr + 4);
        }
    }
    let mut s = Scan::default();
    for (k, i) in ins.iter().enumerate() {
        let m = i.mnemonic.as_str();
        if ["svc", "hvc", "smc"].contains(&m) {
            s.problems.push(format!("{tag}: a system call ({m}) at {:#x}", i.addr));
        }
        if is_branch(m) && m != "adr" && target(i).is_some_and(|t| t >= code.len() as u64) {
            s.problems.push(format!("{tag}: {m} at {:#x} leaves the code ({})", i.addr, i.operands));
        }
        if m != "blr" {
            continue;
        }
        let r = gprs(&i.operands)[0];
        // Back from the call to the nearest instruction setting the register, not past the
        // start of the block (a branch target, or the instruction after a jump or return).
        let mut def = None;
        for j in (0..k).rev() {
            if starts.contains(&ins[j + 1].addr) {
                break;
            }
            if writes(&ins[j]).contains(&r) {
                def = Some(&ins[j]);
                break;
            }
        }
        let Some(d) = def else {
            s.problems.push(format!("{tag}: blr x{r} at {:#x}: nothing in its block sets x{r}", i.addr));
            continue;
        };
        // `ldr xN, [xT, #off]`: the kernel table's entry at `off`.
        let off = (d.mnemonic == "ldr")
            .then(|| d.operands.split_once('[')?.1.strip_suffix(']')?.split_once(", #")?.1.parse::<usize>().ok())
            .flatten();
        match off.map(|o| (o, Kernel::ALL.iter().find(|k| k.offset() == o))) {
            Some((_, Some(k))) if SERVICES.contains(k) => *s.calls.entry(k.name()).or_default() += 1,
            Some((_, Some(k))) => s.problems.push(format!("{tag}: blr at {:#x} calls the runtime kernel `{}`, not a service", i.addr, k.name())),
            _ => s.problems.push(format!("{tag}: blr at {:#x} calls through `{} {}` at {:#x}, not a kernel-table entry", i.addr, d.mnemonic, d.operands, d.addr)),
        }
    }
    s
}

/// The artifact's code (its only code variant: aarch64 artifacts have one).
fn code_of(bytes: &[u8]) -> Vec<u8> {
    let a = neoc_runtime::Artifact::parse(bytes).expect("artifact parses");
    assert_eq!(a.metadata.isa, neoc_runtime::Isa::Aarch64);
    a.code().to_vec()
}

fn compile(g: neoc::ir::Graph, target: &str) -> Result<Vec<u8>, String> {
    let t = neoc::target::Target::by_name(target).expect("target");
    let opts = neoc::driver::CompileOptions::default();
    let (g, _) = neoc::driver::optimise(g, &t, &opts).map_err(|e| format!("{e:#}"))?;
    neoc::driver::compile(&g, &t, &opts).map(|a| a.bytes).map_err(|e| format!("{e:#}"))
}

fn check(scans: &[Scan], what: &str) -> BTreeMap<&'static str, usize> {
    let mut calls = BTreeMap::new();
    let mut problems = Vec::new();
    for s in scans {
        for (k, n) in &s.calls {
            *calls.entry(*k).or_default() += n;
        }
        problems.extend(s.problems.iter().cloned());
    }
    println!("{what}: {} artifacts; service calls in their code: {calls:?}", scans.len());
    assert!(problems.is_empty(), "{what}: {} problem(s):\n{}", problems.len(), problems.join("\n"));
    calls
}

#[test]
fn real_models_for_rasp4b_and_c7g_call_only_the_services() {
    let dir = scratch("aarch64-services-models");
    let mut scans = Vec::new();
    for (model, targets) in [
        ("mobilenet_v2", &["rasp4b", "c7g"][..]),
        ("efficientnet_b0", &["rasp4b"]),
        ("resnet50", &["rasp4b"]),
        ("bert", &["rasp4b", "c7g"]),
        ("crnn_ocr", &["rasp4b"]),
        ("vad_lstm", &["rasp4b", "c7g"]),
    ] {
        let (g, _) = neoc::conformance::import_case(&cases_dir().join("models").join(model)).expect("imports");
        for t in targets {
            let bytes = compile(g.clone(), t).unwrap_or_else(|e| panic!("{model} for {t}: {e}"));
            scans.push(scan(&code_of(&bytes), &dir, &format!("{model}-{t}")));
        }
    }
    let digits = neoc_tests::compile_digits("rasp4b");
    scans.push(scan(&code_of(&digits), &dir, "digits-rasp4b"));
    let calls = check(&scans, "real models");
    // The scan sees the calls that are there: the parallel loop nests go through parallel_for.
    assert!(calls.get("parallel_for").copied().unwrap_or(0) > 100, "{calls:?}");
}

#[test]
fn node_cases_for_rasp4b_call_only_the_services() {
    let dir = scratch("aarch64-services-node");
    let cases = neoc::conformance::discover(&cases_dir().join("node")).expect("node cases");
    let mut scans = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let Ok((g, _)) = neoc::conformance::import_case(case) else { continue };
        // Cases refused at compile time (the qemu expected-failure list says which and why)
        // make no artifact to read.
        let Ok(bytes) = compile(g, "rasp4b") else { continue };
        scans.push(scan(&code_of(&bytes), &dir, &name));
    }
    let calls = check(&scans, "node cases");
    assert!(scans.len() > 1500, "only {} node cases compiled for rasp4b", scans.len());
    for k in SERVICES {
        assert!(calls.contains_key(k.name()), "no node case calls `{}`: {calls:?}", k.name());
    }
}

/// The control: the same model lowered with the x86-64 choices (GEMM through the runtime's
/// kernel) for rasp4b; the scan must find that call.
#[test]
fn the_scan_finds_a_runtime_kernel_call() {
    let dir = scratch("aarch64-services-control");
    let model = neoc::onnx::load(&root().join("models/digits.onnx")).expect("digits.onnx loads");
    let g = neoc::onnx::import(&model, &Default::default()).expect("imports");
    let t = neoc::target::Target::by_name("rasp4b").expect("target");
    let (g, _) = neoc::driver::optimise(g, &t, &Default::default()).expect("optimises");
    let art = neoc::backend::cpu::compile_with_caps(&g, &t, &neoc::lower::Caps::CPU).expect("compiles");
    let s = scan(&code_of(&art.bytes), &dir, "digits-rasp4b-cpu-caps");
    assert!(s.problems.iter().any(|p| p.contains("calls the runtime kernel `sgemm")), "the scan missed the GEMM call: {:?} {:?}", s.problems, s.calls);
}
