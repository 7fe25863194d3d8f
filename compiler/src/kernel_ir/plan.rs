//! Static memory planning: every temporary gets an offset in one arena, and temporaries
//! whose lifetimes (first to last step touching them) do not overlap share bytes.
//!
//! Placement is greedy by decreasing size, each at the lowest 64-byte-aligned offset that
//! does not collide with an already placed temporary that is alive at the same time, the
//! classic heuristic for this interval-colouring problem (optimal is NP-hard). It compares
//! each temporary with every placed one, so plans of more than [`GREEDY_MAX`] temporaries
//! (graphs of tens of thousands of nodes) are made in step order instead, in O(n log n):
//! each temporary takes the smallest free hole that fits (best fit) when its first step
//! comes, and gives its bytes back after its last.
//!
//! Sizes are added with checked arithmetic: a plan that would overflow is an error.
//!
//! In place: a loop whose output has the same size, dtype and indexing as one of its
//! inputs, when that input dies at this step (and the step reads it only that way), writes
//! over the input: each point is read before it is written, by the same iteration.

use super::{Access, Expr, Mem, Step};
use crate::tensor::DType;
use anyhow::{Result, anyhow};
use std::collections::BTreeMap;

pub const ALIGN: u64 = 64;

/// The most temporaries the size-ordered greedy placement handles (it is quadratic).
pub const GREEDY_MAX: usize = 16384;

pub struct MemoryPlan {
    /// Arena offset of each temporary.
    pub offsets: Vec<u64>,
    pub arena_size: u64,
    /// What the arena would need with no reuse at all (for the report).
    pub unshared_size: u64,
}

fn align(v: u64) -> Result<u64> {
    v.div_ceil(ALIGN).checked_mul(ALIGN).ok_or_else(|| anyhow!("a temporary of {v} bytes is too large to plan"))
}

fn add(a: u64, b: u64) -> Result<u64> {
    a.checked_add(b).ok_or_else(|| anyhow!("the memory plan overflows 64-bit offsets"))
}

pub fn plan(steps: &[Step], temps: &[u64]) -> Result<MemoryPlan> {
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
    // In-place pairs: `root[b] = a` when step i may write b over a.
    let mut root: Vec<usize> = (0..temps.len()).collect();
    for (i, s) in steps.iter().enumerate() {
        if let Some((a, b)) = in_place(s) {
            let (Some((_, a_last)), Some((b_first, _))) = (live[a], live[b]) else { continue };
            if a_last == i && b_first == i && temps[a] == temps[b] && root[b] == b {
                let ra = find(&root, a);
                root[b] = ra;
            }
        }
    }
    // A root's lifetime covers its whole chain.
    for t in 0..temps.len() {
        let r = find(&root, t);
        if r != t {
            if let (Some((f, l)), Some((rf, rl))) = (live[t], live[r]) {
                live[r] = Some((rf.min(f), rl.max(l)));
            }
        }
    }
    let mut order: Vec<usize> = (0..temps.len()).filter(|&t| live[t].is_some() && find(&root, t) == t).collect();
    let mut offsets = vec![0u64; temps.len()];
    let arena_size = if order.len() <= GREEDY_MAX {
        order.sort_by_key(|&t| (std::cmp::Reverse(temps[t]), t));
        let mut placed: Vec<(u64, u64, usize, usize)> = Vec::new(); // (start, end, first, last)
        for t in order {
            let (first, last) = live[t].expect("filtered");
            let size = align(temps[t].max(1))?;
            let mut clashes: Vec<(u64, u64)> =
                placed.iter().filter(|p| p.2 <= last && first <= p.3).map(|p| (p.0, p.1)).collect();
            clashes.sort();
            let mut at = 0u64;
            for (s, e) in clashes {
                if add(at, size)? <= s {
                    break;
                }
                at = at.max(align(e)?);
            }
            offsets[t] = at;
            placed.push((at, add(at, size)?, first, last));
        }
        placed.iter().map(|p| p.1).max().unwrap_or(0)
    } else {
        in_step_order(&order, &live, temps, &mut offsets)?
    };
    for t in 0..temps.len() {
        offsets[t] = offsets[find(&root, t)];
    }
    let unshared_size = temps.iter().try_fold(0u64, |s, &b| add(s, align(b.max(1))?))?;
    Ok(MemoryPlan { offsets, arena_size, unshared_size })
}

