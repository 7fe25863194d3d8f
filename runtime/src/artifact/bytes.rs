//! The little-endian encoding every section of a `.neo` file uses (metadata, code
//! variants, the cuda program): `u32`, `u64`, and `str` as a u32 byte length and UTF-8
//! bytes. The writers append with `put_*`; the readers go through [`Reader`], which checks
//! every length against the bytes left, so a corrupt count or length is an error naming
//! what was being read, never a panic or a large allocation.

use super::FormatError;

pub(crate) fn put_u32(w: &mut Vec<u8>, v: u32) {
    w.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_u64(w: &mut Vec<u8>, v: u64) {
    w.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_str(w: &mut Vec<u8>, s: &str) {
    put_u32(w, s.len() as u32);
    w.extend_from_slice(s.as_bytes());
}

/// A bounds-checked reader over one section's bytes. Its errors are
/// [`FormatError::Metadata`], prefixed with the section's name (`"code variants: "`).
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    section: &'static str,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8], section: &'static str) -> Reader<'a> {
        Reader { bytes, pos: 0, section }
    }

    /// An error about this section.
    pub fn err<T>(&self, msg: impl Into<String>) -> Result<T, FormatError> {
        Err(FormatError::Metadata(format!("{}{}", self.section, msg.into())))
    }

    /// Bytes not read yet.
    pub fn left(&self) -> usize {
        self.bytes.len() - self.pos
    }

    pub fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], FormatError> {
        if self.left() < n {
            return self.err(format!("truncated while reading {what} at byte {}", self.pos));
        }
        self.pos += n;
        Ok(&self.bytes[self.pos - n..self.pos])
    }

    pub fn u8(&mut self, what: &str) -> Result<u8, FormatError> {
        Ok(self.take(1, what)?[0])
    }

    pub fn u32(&mut self, what: &str) -> Result<u32, FormatError> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().expect("4 bytes")))
    }

    pub fn u64(&mut self, what: &str) -> Result<u64, FormatError> {
        Ok(u64::from_le_bytes(self.take(8, what)?.try_into().expect("8 bytes")))
    }

    pub fn str(&mut self, what: &str) -> Result<String, FormatError> {
        let len = self.u32(what)? as usize;
        match std::str::from_utf8(self.take(len, what)?) {
            Ok(s) => Ok(s.to_string()),
            Err(_) => self.err(format!("{what} is not valid UTF-8")),
        }
    }

    /// A count of items at least `min_bytes` long each: more than the bytes left can hold
    /// is an error (so a corrupt count never allocates much).
    pub fn count(&mut self, what: &str, min_bytes: usize) -> Result<usize, FormatError> {
        let n = self.u32(&format!("the {what} count"))? as usize;
        if n.saturating_mul(min_bytes) > self.left() {
            return self.err(format!("{n} {what}s cannot fit in the section"));
        }
        Ok(n)
    }

    /// An error unless every byte was read.
    pub fn finish(&self, after: &str) -> Result<(), FormatError> {
        match self.left() {
            0 => Ok(()),
            n => self.err(format!("{n} unexpected bytes after {after}")),
        }
    }
}
