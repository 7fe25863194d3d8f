//! SageMaker Neo's other way to name a target: an OS/architecture/accelerator triple
//! (`--target-platform os=linux,arch=arm64,accelerator=nvidia`) with compiler options
//! (`--target-option mcpu=cortex-a72,mattr=+neon,+dotprod,gpu-code=sm_75`). Checked
//! against the same knowledge as the named targets: an architecture or accelerator neoc
//! cannot serve gets the same kind of precise answer as `--target rasp3b`.

use super::{Gpu, Status, Target, TargetError};

/// CPU models `mcpu` accepts, with the features the code may use on them.
const X86_CPUS: &[(&[&str], &[&str])] = &[
    (&["x86-64-v2", "nehalem", "westmere", "sandybridge", "ivybridge", "goldmont", "tremont"], &["sse4.2", "popcnt"]),
    (
        &["x86-64-v3", "haswell", "broadwell", "skylake", "alderlake", "znver1", "znver2", "znver3"],
        &["sse4.2", "popcnt", "avx", "avx2", "fma", "bmi1", "bmi2", "lzcnt"],
    ),
    (
        &["x86-64-v4", "skylake-avx512"],
        &["sse4.2", "popcnt", "avx", "avx2", "fma", "bmi1", "bmi2", "lzcnt", "avx512f", "avx512bw", "avx512dq", "avx512vl"],
    ),
    (
        &["cascadelake", "cooperlake", "icelake-server", "icelake-client", "sapphirerapids", "znver4", "znver5"],
        &["sse4.2", "popcnt", "avx", "avx2", "fma", "bmi1", "bmi2", "lzcnt", "avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512vnni"],
    ),
];

const AARCH64_CPUS: &[(&[&str], &[&str])] = &[
    (&["generic", "cortex-a53", "cortex-a57", "cortex-a72", "cortex-a73"], &["neon"]),
    (&["cortex-a55", "cortex-a75", "cortex-a76", "cortex-a77", "cortex-a78", "cortex-a78ae", "neoverse-n1", "carmel"], &["neon", "fp16", "dotprod"]),
    (&["neoverse-v1", "neoverse-n2", "neoverse-v2", "cortex-x2"], &["neon", "fp16", "dotprod", "i8mm", "bf16"]),
];

/// The option keys `--target-option` accepts (Neo's compiler options).
const OPTION_KEYS: &[&str] = &["mcpu", "mattr", "gpu-code", "cuda-ver", "trt-ver"];

