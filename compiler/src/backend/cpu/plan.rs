//! Static memory planning: every temporary gets an offset in one arena, and temporaries
//! whose lifetimes (first to last step touching them) do not overlap share bytes.
//!
//! Placement is greedy by decreasing size, each at the lowest 64-byte-aligned offset that
//! does not collide with an already placed temporary that is alive at the same time, the
//! classic heuristic for this interval-colouring problem (optimal is NP-hard).

use super::kernel::{Mem, Step};

pub const ALIGN: u64 = 64;

pub struct MemoryPlan {
    /// Arena offset of each temporary.
    pub offsets: Vec<u64>,
    pub arena_size: u64,
    /// What the arena would need with no reuse at all (for the report).
    pub unshared_size: u64,
}

fn align(v: u64) -> u64 {
    v.div_ceil(ALIGN) * ALIGN
}

pub fn plan(steps: &[Step], temps: &[u64]) -> MemoryPlan {
    let mut live: Vec<Option<(usize, usize)>> = vec![None; temps.len()];
    for (i, s) in steps.iter().enumerate() {
        let (r, w) = s.mems();
        for m in r.into_iter().chain(w) {
            if let Mem::Temp(t) = m {
                let e = &mut live[t as usize];
                *e = Some(match *e {
                    None => (i, i),
                    Some((a, b)) => (a.min(i), b.max(i)),
                });
            }
        }
    }
    let mut order: Vec<usize> = (0..temps.len()).filter(|&t| live[t].is_some()).collect();
    order.sort_by_key(|&t| (std::cmp::Reverse(temps[t]), t));
    let mut offsets = vec![0u64; temps.len()];
    let mut placed: Vec<(u64, u64, usize, usize)> = Vec::new(); // (start, end, first, last)
    for t in order {
        let (first, last) = live[t].expect("filtered");
        let size = align(temps[t].max(1));
        let mut clashes: Vec<(u64, u64)> =
            placed.iter().filter(|p| p.2 <= last && first <= p.3).map(|p| (p.0, p.1)).collect();
        clashes.sort();
        let mut at = 0u64;
        for (s, e) in clashes {
            if at + size <= s {
                break;
            }
            at = at.max(align(e));
        }
        offsets[t] = at;
        placed.push((at, at + size, first, last));
    }
    let arena_size = placed.iter().map(|p| p.1).max().unwrap_or(0);
    let unshared_size = temps.iter().map(|&b| align(b.max(1))).sum();
    MemoryPlan { offsets, arena_size, unshared_size }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::kernel::Call;

    fn copy(dst: u32, src: u32) -> Step {
        Step::Call(Call::Copy { dst: Mem::Temp(dst), src: Mem::Temp(src), bytes: 4 })
    }

    #[test]
    fn disjoint_lifetimes_share_and_overlapping_ones_do_not() {
        // t0 -> t1 -> t2 -> t3: t0 and t2 never live together, nor t1 and t3.
        let steps = vec![copy(1, 0), copy(2, 1), copy(3, 2)];
        let p = plan(&steps, &[100, 100, 100, 100]);
        assert_eq!(p.arena_size, 256);
        assert_eq!(p.unshared_size, 512);
        for (a, b) in [(0, 1), (1, 2), (2, 3)] {
            assert_ne!(p.offsets[a], p.offsets[b], "t{a} and t{b} are alive together");
        }
        assert!(p.offsets.iter().all(|o| o % ALIGN == 0));
    }

    #[test]
    fn unused_temporaries_take_no_space() {
        let p = plan(&[copy(1, 0)], &[64, 64, 1 << 20]);
        assert_eq!(p.arena_size, 128);
    }
}