/// Places `order`'s temporaries in step order: at its first step each takes the smallest
/// free hole that fits (else the top of the arena grows), and after its last step its bytes
/// are free again (merged with free neighbours). Returns the arena size.
fn in_step_order(order: &[usize], live: &[Option<(usize, usize)>], temps: &[u64], offsets: &mut [u64]) -> Result<u64> {
    let mut starts: Vec<(usize, usize)> = order.iter().map(|&t| (live[t].expect("filtered").0, t)).collect();
    let mut ends: Vec<(usize, usize)> = order.iter().map(|&t| (live[t].expect("filtered").1, t)).collect();
    starts.sort_unstable();
    ends.sort_unstable();
    let mut by_offset: BTreeMap<u64, u64> = BTreeMap::new(); // free hole offset → size
    let mut by_size: BTreeMap<(u64, u64), ()> = BTreeMap::new(); // (size, offset)
    let (mut top, mut e) = (0u64, 0usize);
    for &(first, t) in &starts {
        // Everything whose last step is before this one is free now.
        while e < ends.len() && ends[e].0 < first {
            let u = ends[e].1;
            let (mut at, mut size) = (offsets[u], align(temps[u].max(1))?);
            if let Some((&o, &s)) = by_offset.range(..at).next_back() {
                if add(o, s)? == at {
                    by_offset.remove(&o);
                    by_size.remove(&(s, o));
                    at = o;
                    size = add(size, s)?;
                }
            }
            if let Some(&s) = by_offset.get(&add(at, size)?) {
                let o = add(at, size)?;
                by_offset.remove(&o);
                by_size.remove(&(s, o));
                size = add(size, s)?;
            }
            if add(at, size)? == top {
                top = at;
            } else {
                by_offset.insert(at, size);
                by_size.insert((size, at), ());
            }
            e += 1;
        }
        let size = align(temps[t].max(1))?;
        match by_size.range((size, 0)..).next().map(|(&k, _)| k) {
            Some((s, o)) => {
                by_size.remove(&(s, o));
                by_offset.remove(&o);
                offsets[t] = o;
                if s > size {
                    by_offset.insert(add(o, size)?, s - size);
                    by_size.insert((s - size, add(o, size)?), ());
                }
            }
            None => {
                offsets[t] = top;
                top = add(top, size)?;
            }
        }
    }
    // The highest end any temporary reached.
    order.iter().try_fold(0u64, |m, &t| Ok(m.max(add(offsets[t], align(temps[t].max(1))?)?)))
}

fn find(root: &[usize], mut t: usize) -> usize {
    while root[t] != t {
        t = root[t];
    }
    t
}

