//! Spore's integration tests, one module per area.

mod runtime;
