//! Spore's integration tests, one module per area.

mod bench_smoke;
mod dist;
mod runtime;
mod spawn;
