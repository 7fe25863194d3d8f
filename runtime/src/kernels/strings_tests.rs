//! The string kernel on hand-made blobs: each op against a plain Rust computation, and
//! every kind of corruption turned into an error code.

use super::*;

/// Weights holding `blobs`, each 64-byte aligned; returns the weights and the offsets.
fn weights(blobs: &[Vec<u8>]) -> (Vec<u8>, Vec<usize>) {
    let mut w = Vec::new();
    let mut at = Vec::new();
    for b in blobs {
        w.resize(w.len().div_ceil(64) * 64, 0);
        at.push(w.len());
        w.extend_from_slice(b);
    }
    (w, at)
}

fn call(heap: &mut StringHeap<'_>, at: usize, a: *mut u8, b: *mut u8, c: *mut u8) -> i32 {
    let params = heap.weights[at..].as_ptr();
    let ctx = context_with(heap);
    // SAFETY: the buffers the tests pass hold the counts their blobs name.
    unsafe { strings(&ctx, params, a, b, c) }
}

fn consts(heap: &mut StringHeap<'_>, at: usize, n: usize) -> Vec<u64> {
    let mut h = vec![0u64; n];
    assert_eq!(call(heap, at, std::ptr::null_mut(), std::ptr::null_mut(), h.as_mut_ptr().cast()), 0);
    h
}

fn texts(heap: &StringHeap<'_>, h: &[u64]) -> Vec<String> {
    h.iter().map(|&h| heap.get(h).unwrap().to_string()).collect()
}

#[test]
fn constants_normalize_and_lookup() {
    let words = ["Monday", "tuesday", "", "MONDAY", "Straße"];
    let c = BlobWriter::new(OP_CONST).strs(&words).finish();
    let norm = BlobWriter::new(OP_NORMALIZE).u32(2).u32(0).strs(&["monday"]).u64(5).u64(3).finish();
    let mut look = BlobWriter::new(OP_LOOKUP);
    look.u32(KEY_STRING).u32(0).u64(2).str("tuesday").u64(7).str("").u64(9).u64(5);
    let look = look.finish();
    let (w, at) = weights(&[c, norm, look]);
    let mut heap = StringHeap::new(&w);
    let h = consts(&mut heap, at[0], 5);
    assert_eq!(texts(&heap, &h), words);
    assert_eq!(h[2], 0, "the empty string is handle 0");

    let mut out = vec![0u64; 3];
    assert_eq!(call(&mut heap, at[1], h.as_ptr() as *mut u8, std::ptr::null_mut(), out.as_mut_ptr().cast()), 0);
    assert_eq!(texts(&heap, &out), ["TUESDAY", "", "STRASSE"]);

    let mut idx = vec![0i64; 5];
    assert_eq!(call(&mut heap, at[2], h.as_ptr() as *mut u8, std::ptr::null_mut(), idx.as_mut_ptr().cast()), 0);
    assert_eq!(idx, [2, 7, 9, 2, 2]);
}

#[test]
fn binary_ops_broadcast() {
    // a: [2, 1], b: [3] → [2, 3].
    let c = BlobWriter::new(OP_CONST).strs(&["x", "y", "1", "x", ""]).finish();
    let bin = |kind| BlobWriter::new(OP_BINARY).u32(kind).u32(2).u64(2).u64(3).u64(2).u64(3).u64(1).u64(0).u64(0).u64(1).finish();
    let (w, at) = weights(&[c, bin(BINARY_CONCAT), bin(BINARY_EQUAL)]);
    let mut heap = StringHeap::new(&w);
    let h = consts(&mut heap, at[0], 5);
    let (a, b) = (h[..2].to_vec(), h[2..].to_vec());
    let mut out = vec![0u64; 6];
    assert_eq!(call(&mut heap, at[1], a.as_ptr() as *mut u8, b.as_ptr() as *mut u8, out.as_mut_ptr().cast()), 0);
    assert_eq!(texts(&heap, &out), ["x1", "xx", "x", "y1", "yx", "y"]);
    let mut eq = vec![7u8; 6];
    assert_eq!(call(&mut heap, at[2], a.as_ptr() as *mut u8, b.as_ptr() as *mut u8, eq.as_mut_ptr()), 0);
    assert_eq!(eq, [0, 1, 0, 0, 0, 0]);
}

