//! neoc-runtime: loads and runs `.neo` artifacts written by the neoc compiler.
//!
//! The artifact format and its loader arrive with the compiler backend; this crate
//! deliberately depends on nothing from the compiler, Cranelift or prost.
