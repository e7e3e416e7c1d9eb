//! Spore's integration tests, one module per area.

mod dist;
mod runtime;
mod spawn;