#[test]
fn numeric_lookup_keys() {
    let mut look = BlobWriter::new(OP_LOOKUP);
    look.u32(KEY_F32).u32(0).u64(2).u64(float_key(0.0).unwrap()).u64(0).u64(float_key(2.5).unwrap()).u64(1).u64(4);
    let mut ints = BlobWriter::new(OP_LOOKUP);
    ints.u32(KEY_I32).u32(0).u64(1).u64(-3i64 as u64).u64(0).u64(2);
    let (w, at) = weights(&[look.finish(), ints.finish()]);
    let mut heap = StringHeap::new(&w);
    let x = [-0.0f32, 2.5, f32::NAN, 1.0];
    let mut idx = vec![0i64; 4];
    assert_eq!(call(&mut heap, at[0], x.as_ptr() as *mut u8, std::ptr::null_mut(), idx.as_mut_ptr().cast()), 0);
    assert_eq!(idx, [0, 1, 2, 2], "-0 finds 0; NaN and unknown keys are absent");
    let y = [-3i32, 3];
    let mut idx = vec![0i64; 2];
    assert_eq!(call(&mut heap, at[1], y.as_ptr() as *mut u8, std::ptr::null_mut(), idx.as_mut_ptr().cast()), 0);
    assert_eq!(idx, [0, 1]);
}

#[test]
fn bad_handles_and_blobs_are_errors() {
    let c = BlobWriter::new(OP_CONST).strs(&["a"]).finish();
    let norm = BlobWriter::new(OP_NORMALIZE).u32(0).u32(1).strs::<&str>(&[]).u64(1).u64(1).finish();
    let mut bad_utf8 = BlobWriter::new(OP_CONST).strs(&["ab"]).finish();
    let last = bad_utf8.len() - 1;
    bad_utf8[last] = 0xff;
    let mut too_long = BlobWriter::new(OP_CONST).strs(&["a"]).finish();
    too_long[8..16].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let trailing = [BlobWriter::new(OP_CONST).strs(&["a"]).finish(), vec![0]].concat();
    let mut trailing = trailing;
    trailing[8] += 1;
    let huge = BlobWriter::new(OP_CONST).u64(u64::MAX).finish();
    let bad_reach = BlobWriter::new(OP_BINARY).u32(0).u32(1).u64(2).u64(2).u64(3).u64(1).u64(1).finish();
    let unknown = BlobWriter::new(99).finish();
    let (w, at) = weights(&[c, norm, bad_utf8, too_long, trailing, huge, bad_reach, unknown]);
    let mut heap = StringHeap::new(&w);
    let h = consts(&mut heap, at[0], 1);

    let bad = [h[0] + 1];
    let mut out = [0u64; 3];
    let o = out.as_mut_ptr().cast();
    assert_eq!(call(&mut heap, at[1], bad.as_ptr() as *mut u8, std::ptr::null_mut(), o), ERR_STRINGS, "unknown handle");
    assert_eq!(call(&mut heap, at[1], h.as_ptr() as *mut u8, std::ptr::null_mut(), o), 0);
    for (i, what) in [(2, "bad UTF-8"), (3, "length past the weights"), (4, "trailing bytes"), (5, "huge count"), (6, "strides past a buffer"), (7, "unknown op")] {
        let three = [0u64; 3];
        let p = three.as_ptr() as *mut u8;
        assert_eq!(call(&mut heap, at[i], p, p, o), ERR_STRINGS_PARAMS, "{what}");
    }
    // A blob pointer outside the weights.
    let outside = [0u8; 32];
    let ctx = context_with(&mut heap);
    // SAFETY: the kernel checks the blob's place before reading it.
    assert_eq!(unsafe { strings(&ctx, outside.as_ptr(), o, o, o) }, ERR_STRINGS_PARAMS);
    // No heap or no context.
    let mut no_heap = context_with(&mut heap);
    no_heap.strings = std::ptr::null_mut();
    // SAFETY: as above.
    assert_eq!(unsafe { strings(&no_heap, w.as_ptr(), o, o, o) }, ERR_STRINGS);
    assert_eq!(unsafe { strings(std::ptr::null(), w.as_ptr(), o, o, o) }, ERR_STRINGS);
}

#[test]
fn regex_full_match() {
    let c = BlobWriter::new(OP_CONST).strs(&["abc", "abcd", "", "ab"]).finish();
    let re = BlobWriter::new(OP_REGEX).str("a.c|").u64(4).finish();
    let (w, at) = weights(&[c, re]);
    let mut heap = StringHeap::new(&w);
    let h = consts(&mut heap, at[0], 4);
    let mut out = [9u8; 4];
    let status = call(&mut heap, at[1], h.as_ptr() as *mut u8, std::ptr::null_mut(), out.as_mut_ptr());
    if cfg!(feature = "strings-regex") {
        assert_eq!(status, 0);
        assert_eq!(out, [1, 0, 1, 0], "anchored at both ends");
    } else {
        assert_eq!(status, ERR_STRINGS_FEATURE);
    }
}
