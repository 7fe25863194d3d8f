//! Named targets: data files in `targets/*.toml`, embedded in the binary (compiler/build.rs
//! lists them), plus `host` (this machine, detected at run time), and Neo's triple form
//! (`--target-platform os=linux,arch=arm64` with `--target-option mcpu=…`, see [`platform`]).
//!
//! Every SageMaker Neo target name is in the registry under both spellings (`c5` and
//! `ml_c5`), with a status: `supported` (compiles today), `planned` (a backend that is
//! not built yet, e.g. CUDA for the GPU instances) or `unsupported` (hardware neoc cannot
//! serve, e.g. 32-bit ARM or Inferentia), and for the last two the reason, so asking for
//! one gives a precise answer instead of "unknown target".

pub mod platform;

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gpu {
    pub vendor: String,
    /// CUDA compute capability, e.g. 75 for sm_75.
    pub sm: u32,
}

/// Whether neoc can compile for a target.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Compiles today.
    #[default]
    Supported,
    /// Needs a backend that is not built yet.
    Planned,
    /// Hardware neoc cannot serve.
    Unsupported,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Supported => "supported",
            Status::Planned => "planned",
            Status::Unsupported => "unsupported",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub name: String,
    /// Other names that select this target (Neo's `ml_` spellings, `x86_64-v3`, …).
    #[serde(default)]
    pub aliases: Vec<String>,
    pub description: String,
    #[serde(default)]
    pub status: Status,
    /// Why a target is `planned` or `unsupported` (required for those, empty otherwise).
    #[serde(default)]
    pub reason: String,
    /// "x86_64" or "aarch64" for targets neoc compiles for; other values ("armv7", "x86",
    /// "none") only on unsupported targets.
    pub isa: String,
    /// The CPU model (LLVM's spelling: `skylake-avx512`, `cortex-a72`, `x86-64-v3`).
    #[serde(default)]
    pub cpu: String,
    /// CPU features the generated code may use (and the runtime checks for).
    pub features: Vec<String>,
    /// Physical cores to plan threads for.
    pub cores: usize,
    #[serde(default)]
    pub gpu: Option<Gpu>,
    /// A non-GPU accelerator (Inferentia, a DSP, an NPU), for the listing.
    #[serde(default)]
    pub accelerator: Option<String>,
    /// For a portable target: the targets whose code the artifact carries, from the least
    /// to the most demanding; the runtime runs the best one the CPU supports.
    #[serde(default)]
    pub variants: Vec<String>,
}

/// Why a target cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("unknown target '{name}'{}; `neoc targets` lists all {count} targets", did_you_mean(.suggestions))]
    Unknown { name: String, suggestions: Vec<String>, count: usize },
    #[error("target '{name}' is {status}: {reason}")]
    NotSupported { name: String, status: Status, reason: String },
    #[error("{0}")]
    Platform(String),
    #[error("the target registry is broken: {0}")]
    Registry(String),
}

fn did_you_mean(s: &[String]) -> String {
    match s {
        [] => String::new(),
        [one] => format!(" (did you mean '{one}'?)"),
        more => format!(" (did you mean one of {}?)", more.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", ")),
    }
}

mod files {
    include!(concat!(env!("OUT_DIR"), "/targets.rs"));
}

impl Target {
    /// The registry: `host` first, then every `targets/*.toml` in file-name order, each
    /// checked (its name is its file's, supported ones name a known ISA, planned and
    /// unsupported ones give a reason, names and aliases are unique).
    pub fn all() -> Result<Vec<Target>, TargetError> {
        let mut out = vec![Target::host()];
        for (stem, text) in files::FILES {
            let t: Target = toml::from_str(text).map_err(|e| TargetError::Registry(format!("targets/{stem}.toml: {e}")))?;
            if &t.name != stem {
                return Err(TargetError::Registry(format!("targets/{stem}.toml names itself '{}'", t.name)));
            }
            match t.status {
                Status::Supported if !matches!(t.isa.as_str(), "x86_64" | "aarch64") => {
                    return Err(TargetError::Registry(format!("targets/{stem}.toml: a supported target needs isa x86_64 or aarch64, not '{}'", t.isa)));
                }
                Status::Supported if !t.reason.is_empty() => return Err(TargetError::Registry(format!("targets/{stem}.toml: a supported target has no reason"))),
                Status::Planned | Status::Unsupported if t.reason.is_empty() => {
                    return Err(TargetError::Registry(format!("targets/{stem}.toml: a {} target needs a reason", t.status)));
                }
                _ => {}
            }
            for n in std::iter::once(&t.name).chain(&t.aliases) {
                if out.iter().any(|o: &Target| o.names().any(|m| m == n)) {
                    return Err(TargetError::Registry(format!("targets/{stem}.toml: the name '{n}' is taken twice")));
                }
            }
            out.push(t);
        }
        for t in &out {
            for v in &t.variants {
                if !out.iter().any(|o| &o.name == v && o.isa == t.isa && o.variants.is_empty() && o.status == Status::Supported) {
                    return Err(TargetError::Registry(format!("target '{}': variant '{v}' is not a supported single-ISA {} target", t.name, t.isa)));
                }
            }
        }
        Ok(out)
    }

