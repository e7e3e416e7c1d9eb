//! Spore's integration tests, one module per area.

mod bench_smoke;
mod dist;
mod rpc;
mod runtime;
mod spawn;
