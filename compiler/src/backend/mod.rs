//! Code generators. `cpu`: Cranelift machine code for x86-64 and aarch64. `cuda`: PTX for
//! NVIDIA GPUs, run by the runtime through the CUDA driver API.

pub mod cpu;
pub mod cuda;
