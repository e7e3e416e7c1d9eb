//! Guests on the SDK without std, one per scenario, in `examples/`: each is `#![no_std]`
//! and built for `wasm32-wasip2` by the `spore-tests` build script, apart from the std
//! guests (see Cargo.toml). The library holds drivers the std bench guest shares.

#![no_std]

extern crate alloc;

pub mod w4;
