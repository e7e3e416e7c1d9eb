//! Tiny guest programs for the integration tests, one per scenario, in `examples/`. Each
//! is a component built for `wasm32-wasip2` by the `spore-tests` build script.
