//! The default intra-op thread count: the number of physical cores this process may use.
//!
//! `std::thread::available_parallelism` counts logical CPUs (respecting affinity masks
//! and cgroup quotas). On Linux we divide it by the SMT width read from sysfs (logical
//! CPUs per core), which gives the physical cores when the process may use whole cores;
//! elsewhere, or when sysfs is unreadable, we use `available_parallelism` as it is, an
//! over-estimate on machines with SMT.

/// Physical cores available to this process (approximately; see the module docs); ≥ 1.
pub fn default_thread_count() -> usize {
    let logical = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    match smt_width() {
        Some(w) if w > 1 => (logical / w).max(1),
        _ => logical,
    }
}

/// Logical CPUs per physical core, from `/sys/devices/system/cpu/cpu*/topology`.
#[cfg(target_os = "linux")]
fn smt_width() -> Option<usize> {
    use std::collections::HashSet;
    let mut cpus = 0usize;
    let mut cores = HashSet::new();
    for entry in std::fs::read_dir("/sys/devices/system/cpu").ok()?.flatten() {
        let name = entry.file_name();
        let Some(n) = name.to_str().and_then(|n| n.strip_prefix("cpu")) else { continue };
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(siblings) = std::fs::read_to_string(entry.path().join("topology/thread_siblings_list")) else {
            continue;
        };
        cpus += 1;
        cores.insert(siblings.trim().to_string());
    }
    if cores.is_empty() { None } else { Some((cpus / cores.len()).max(1)) }
}

#[cfg(not(target_os = "linux"))]
fn smt_width() -> Option<usize> {
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn at_least_one_and_at_most_logical() {
        let n = super::default_thread_count();
        assert!(n >= 1);
        assert!(n <= std::thread::available_parallelism().unwrap().get());
    }
}