/// A target from Neo's triple form. `platform` is `key=value` pairs separated by commas
/// (`os`, `arch`, `accelerator`); `options` are `--target-option` values, each `key=value`
/// pairs separated by commas, where `mattr` takes a list (`mattr=+neon,+dotprod`).
pub fn from_platform(platform: &str, options: &[String]) -> Result<Target, TargetError> {
    let bad = |m: String| Err(TargetError::Platform(m));
    let (mut os, mut arch, mut accel) = (None, None, None);
    for item in platform.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((k, v)) = item.split_once('=') else {
            return bad(format!("--target-platform '{item}' should be key=value (keys: os, arch, accelerator)"));
        };
        let slot = match k.trim() {
            "os" => &mut os,
            "arch" => &mut arch,
            "accelerator" => &mut accel,
            other => return bad(format!("--target-platform: unknown key '{other}' (keys: os, arch, accelerator)")),
        };
        *slot = Some(v.trim().to_lowercase());
    }
    let Some(arch) = arch else {
        return bad("--target-platform needs arch=… (x86_64 or arm64), e.g. os=linux,arch=arm64".into());
    };
    let not = |status, reason: &str| Err(TargetError::NotSupported { name: format!("platform {platform}"), status, reason: reason.to_string() });
    match os.as_deref().unwrap_or("linux") {
        "linux" => {}
        "android" | "windows" | "macos" | "darwin" => {
            return not(Status::Unsupported, "neoc's code and runtime are built and tested for Linux only (os=linux)");
        }
        other => return bad(format!("--target-platform: unknown os '{other}' (neoc serves os=linux)")),
    }
    let (isa, table) = match arch.as_str() {
        "x86_64" | "amd64" | "x64" | "x86-64" => ("x86_64", X86_CPUS),
        "arm64" | "aarch64" | "arm64-v8a" => ("aarch64", AARCH64_CPUS),
        "armv7" | "armv7l" | "arm" | "arm_eabihf" | "arm_eabi" | "armv7-a" => {
            return not(Status::Unsupported, "32-bit ARM (armv7): Cranelift, neoc's code generator, has no 32-bit ARM backend");
        }
        "x86" | "i386" | "i686" | "x86_32" => return not(Status::Unsupported, "32-bit x86: Cranelift has no 32-bit x86 backend"),
        other => return bad(format!("--target-platform: unknown arch '{other}' (x86_64 or arm64)")),
    };

    // Options: split on commas; a bare `+feat`/`-feat` continues the previous mattr.
    let mut mcpu = None;
    let mut mattr: Vec<String> = vec![];
    let mut gpu_code = None;
    let mut last_key = "";
    for item in options.iter().flat_map(|o| o.split(',')).map(str::trim).filter(|s| !s.is_empty()) {
        let (k, v) = match item.split_once('=') {
            Some((k, v)) => (k.trim(), v.trim()),
            None if last_key == "mattr" && (item.starts_with('+') || item.starts_with('-')) => ("mattr", item),
            None => return bad(format!("--target-option '{item}' should be key=value (keys: {})", OPTION_KEYS.join(", "))),
        };
        match k {
            "mcpu" => mcpu = Some(v.to_lowercase()),
            "mattr" => mattr.push(v.to_string()),
            "gpu-code" => gpu_code = Some(v.to_lowercase()),
            "cuda-ver" | "trt-ver" => {
                if accel.as_deref() != Some("nvidia") {
                    return bad(format!("--target-option {k} applies to accelerator=nvidia only"));
                }
            }
            other => return bad(format!("--target-option: unknown key '{other}' (keys: {})", OPTION_KEYS.join(", "))),
        }
        last_key = if k == "mattr" { "mattr" } else { "" };
    }

    let mut gpu = None;
    if let Some(code) = &gpu_code {
        let Some(sm) = code.strip_prefix("sm_").and_then(|s| s.parse::<u32>().ok()) else {
            return bad(format!("--target-option gpu-code={code}: expected sm_XY, e.g. sm_75"));
        };
        if accel.as_deref() != Some("nvidia") {
            return bad(format!("--target-option gpu-code={code} needs accelerator=nvidia in --target-platform"));
        }
        gpu = Some(Gpu { vendor: "nvidia".into(), sm });
    }
    match accel.as_deref() {
        None | Some("none") | Some("cpu") => {}
        Some("nvidia") | Some("cuda") => {
            let sm = gpu.as_ref().map(|g| format!(" (sm_{})", g.sm)).unwrap_or_default();
            return not(Status::Planned, &format!("the CUDA backend is not built yet{sm}; drop accelerator=nvidia to compile for the CPU alone"));
        }
        Some("mali") | Some("intel_graphics") | Some("opencl") | Some("adreno") => {
            return not(Status::Unsupported, "neoc has no OpenCL backend; drop the accelerator to compile for the CPU alone");
        }
        Some(other) => return bad(format!("--target-platform: unknown accelerator '{other}' (none or nvidia)")),
    }

    let default_cpu = if isa == "x86_64" { "x86-64-v2" } else { "generic" };
    let cpu = mcpu.unwrap_or_else(|| default_cpu.to_string());
    let Some((_, base)) = table.iter().find(|(names, _)| names.contains(&cpu.as_str())) else {
        let known: Vec<&str> = table.iter().flat_map(|(n, _)| n.iter().copied()).collect();
        return bad(format!("--target-option mcpu={cpu} is not a {isa} CPU neoc knows ({})", known.join(", ")));
    };
    let mut features: Vec<String> = base.iter().map(|s| s.to_string()).collect();
    let known = neoc_runtime::Isa::parse(isa).expect("x86_64 and aarch64 are runtime ISAs").known_features();
    for a in &mattr {
        let (add, name) = match a.split_at(1) {
            ("+", n) => (true, n),
            ("-", n) => (false, n),
            _ => return bad(format!("--target-option mattr: '{a}' should be +feature or -feature")),
        };
        let name = if name == "fullfp16" { "fp16" } else { name };
        if !known.contains(&name) {
            return bad(format!("--target-option mattr: '{name}' is not an {isa} feature neoc knows ({})", known.join(", ")));
        }
        features.retain(|f| f != name);
        if add {
            features.push(name.to_string());
        }
    }
    if isa == "aarch64" && !features.iter().any(|f| f == "neon") {
        return bad("--target-option mattr=-neon: the aarch64 backend needs NEON".into());
    }
    let name = format!("linux-{}-{cpu}", if isa == "x86_64" { "x86_64" } else { "arm64" });
    Ok(Target {
        description: format!("--target-platform {platform}{}", if options.is_empty() { String::new() } else { format!(" --target-option {}", options.join(",")) }),
        name,
        aliases: vec![],
        status: Status::Supported,
        reason: String::new(),
        isa: isa.to_string(),
        cpu,
        features,
        cores: 1,
        gpu,
        accelerator: None,
        variants: vec![],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn arm64_with_mcpu_and_mattr() {
        let t = from_platform("os=linux,arch=arm64", &opts(&["mcpu=cortex-a72,mattr=+neon,+dotprod"])).unwrap();
        assert_eq!(t.isa, "aarch64");
        assert_eq!(t.features, ["neon", "dotprod"]);
        let t = from_platform("arch=x86_64", &opts(&["mcpu=skylake-avx512", "mattr=-avx512vl"])).unwrap();
        assert!(t.features.contains(&"avx512f".to_string()) && !t.features.contains(&"avx512vl".to_string()));
    }

    #[test]
    fn what_cannot_be_served_says_why() {
        let e = from_platform("os=linux,arch=armv7", &[]).unwrap_err().to_string();
        assert!(e.contains("32-bit ARM"), "{e}");
        let e = from_platform("os=linux,arch=arm64,accelerator=nvidia", &opts(&["gpu-code=sm_72"])).unwrap_err().to_string();
        assert!(e.contains("planned") && e.contains("CUDA"), "{e}");
        let e = from_platform("os=linux,arch=arm64", &opts(&["gpu-code=sm_72"])).unwrap_err().to_string();
        assert!(e.contains("needs accelerator=nvidia"), "{e}");
        let e = from_platform("os=linux,arch=arm64", &opts(&["mattr=+avx2"])).unwrap_err().to_string();
        assert!(e.contains("'avx2' is not an aarch64 feature"), "{e}");
        let e = from_platform("os=linux,arch=arm64", &opts(&["mcpu=pentium"])).unwrap_err().to_string();
        assert!(e.contains("mcpu=pentium"), "{e}");
        assert!(from_platform("os=linux", &[]).is_err());
    }
}
