//! A small PTX text builder: virtual registers by class, instructions as lines, labels,
//! and the kernel's declarations. Every kernel takes u64 device pointers only (see
//! `neoc_runtime::cuda`), so a kernel's signature is its pointer count.

use std::fmt::Write;

/// A register class (its declaration type and name prefix).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cls {
    Pred,
    B16,
    B32,
    B64,
    F32,
    F64,
}

impl Cls {
    fn prefix(self) -> &'static str {
        match self {
            Cls::Pred => "%p",
            Cls::B16 => "%h",
            Cls::B32 => "%r",
            Cls::B64 => "%rd",
            Cls::F32 => "%f",
            Cls::F64 => "%fd",
        }
    }
    fn decl(self) -> &'static str {
        match self {
            Cls::Pred => ".pred",
            Cls::B16 => ".b16",
            Cls::B32 => ".b32",
            Cls::B64 => ".b64",
            Cls::F32 => ".f32",
            Cls::F64 => ".f64",
        }
    }
    const ALL: [Cls; 6] = [Cls::Pred, Cls::B16, Cls::B32, Cls::B64, Cls::F32, Cls::F64];
}

/// One kernel being built.
pub struct Kernel {
    /// Pointer parameters, in order.
    pub params: usize,
    counts: [usize; 6],
    body: String,
    labels: usize,
    shared: Vec<String>,
}

/// An f32 immediate in PTX's exact hex form.
pub fn f32_imm(v: f32) -> String {
    format!("0f{:08X}", v.to_bits())
}

/// An f64 immediate in PTX's exact hex form.
pub fn f64_imm(v: f64) -> String {
    format!("0d{:016X}", v.to_bits())
}

impl Kernel {
    pub fn new(params: usize) -> Kernel {
        Kernel { params, counts: [0; 6], body: String::new(), labels: 0, shared: vec![] }
    }

    /// A fresh register of class `c`.
    pub fn reg(&mut self, c: Cls) -> String {
        let i = Cls::ALL.iter().position(|x| *x == c).expect("a class");
        self.counts[i] += 1;
        format!("{}{}", c.prefix(), self.counts[i])
    }

    /// One instruction (without the `;`).
    pub fn op(&mut self, s: impl AsRef<str>) {
        let _ = writeln!(self.body, "\t{};", s.as_ref());
    }

    /// A fresh label name.
    pub fn label(&mut self) -> String {
        self.labels += 1;
        format!("L{}", self.labels)
    }

    pub fn place(&mut self, label: &str) {
        let _ = writeln!(self.body, "{label}:");
    }

    /// A comment line (kept short: golden tests read them).
    pub fn comment(&mut self, s: impl AsRef<str>) {
        let _ = writeln!(self.body, "\t// {}", s.as_ref());
    }

    /// Declares a shared array of `bytes` bytes, `align`-aligned, and returns its name.
    pub fn shared(&mut self, bytes: usize, align: usize) -> String {
        let name = format!("smem{}", self.shared.len());
        self.shared.push(format!("\t.shared .align {align} .b8 {name}[{bytes}];"));
        name
    }

    /// A register holding global-space pointer parameter `i`.
    pub fn param_ptr(&mut self, i: usize) -> String {
        let g = self.reg(Cls::B64);
        self.op(format!("ld.param.u64 {g}, [p{i}]"));
        self.op(format!("cvta.to.global.u64 {g}, {g}"));
        g
    }

    /// `%ctaid.x * %ntid.x + %tid.x` as a u32 register (a 1-D grid's thread index).
    pub fn global_thread_u32(&mut self) -> String {
        let (a, b, c, r) = (self.reg(Cls::B32), self.reg(Cls::B32), self.reg(Cls::B32), self.reg(Cls::B32));
        self.op(format!("mov.u32 {a}, %ctaid.x"));
        self.op(format!("mov.u32 {b}, %ntid.x"));
        self.op(format!("mov.u32 {c}, %tid.x"));
        self.op(format!("mad.lo.u32 {r}, {a}, {b}, {c}"));
        r
    }

    /// The same as a u64 register (grids of more than 2^32 threads).
    pub fn global_thread_u64(&mut self) -> String {
        let (a, b, c) = (self.reg(Cls::B32), self.reg(Cls::B32), self.reg(Cls::B32));
        let (w, r) = (self.reg(Cls::B64), self.reg(Cls::B64));
        self.op(format!("mov.u32 {a}, %ctaid.x"));
        self.op(format!("mov.u32 {b}, %ntid.x"));
        self.op(format!("mov.u32 {c}, %tid.x"));
        self.op(format!("mul.wide.u32 {w}, {a}, {b}"));
        self.op(format!("cvt.u64.u32 {r}, {c}"));
        self.op(format!("add.u64 {r}, {r}, {w}"));
        r
    }

    /// The finished `.entry` text.
    pub fn finish(self, name: &str) -> String {
        let mut s = String::new();
        let params: Vec<String> = (0..self.params).map(|i| format!("\t.param .u64 p{i}")).collect();
        let _ = writeln!(s, ".visible .entry {name}(\n{}\n)\n{{", params.join(",\n"));
        for (i, c) in Cls::ALL.iter().enumerate() {
            if self.counts[i] > 0 {
                let _ = writeln!(s, "\t.reg {} {}<{}>;", c.decl(), c.prefix(), self.counts[i] + 1);
            }
        }
        for d in &self.shared {
            let _ = writeln!(s, "{d}");
        }
        s.push_str(&self.body);
        s.push_str("}\n");
        s
    }
}

/// The PTX ISA version and the oldest `.target` a module needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Level {
    /// PTX ISA version × 10 (60 for 6.0).
    pub isa: u32,
    /// Compute capability × 10... as sm number (50 for sm_50).
    pub sm: u32,
}

impl Level {
    /// FP32 SIMT code: `shfl.sync` and `bar.sync` (PTX 6.0), nothing newer than sm_50.
    pub const SIMT: Level = Level { isa: 60, sm: 50 };

    pub fn isa_text(self) -> String {
        format!("{}.{}", self.isa / 10, self.isa % 10)
    }

    /// The module header.
    pub fn header(self) -> String {
        format!("//\n// Generated by neoc {}\n//\n\n.version {}\n.target sm_{}\n.address_size 64\n", env!("CARGO_PKG_VERSION"), self.isa_text(), self.sm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_are_declared_by_class_and_immediates_are_exact() {
        let mut k = Kernel::new(2);
        let p = k.param_ptr(0);
        let f = k.reg(Cls::F32);
        k.op(format!("mov.f32 {f}, {}", f32_imm(1.5)));
        k.op(format!("st.global.f32 [{p}], {f}"));
        k.op("ret");
        let text = k.finish("k");
        assert!(text.contains(".reg .b64 %rd<2>;") && text.contains(".reg .f32 %f<2>;"), "{text}");
        assert!(text.contains("mov.f32 %f1, 0f3FC00000;"), "{text}");
        assert!(text.contains(".param .u64 p0,\n\t.param .u64 p1\n)"), "{text}");
        assert_eq!(f64_imm(-2.0), "0dC000000000000000");
        assert_eq!(Level::SIMT.header().lines().filter(|l| l.starts_with('.')).collect::<Vec<_>>(), [".version 6.0", ".target sm_50", ".address_size 64"]);
    }
}
