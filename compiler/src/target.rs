//! Named targets: data files in `targets/*.toml`, embedded in the binary, plus `host` (this
//! machine, detected at run time).

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gpu {
    pub vendor: String,
    /// CUDA compute capability, e.g. 75 for sm_75.
    pub sm: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub name: String,
    pub description: String,
    /// "x86_64" or "aarch64".
    pub isa: String,
    /// CPU features the generated code may use (and the runtime checks for).
    pub features: Vec<String>,
    /// Physical cores to plan threads for.
    pub cores: usize,
    #[serde(default)]
    pub gpu: Option<Gpu>,
}

const FILES: &[(&str, &str)] = &[
    ("c5", include_str!("../../targets/c5.toml")),
    ("c6i", include_str!("../../targets/c6i.toml")),
    ("m5", include_str!("../../targets/m5.toml")),
    ("c6g", include_str!("../../targets/c6g.toml")),
    ("c7g", include_str!("../../targets/c7g.toml")),
    ("rasp4b", include_str!("../../targets/rasp4b.toml")),
    ("x86-64-v2", include_str!("../../targets/x86-64-v2.toml")),
    ("x86-64-v3", include_str!("../../targets/x86-64-v3.toml")),
    ("x86-64-v4", include_str!("../../targets/x86-64-v4.toml")),
    ("g4dn", include_str!("../../targets/g4dn.toml")),
];

impl Target {
    /// Every named target, `host` first.
    pub fn all() -> Result<Vec<Target>> {
        let mut out = vec![Target::host()];
        for (name, text) in FILES {
            let t: Target = toml::from_str(text).map_err(|e| anyhow::anyhow!("targets/{name}.toml: {e}"))?;
            if &t.name != name {
                bail!("targets/{name}.toml names itself '{}'", t.name);
            }
            out.push(t);
        }
        Ok(out)
    }

    pub fn by_name(name: &str) -> Result<Target> {
        let all = Target::all()?;
        match all.iter().find(|t| t.name == name) {
            Some(t) => Ok(t.clone()),
            None => bail!("unknown target '{name}'; known targets: {}", all.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ")),
        }
    }

    /// This machine's CPU.
    pub fn host() -> Target {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        Target {
            name: "host".into(),
            description: format!("this machine ({})", std::env::consts::ARCH),
            isa: std::env::consts::ARCH.into(),
            features: host_features(),
            cores,
            gpu: None,
        }
    }
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
        assert_eq!(all.len(), FILES.len() + 1);
        assert!(all.iter().all(|t| t.isa == "x86_64" || t.isa == "aarch64"));
        assert_eq!(Target::by_name("g4dn").unwrap().gpu.unwrap().sm, 75);
        assert!(Target::by_name("nope").is_err());
    }
}