    /// The name and the aliases.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.name.as_str()).chain(self.aliases.iter().map(String::as_str))
    }

    /// Any registry entry by name or alias, whatever its status (for listings).
    pub fn lookup(name: &str) -> Result<Target, TargetError> {
        let all = Target::all()?;
        if let Some(t) = all.iter().find(|t| t.names().any(|n| n == name)) {
            return Ok(t.clone());
        }
        let mut scored: Vec<(usize, &str)> = all.iter().flat_map(|t| t.names()).map(|n| (edit_distance(&name.to_lowercase(), n), n)).collect();
        scored.sort();
        let best = scored.first().map(|s| s.0).unwrap_or(usize::MAX);
        let suggestions = scored.iter().take_while(|s| s.0 == best && best <= 2.max(name.len() / 3)).take(3).map(|s| s.1.to_string()).collect();
        Err(TargetError::Unknown { name: name.to_string(), suggestions, count: all.len() })
    }

    /// A target to compile for, by name or alias: an error names a planned or unsupported
    /// target's status and reason, or the closest names for an unknown one.
    pub fn by_name(name: &str) -> Result<Target, TargetError> {
        let t = Target::lookup(name)?;
        match t.status {
            Status::Supported => Ok(t),
            status => Err(TargetError::NotSupported { name: name.to_string(), status, reason: t.reason }),
        }
    }

    /// The targets whose code a portable target's artifact carries (empty for others).
    pub fn variant_targets(&self) -> Result<Vec<Target>, TargetError> {
        self.variants.iter().map(|v| Target::by_name(v)).collect()
    }

    /// This machine's CPU.
    pub fn host() -> Target {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        Target {
            name: "host".into(),
            aliases: vec![],
            description: format!("this machine ({})", std::env::consts::ARCH),
            status: Status::Supported,
            reason: String::new(),
            isa: std::env::consts::ARCH.into(),
            cpu: "native".into(),
            features: host_features(),
            cores,
            gpu: None,
            accelerator: None,
            variants: vec![],
        }
    }

    /// `sm_75` for an NVIDIA GPU.
    pub fn gpu_arch(&self) -> Option<String> {
        self.gpu.as_ref().map(|g| format!("sm_{}", g.sm))
    }

    /// The accelerator for listings: `nvidia sm_75`, `AWS Inferentia`, ….
    pub fn accelerator_text(&self) -> Option<String> {
        self.accelerator.clone().or_else(|| self.gpu.as_ref().map(|g| format!("{} sm_{}", g.vendor, g.sm)))
    }

    /// What the test suite verifies for this target, and where.
    pub fn verified(&self) -> &'static str {
        match (self.status, self.isa.as_str()) {
            (Status::Supported, _) if self.name == "host" => "compiled and run on this machine",
            (Status::Supported, _) if self.gpu.is_some() => {
                "compiled in CI (MobileNetV2, BERT) to PTX that ptxas assembles for sm_53 to sm_90; not yet run on a GPU"
            }
            (Status::Supported, "x86_64") if !self.variants.is_empty() => {
                "compiled in CI (MobileNetV2, BERT); each code variant the CI CPU has is run and compared"
            }
            (Status::Supported, "x86_64") => "compiled in CI (MobileNetV2, BERT); x86-64 code is run in CI on the CI CPU's own features",
            (Status::Supported, _) if self.name == "rasp4b" => {
                "compiled in CI (MobileNetV2, BERT); run in CI under qemu: the node conformance cases, MobileNetV2, EfficientNet-B0, CRNN OCR, VAD LSTM"
            }
            (Status::Supported, _) if self.name == "c7g" => "compiled in CI (MobileNetV2, BERT); run in CI under qemu: MobileNetV2, VAD LSTM",
            (Status::Supported, _) => "compiled in CI (MobileNetV2, BERT); not run itself (rasp4b's and c7g's aarch64 code is run in CI, under qemu)",
            _ => "-",
        }
    }

    /// One JSON object for `neoc targets --json`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name,
            "aliases": self.aliases,
            "description": self.description,
            "isa": self.isa,
            "cpu": self.cpu,
            "features": self.features,
            "cores": self.cores,
            "gpu_arch": self.gpu_arch(),
            "accelerator": self.accelerator_text(),
            "variants": self.variants,
            "status": self.status.to_string(),
            "reason": if self.reason.is_empty() { serde_json::Value::Null } else { self.reason.clone().into() },
            "verified": self.verified(),
        })
    }
}

