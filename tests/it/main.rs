//! Spore's integration tests, one module per area.

mod bench_smoke;
mod dist;
mod lean;
mod polyglot;
mod rogue;
mod rpc;
mod runtime;
mod spawn;
