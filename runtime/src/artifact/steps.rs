//! The step table (section kind 6, optional, in format versions 4 and 5, and 1 and 2): what each step
//! function of the code is and where it starts, so a profiler can call the steps one by one
//! ([`crate::Model::run_profiled`]) — the same functions the entry calls, in the same order.
//!
//! ```text
//! u32 n                      steps, in the order the entry calls them
//! n × { str node             the graph node the step came from
//!       str op               that node's op ("FusedConv"), or "" for the output copies
//!       str kind             "loop", "reduce" or "call <kernel>"
//!       u64 flops }          estimated floating-point operations (a multiply-add is 2)
//! u32 v                      code sections (1, or the number of code variants)
//! v × n × u64 offset         of each step function, from the start of that code section
//! ```

use super::{FormatError, Reader, put_str, put_u32, put_u64};

const SECTION: &str = "step table";

/// One step function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepInfo {
    pub node: String,
    pub op: String,
    pub kind: String,
    pub flops: u64,
}

/// Every step, and where each starts in every code section.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StepTable {
    pub steps: Vec<StepInfo>,
    /// `offsets[v][i]`: step `i`'s function in code section (variant) `v`.
    pub offsets: Vec<Vec<u64>>,
}

impl StepTable {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut w = Vec::new();
        put_u32(&mut w, self.steps.len() as u32);
        for s in &self.steps {
            put_str(&mut w, &s.node);
            put_str(&mut w, &s.op);
            put_str(&mut w, &s.kind);
            put_u64(&mut w, s.flops);
        }
        put_u32(&mut w, self.offsets.len() as u32);
        for list in &self.offsets {
            for &o in list {
                put_u64(&mut w, o);
            }
        }
        w
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<StepTable, FormatError> {
        let mut r = Reader::new(bytes, SECTION);
        let n = r.count("step", 20)?;
        let mut steps = Vec::with_capacity(n);
        for i in 0..n {
            let node = r.str(&format!("step {i}'s node"))?;
            let op = r.str(&format!("step {i}'s op"))?;
            let kind = r.str(&format!("step {i}'s kind"))?;
            steps.push(StepInfo { node, op, kind, flops: r.u64("flops")? });
        }
        let v = r.count("code section", n * 8)?;
        // With no steps the lists take no bytes, so the count above bounds nothing: an
        // artifact has at most MAX_SECTIONS code sections (found by the fuzzer: a count of
        // 2^32 - 1 asked for 96 GiB of empty lists).
        if v > super::MAX_SECTIONS {
            return Err(FormatError::Metadata(format!("{SECTION}: offsets for {v} code sections (an artifact has at most {})", super::MAX_SECTIONS)));
        }
        let mut offsets = Vec::with_capacity(v);
        for _ in 0..v {
            offsets.push((0..n).map(|_| r.u64("a step offset")).collect::<Result<Vec<_>, _>>()?);
        }
        r.finish("the offsets")?;
        Ok(StepTable { steps, offsets })
    }

    /// One list of offsets per code section, each inside its section.
    pub(crate) fn validate(&self, code_lens: &[u64]) -> Result<(), FormatError> {
        let bad = |m: String| Err(FormatError::Metadata(format!("{SECTION}: {m}")));
        if self.offsets.len() != code_lens.len() {
            return bad(format!("offsets for {} code sections, the artifact has {}", self.offsets.len(), code_lens.len()));
        }
        for (v, (list, &len)) in self.offsets.iter().zip(code_lens).enumerate() {
            if list.len() != self.steps.len() {
                return bad(format!("code section {v} has {} offsets for {} steps", list.len(), self.steps.len()));
            }
            if let Some((i, o)) = list.iter().enumerate().find(|(_, o)| **o >= len) {
                return bad(format!("step {i}'s offset {o} lies outside code section {v} ({len} bytes)"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let t = StepTable {
            steps: vec![StepInfo { node: "conv1".into(), op: "FusedConv".into(), kind: "call conv2d".into(), flops: 1 << 40 }],
            offsets: vec![vec![16], vec![32]],
        };
        let bytes = t.encode();
        assert_eq!(StepTable::decode(&bytes).unwrap(), t);
        t.validate(&[64, 64]).unwrap();
        assert!(t.validate(&[64]).is_err(), "one offset list per code section");
        assert!(t.validate(&[64, 32]).is_err(), "offsets inside their section");
        for cut in 0..bytes.len() {
            assert!(StepTable::decode(&bytes[..cut]).is_err(), "truncated at {cut}");
        }
        // No steps and a huge count of (empty) offset lists: refused before allocating.
        let mut huge = Vec::new();
        put_u32(&mut huge, 0);
        put_u32(&mut huge, u32::MAX);
        assert!(StepTable::decode(&huge).is_err());
        let empty = StepTable { steps: vec![], offsets: vec![vec![]] };
        assert_eq!(StepTable::decode(&empty.encode()).unwrap(), empty);
    }
}
