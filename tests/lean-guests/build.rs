//! Links the guests with a stack of 62 KiB, 2 KiB short of one 64 KiB wasm page (Rust's
//! default is 1 MiB; these guests use a few KiB of it). wasm-ld puts the stack first and the
//! static data above it, so:
//! - the stack's top shares a 4 KiB page with the data's first bytes: an idle process of
//!   the lean bench guest touches 2 pages of its linear memory instead of 3 (W4b: 38.0 ->
//!   34.0 KB per process);
//! - the whole linear memory is 2 wasm pages (128 KiB) instead of 17 (1.1 MiB), and at a
//!   process's end its pool slot's reset scans 128 KiB for dirty pages instead of 1.1 MiB:
//!   the kernel's share of W4a went from 16.2% to 13.8% of its time (perf).
//!
//! A guest that overflows the stack traps: the stack lies below the data, so it would run
//! below address 0. Any guest can link the same way (see the SDK's crate doc).

fn main() {
    println!("cargo:rustc-link-arg=-zstack-size={}", (64 << 10) - (2 << 10));
}
