//! Shape helpers shared by op families.

use anyhow::{Result, bail};

/// Numpy-style multidirectional broadcasting of two shapes.
pub fn broadcast(a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i + a.len() >= n { a[i + a.len() - n] } else { 1 };
        let db = if i + b.len() >= n { b[i + b.len() - n] } else { 1 };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => bail!("shapes {a:?} and {b:?} do not broadcast"),
        };
    }
    Ok(out)
}

/// Broadcasts any number of shapes.
pub fn broadcast_all<'a>(shapes: impl IntoIterator<Item = &'a [usize]>) -> Result<Vec<usize>> {
    shapes.into_iter().try_fold(vec![], |acc, s| broadcast(&acc, s))
}

/// Resolves a possibly negative axis against `rank` (ONNX convention: -1 is the last axis).
pub fn axis(axis: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    if axis < -r || axis >= r {
        bail!("axis {axis} is out of range for rank {rank}");
    }
    Ok(if axis < 0 { (axis + r) as usize } else { axis as usize })
}

/// Like [`axis`] but for insert positions (Unsqueeze): valid range is `[-rank-1, rank]`.
pub fn insert_axis(axis: i64, rank: usize) -> Result<usize> {
    self::axis(axis, rank + 1)
}

/// Resolves a list of axes, rejecting duplicates.
pub fn axes(list: &[i64], rank: usize) -> Result<Vec<usize>> {
    let mut out = Vec::with_capacity(list.len());
    for &a in list {
        let a = axis(a, rank)?;
        if out.contains(&a) {
            bail!("axis {a} appears twice in {list:?}");
        }
        out.push(a);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting() {
        assert_eq!(broadcast(&[2, 1, 4], &[3, 1]).unwrap(), vec![2, 3, 4]);
        assert_eq!(broadcast(&[], &[5]).unwrap(), vec![5]);
        assert_eq!(broadcast(&[0], &[1]).unwrap(), vec![0]);
        assert!(broadcast(&[2], &[3]).is_err());
    }

    #[test]
    fn axes_resolve() {
        assert_eq!(axis(-1, 3).unwrap(), 2);
        assert!(axis(3, 3).is_err());
        assert_eq!(insert_axis(-1, 2).unwrap(), 2);
        assert!(axes(&[0, -3], 3).is_err());
    }
}
