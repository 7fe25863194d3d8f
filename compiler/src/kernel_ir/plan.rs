//! Static memory planning: every temporary gets an offset in one arena, and temporaries
//! whose lifetimes (first to last step touching them) do not overlap share bytes.
//!
//! Placement is greedy by decreasing size, each at the lowest 64-byte-aligned offset that
//! does not collide with an already placed temporary that is alive at the same time, the
//! classic heuristic for this interval-colouring problem (optimal is NP-hard).
//!
//! In place: a loop whose output has the same size, dtype and indexing as one of its
//! inputs, when that input dies at this step (and the step reads it only that way), writes
//! over the input: each point is read before it is written, by the same iteration.

use super::{Access, Expr, Mem, Step};
use crate::tensor::DType;

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
    for t in 0..temps.len() {
        offsets[t] = offsets[find(&root, t)];
    }
    let arena_size = placed.iter().map(|p| p.1).max().unwrap_or(0);
    let unshared_size = temps.iter().map(|&b| align(b.max(1))).sum();
    MemoryPlan { offsets, arena_size, unshared_size }
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

    fn copy(dst: u32, src: u32) -> Step {
        Step::Call(Call::copy(Mem::Temp(dst), Mem::Temp(src), 4))
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
        let p = plan(&[copy(0, 3), neg(1, 0), neg(2, 1), copy(3, 2)], &[64, 64, 64, 64]);
        assert_eq!(p.offsets[0], p.offsets[1]);
        assert_eq!(p.offsets[1], p.offsets[2]);
        // t0 still read after step 1: no in-place write over it.
        let p = plan(&[neg(1, 0), neg(2, 0)], &[64, 64, 64]);
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
        let p = plan(&[copy(0, 2), cast(1, DType::I4, 0, DType::U2), copy(2, 1)], &[4, 4, 4]);
        assert_ne!(p.offsets[0], p.offsets[1]);
        // The same packed type lines up element for element: in place is fine.
        let p = plan(&[copy(0, 2), cast(1, DType::I4, 0, DType::I4), copy(2, 1)], &[4, 4, 4]);
        assert_eq!(p.offsets[0], p.offsets[1]);
    }

    #[test]
    fn unused_temporaries_take_no_space() {
        let p = plan(&[copy(1, 0)], &[64, 64, 1 << 20]);
        assert_eq!(p.arena_size, 128);
    }
}