/// The target table of docs/targets.md, generated from the registry (a test keeps the file
/// in sync: `NEOC_BLESS=1 cargo test -p neoc-tests --test targets` rewrites it).
pub fn registry_markdown() -> Result<String, TargetError> {
    let all = Target::all()?;
    let mut s = String::from(
        "# Targets\n\nGenerated from `targets/*.toml` by `neoc::target::registry_markdown` (the test `tests/targets.rs` fails when this file is stale; `NEOC_BLESS=1 cargo test -p neoc-tests --test targets` rewrites it). `neoc targets` prints the same table; `neoc targets --json` prints it as JSON.\n\nEvery name works with `--target`, as does each alias (SageMaker Neo's `ml_` spellings). `host` is this machine, detected when neoc runs. Neo's triple form, `--target-platform os=linux,arch=arm64[,accelerator=nvidia] [--target-option mcpu=cortex-a72,mattr=+neon]`, is validated against the same tables (see docs/cli.md).\n\n",
    );
    for (status, title) in [(Status::Supported, "Supported"), (Status::Planned, "Planned"), (Status::Unsupported, "Unsupported")] {
        s.push_str(&format!("## {title}\n\n"));
        if status == Status::Supported {
            s.push_str("| name | aliases | ISA | CPU | features the code may use | verified |\n| --- | --- | --- | --- | --- | --- |\n");
        } else {
            s.push_str("| name | aliases | ISA | CPU | accelerator | reason |\n| --- | --- | --- | --- | --- | --- |\n");
        }
        for t in all.iter().filter(|t| t.status == status && t.name != "host") {
            let aliases = t.aliases.join(", ");
            let accel = t.accelerator_text().unwrap_or_default();
            let features = if t.variants.is_empty() { t.features.join(" ") } else { format!("one code section each for {}", t.variants.join(", ")) };
            let last = if status == Status::Supported { format!("{features} | {}", t.verified()) } else { format!("{accel} | {}", t.reason) };
            s.push_str(&format!("| `{}` | {aliases} | {} | {} | {last} |\n", t.name, t.isa, t.cpu));
        }
        s.push('\n');
    }
    Ok(s)
}

/// Levenshtein distance, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(target_arch = "x86_64")]
fn host_features() -> Vec<String> {
    let mut f = vec![];
    macro_rules! probe {
        ($($name:tt),*) => {$(
            if std::is_x86_feature_detected!($name) { f.push($name.to_string()); }
        )*};
    }
    probe!("sse4.2", "popcnt", "avx", "avx2", "fma", "bmi1", "bmi2", "lzcnt", "avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512vnni");
    f
}

#[cfg(target_arch = "aarch64")]
fn host_features() -> Vec<String> {
    let mut f = vec!["neon".to_string()];
    macro_rules! probe {
        ($($name:tt),*) => {$(
            if std::arch::is_aarch64_feature_detected!($name) { f.push($name.to_string()); }
        )*};
    }
    probe!("fp16", "dotprod", "i8mm", "bf16");
    f
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn host_features() -> Vec<String> {
    vec![]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_file_parses() {
        let all = Target::all().unwrap();
        assert_eq!(all.len(), files::FILES.len() + 1);
        assert!(all.iter().filter(|t| t.status == Status::Supported).all(|t| t.isa == "x86_64" || t.isa == "aarch64"));
        assert_eq!(Target::lookup("g4dn").unwrap().gpu.unwrap().sm, 75);
        assert!(Target::by_name("nope").is_err());
    }

    #[test]
    fn both_neo_spellings_select_the_same_target() {
        for (a, b) in [("c5", "ml_c5"), ("c6g", "ml_c6g"), ("x86-64-v3", "x86_64-v3")] {
            assert_eq!(Target::by_name(a).unwrap(), Target::by_name(b).unwrap());
        }
    }

    #[test]
    fn unservable_targets_say_why() {
        let e = Target::by_name("rasp3b").unwrap_err().to_string();
        assert!(e.contains("unsupported") && e.contains("32-bit ARM"), "{e}");
        let e = Target::by_name("jetson_orin").unwrap_err().to_string();
        assert!(e.contains("planned") && e.contains("--target aarch64"), "{e}");
        assert!(Target::by_name("ml_g4dn").is_ok());
        let e = Target::by_name("ml_inf1").unwrap_err().to_string();
        assert!(e.contains("Neuron"), "{e}");
        let e = Target::by_name("c5x").unwrap_err().to_string();
        assert!(e.contains("did you mean 'c5'"), "{e}");
    }

    #[test]
    fn the_portable_target_names_its_levels() {
        let t = Target::by_name("x86-64").unwrap();
        let v: Vec<String> = t.variant_targets().unwrap().into_iter().map(|t| t.name).collect();
        assert_eq!(v, ["x86-64-v2", "x86-64-v3", "x86-64-v4"]);
    }
}
