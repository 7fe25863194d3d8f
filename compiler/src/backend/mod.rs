//! Code generators. `cpu`: Cranelift machine code for x86-64 and aarch64.

pub mod cpu;
