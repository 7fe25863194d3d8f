//! TfIdfVectorizer, the string kernel's `OP_TFIDF`: counts pooled n-grams (with skips) in
//! each row of integer or string tokens.
//!
//! Blob fields after the header (see [`super::strings`] for the framing):
//!
//! ```text
//! u32 token kind (KEY_STRING, KEY_I64 or KEY_I32), u32 mode (0 TF, 1 IDF, 2 TFIDF),
//! u64 min_gram_length, u64 max_gram_length, u64 max_skip_count,
//! u64 rows, u64 row length, u64 columns,
//! u64 n_grams, n_grams × (u64 n, n × token, u64 column)
//!     token: str for KEY_STRING, else u64 (the integer as i64)
//! u64 n_weights (0 or columns), n_weights × u32 (f32 bits)
//! ```
//! `a` holds rows × row length tokens, `c` receives rows × columns f32.
//!
//! For each skip distance `d` in `1..=max_skip_count + 1`, an n-gram starting at `s` is the
//! tokens `s, s + d, …, s + (n-1)·d`; 1-grams count only for `d = 1`. This is the ONNX
//! reference's (and onnxruntime's) trie walk written as lookups, as the compiler's
//! reference evaluation does it.

use std::collections::HashMap;

use super::strings::{ERR_STRINGS, ERR_STRINGS_PARAMS, KEY_I32, KEY_I64, KEY_STRING, Reader, Res, StringHeap, read, write};

/// # Safety
/// `a` and `c` hold the counts the blob gives (the string kernel's contract).
pub(super) unsafe fn tfidf(heap: &StringHeap<'_>, r: &mut Reader<'_>, a: *const u8, c: *mut u8) -> Res<()> {
    let kind = r.u32()?;
    let mode = r.u32()?;
    let (min, max, skip) = (r.len(1)?, r.len(1)?, r.len(1)?);
    let (rows, len, cols) = (r.len(1)?, r.len(1)?, r.len(1)?);
    let n_tokens = rows.checked_mul(len).ok_or(ERR_STRINGS_PARAMS)?;
    let n_out = rows.checked_mul(cols).filter(|n| n.checked_mul(4).is_some()).ok_or(ERR_STRINGS_PARAMS)?;
    // Pool tokens get small ids; an n-gram is the list of its ids.
    let mut ids_str: HashMap<&str, u32> = HashMap::new();
    let mut ids_int: HashMap<u64, u32> = HashMap::new();
    let mut grams: HashMap<Vec<u32>, usize> = HashMap::new();
    let n_grams = r.len(16)?;
    for _ in 0..n_grams {
        let n = r.len(8)?;
        let mut g = Vec::with_capacity(n.min(64));
        for _ in 0..n {
            let next = (ids_str.len() + ids_int.len()) as u32;
            g.push(match kind {
                KEY_STRING => *ids_str.entry(r.str()?).or_insert(next),
                KEY_I64 | KEY_I32 => *ids_int.entry(r.u64()?).or_insert(next),
                _ => return Err(ERR_STRINGS_PARAMS),
            });
        }
        let col = r.len(1)?;
        if col >= cols {
            return Err(ERR_STRINGS_PARAMS);
        }
        grams.insert(g, col);
    }
    let n_weights = r.len(4)?;
    if n_weights != 0 && n_weights != cols {
        return Err(ERR_STRINGS_PARAMS);
    }
    let weights: Vec<f32> = (0..n_weights).map(|_| r.u32().map(f32::from_bits)).collect::<Res<_>>()?;
    r.finish()?;
    if mode > 2 || min == 0 {
        return Err(ERR_STRINGS_PARAMS);
    }
    if n_tokens > 0 && a.is_null() || n_out > 0 && c.is_null() {
        return Err(ERR_STRINGS_PARAMS);
    }

    // Tokens as pool ids (u32::MAX: not in the pool, so in no n-gram).
    let mut tokens = Vec::with_capacity(n_tokens);
    for i in 0..n_tokens {
        // SAFETY: `a` holds `n_tokens` tokens of the kind's width (the caller's promise).
        let id = unsafe {
            match kind {
                KEY_STRING => ids_str.get(heap.get(read::<u64>(a, i)).ok_or(ERR_STRINGS)?).copied(),
                KEY_I64 => ids_int.get(&read::<u64>(a, i)).copied(),
                _ => ids_int.get(&(read::<i32>(a, i) as i64 as u64)).copied(),
            }
        };
        tokens.push(id.unwrap_or(u32::MAX));
    }
    let mut counts = vec![0u64; n_out];
    let mut g = Vec::new();
    for row in 0..rows {
        let toks = &tokens[row * len..(row + 1) * len];
        // Beyond a skip distance of `len` no n-gram of two or more tokens fits.
        for d in 1..=skip.saturating_add(1).min(len.max(1)) {
            let lo = if d == 1 { min } else { min.max(2) };
            if lo > max {
                break;
            }
            for s in 0..len {
                for n in lo..=max {
                    if d.saturating_mul(n - 1).saturating_add(s) >= len {
                        break;
                    }
                    g.clear();
                    g.extend((0..n).map(|k| toks[s + d * k]));
                    if let Some(&col) = grams.get(&g) {
                        counts[row * cols + col] += 1;
                    }
                }
            }
        }
    }
    for (i, &f) in counts.iter().enumerate() {
        let w = weights.get(i % cols.max(1)).map(|&w| w as f64);
        let f = f as f64;
        let v = match mode {
            0 => f,
            1 if f > 0.0 => w.unwrap_or(1.0),
            1 => 0.0,
            _ => w.unwrap_or(1.0) * f,
        };
        // SAFETY: `c` holds `n_out` f32 (the caller's promise).
        unsafe { write::<f32>(c, i, v as f32) };
    }
    Ok(())
}
