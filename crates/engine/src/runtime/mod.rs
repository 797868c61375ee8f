//! The bottom layer: what a pass runs on. The threads of a pass ([`pool`]), the caching
//! allocator, the CPU's instruction sets detected once ([`cpu::Isa`]), and the per-op profile.
//!
//! Nothing here knows of kernels, tensors or ops; every other layer may use it.

pub(crate) mod alloc;
pub(crate) mod cpu;
pub(crate) mod pool;
pub(crate) mod profile;