/// Whether elements of `a` and `b` take the same bits, so that element `i` of one lies exactly
/// where element `i` of the other does. (Packed sub-byte types have no byte size: only the
/// same type qualifies, never one of another width.)
fn same_width(a: DType, b: DType) -> bool {
    match (a.size_of(), b.size_of()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// (input temp, output temp) when the loop step can write its output over that input.
fn in_place(s: &Step) -> Option<(usize, usize)> {
    let Step::Loop(l) = s else { return None };
    let Mem::Temp(b) = l.out.mem else { return None };
    let mut reads: Vec<(Mem, Option<Access>)> = Vec::new();
    l.value.visit(&mut |e| match e {
        Expr::Load(a) => reads.push((a.mem, Some(a.clone()))),
        Expr::LoadAt { mem, .. } => reads.push((*mem, None)),
        _ => {}
    });
    reads.iter().find_map(|(m, acc)| {
        let Mem::Temp(a) = *m else { return None };
        let same = |x: &Option<Access>| {
            x.as_ref().is_some_and(|x| x.offset == l.out.offset && x.strides == l.out.strides && same_width(x.dtype, l.out.dtype))
        };
        let only_same_way = reads.iter().filter(|(m2, _)| *m2 == Mem::Temp(a)).all(|(_, x)| same(x));
        (a != b && same(acc) && only_same_way).then_some((a as usize, b as usize))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel_ir::Call;
    use std::collections::BTreeMap;

    fn copy(dst: u32, src: u32) -> Step {
        Step::Call(Call::copy(Mem::Temp(dst), Mem::Temp(src), 4))
    }

    #[test]
    fn disjoint_lifetimes_share_and_overlapping_ones_do_not() {
        // t0 -> t1 -> t2 -> t3: t0 and t2 never live together, nor t1 and t3.
        let steps = vec![copy(1, 0), copy(2, 1), copy(3, 2)];
        let p = plan(&steps, &[100, 100, 100, 100]).unwrap();
        assert_eq!(p.arena_size, 256);
        assert_eq!(p.unshared_size, 512);
        for (a, b) in [(0, 1), (1, 2), (2, 3)] {
            assert_ne!(p.offsets[a], p.offsets[b], "t{a} and t{b} are alive together");
        }
        assert!(p.offsets.iter().all(|o| o % ALIGN == 0));
    }

    #[test]
    fn an_elementwise_loop_writes_over_an_input_that_dies_there() {
        use crate::kernel_ir::{Access, Expr, Loop, UnOp};
        use crate::tensor::DType;
        let neg = |dst: u32, src: u32| {
            Step::Loop(Loop {
                dims: vec![16],
                out: Access::dense(Mem::Temp(dst), DType::F32, &[16]),
                value: Expr::un(UnOp::Neg, Expr::Load(Access::dense(Mem::Temp(src), DType::F32, &[16]))),
            })
        };
        // t0 → t1 → t2: each dies in the step that makes the next, so all three share one buffer.
        let p = plan(&[copy(0, 3), neg(1, 0), neg(2, 1), copy(3, 2)], &[64, 64, 64, 64]).unwrap();
        assert_eq!(p.offsets[0], p.offsets[1]);
        assert_eq!(p.offsets[1], p.offsets[2]);
        // t0 still read after step 1: no in-place write over it.
        let p = plan(&[neg(1, 0), neg(2, 0)], &[64, 64, 64]).unwrap();
        assert_ne!(p.offsets[0], p.offsets[1]);
    }

    #[test]
    fn packed_outputs_never_overwrite_inputs_of_another_width() {
        use crate::kernel_ir::{Access, Expr, Loop};
        let cast = |dst: u32, to: DType, src: u32, from: DType| {
            Step::Loop(Loop {
                dims: vec![8],
                out: Access::dense(Mem::Temp(dst), to, &[8]),
                value: Expr::cast(to, Expr::Load(Access::dense(Mem::Temp(src), from, &[8]))),
            })
        };
        // Both temporaries take 4 bytes, but element i of an i4 buffer does not lie where
        // element i of a u2 buffer does.
        let p = plan(&[copy(0, 2), cast(1, DType::I4, 0, DType::U2), copy(2, 1)], &[4, 4, 4]).unwrap();
        assert_ne!(p.offsets[0], p.offsets[1]);
        // The same packed type lines up element for element: in place is fine.
        let p = plan(&[copy(0, 2), cast(1, DType::I4, 0, DType::I4), copy(2, 1)], &[4, 4, 4]).unwrap();
        assert_eq!(p.offsets[0], p.offsets[1]);
    }

    /// Over GREEDY_MAX temporaries the plan is made in step order: checked by brute force
    /// (no two temporaries alive at one step overlap) on a wide fan-in and a long chain of
    /// copies, with sizes that vary.
    #[test]
    fn large_plans_in_step_order_never_overlap_live_temporaries() {
        let n = GREEDY_MAX as u32 + 500;
        // Wide: every temp is made first, then all are read by copies into the last one.
        let mut wide: Vec<Step> = (0..n).map(|t| copy(t, n)).collect();
        wide.extend((0..n).map(|t| copy(n + 1, t)));
        // Chain: t(i) -> t(i+1).
        let chain: Vec<Step> = (0..n).map(|t| copy(t + 1, t)).collect();
        for steps in [wide, chain] {
            let temps: Vec<u64> = (0..n + 2).map(|t| 64 * (1 + (t as u64 * 7919) % 5)).collect();
            let p = plan(&steps, &temps).unwrap();
            let mut live: Vec<Option<(usize, usize)>> = vec![None; temps.len()];
            for (i, s) in steps.iter().enumerate() {
                let (r, w) = s.mems();
                for m in r.into_iter().chain(w) {
                    if let Mem::Temp(t) = m {
                        let e = &mut live[t as usize];
                        *e = Some(e.map_or((i, i), |(a, b)| (a.min(i), b.max(i))));
                    }
                }
            }
            // Sweep steps; at each, the live temps' byte ranges must be disjoint.
            let mut events: Vec<(usize, bool, usize)> = vec![];
            for (t, l) in live.iter().enumerate() {
                if let Some((f, l)) = l {
                    events.push((*f, true, t));
                    events.push((*l + 1, false, t));
                }
            }
            events.sort();
            let mut alive: BTreeMap<u64, (u64, usize)> = BTreeMap::new();
            for (_, start, t) in events {
                let (o, e) = (p.offsets[t], p.offsets[t] + temps[t]);
                if start {
                    for (&s, &(end, u)) in alive.range(..e) {
                        assert!(end <= o || s >= e, "t{t} [{o},{e}) overlaps t{u} [{s},{end})");
                    }
                    alive.insert(o, (e, t));
                } else {
                    alive.remove(&o);
                }
                assert!(e <= p.arena_size);
            }
        }
    }

    #[test]
    fn unused_temporaries_take_no_space() {
        let p = plan(&[copy(1, 0)], &[64, 64, 1 << 20]).unwrap();
        assert_eq!(p.arena_size, 128);
    }
}
