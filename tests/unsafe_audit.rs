//! The `unsafe` audit, kept true: every `unsafe` block and `unsafe impl` in the workspace's
//! Rust sources has a `SAFETY:` comment saying why it is sound (within the 8 lines before
//! it or the 2 after, or a `SAFETY (each …)` comment over a group earlier in the same
//! function), and every `unsafe fn` states its contract (`# Safety`, or a SAFETY comment).
//! Prints the count per file. A text scan, not a parser: it reads code before `//`.

use neoc_tests::root;
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n != "target" && n != "corpus") {
                rust_files(&p, out);
            }
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The line with the contents of its string literals removed (`extern "C"` becomes
/// `extern ""`), so text about `unsafe` is not taken for code.
fn strip_strings(line: &str) -> String {
    let mut out = String::new();
    let mut in_str = false;
    let mut prev = ' ';
    for c in line.chars() {
        if c == '"' && prev != '\\' {
            in_str = !in_str;
            out.push(c);
        } else if !in_str {
            out.push(c);
        }
        prev = c;
    }
    out
}

fn is_fn_start(line: &str) -> bool {
    let t = line.trim_start();
    let t = t.strip_prefix("pub(crate) ").or_else(|| t.strip_prefix("pub(super) ")).or_else(|| t.strip_prefix("pub ")).unwrap_or(t);
    let t = t.strip_prefix("unsafe ").unwrap_or(t);
    let t = t.strip_prefix("extern \"C\" ").or_else(|| t.strip_prefix("extern \"\" ")).unwrap_or(t);
    t.starts_with("fn ")
}

#[test]
fn every_unsafe_block_says_why_it_is_sound() {
    let mut files = vec![];
    for d in ["compiler", "runtime", "tests", "benches", "fuzz/fuzz_targets"] {
        rust_files(&root().join(d), &mut files);
    }
    files.sort();
    let (mut blocks, mut fns, mut impls) = (0, 0, 0);
    let mut missing = vec![];
    let mut table = vec![];
    for f in &files {
        let text = std::fs::read_to_string(f).expect("readable");
        let lines: Vec<&str> = text.lines().collect();
        let (mut b, mut u, mut m) = (0, 0, 0);
        for (i, line) in lines.iter().enumerate() {
            let code = strip_strings(line.split("//").next().unwrap_or(""));
            let code = code.as_str();
            let window = |before: usize, after: usize| lines[i.saturating_sub(before)..(i + after + 1).min(lines.len())].join("\n");
            let mut rest = code;
            while let Some(at) = rest.find("unsafe") {
                let before_ok = at == 0 || !rest.as_bytes()[at - 1].is_ascii_alphanumeric() && rest.as_bytes()[at - 1] != b'_';
                let after = rest[at + 6..].trim_start();
                rest = &rest[at + 6..];
                if !before_ok {
                    continue;
                }
                let (kind, ok) = if after.starts_with("impl") {
                    m += 1;
                    ("impl", window(8, 0).contains("SAFETY"))
                } else if after.starts_with("fn") || (after.starts_with("extern") && after.contains("fn ") && !after.contains("fn(")) {
                    u += 1;
                    ("fn", window(12, 0).contains("# Safety") || window(12, 2).contains("SAFETY"))
                } else if after.starts_with('{') || (after.is_empty() && lines.get(i + 1).is_some_and(|l| l.trim_start().starts_with('{'))) {
                    b += 1;
                    let near = window(8, 2).contains("SAFETY");
                    let group = lines[..i].iter().rev().take_while(|l| !is_fn_start(l)).any(|l| l.contains("SAFETY ("));
                    ("block", near || group)
                } else {
                    continue;
                };
                if !ok {
                    missing.push(format!("{}:{} ({kind}): {}", f.strip_prefix(root()).unwrap_or(f).display(), i + 1, line.trim()));
                }
            }
        }
        if b + u + m > 0 {
            table.push(format!("  {:<48} {b:>4} blocks {u:>4} unsafe fns {m:>3} unsafe impls", f.strip_prefix(root()).unwrap_or(f).display().to_string()));
        }
        blocks += b;
        fns += u;
        impls += m;
    }
    println!("unsafe in {} files: {blocks} blocks, {fns} unsafe fns, {impls} unsafe impls\n{}", table.len(), table.join("\n"));
    assert!(missing.is_empty(), "{} unsafe sites without a SAFETY comment:\n{}", missing.len(), missing.join("\n"));
}
