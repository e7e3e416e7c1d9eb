//! Links the guests with a stack 2 KiB short of Rust's 1 MiB default, so that its top
//! shares a page with the static data above it, one page less per process (W4b-std: 61.7
//! -> 57.7 KB). See tests/lean-guests/build.rs.

fn main() {
    println!("cargo:rustc-link-arg=-zstack-size={}", (1 << 20) - (2 << 10));
}
