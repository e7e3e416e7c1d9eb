//! Links the guests with a stack of 62 KiB, as tests/lean-guests/build.rs explains: one
//! page less per idle process (W4b-std), and a linear memory of 2 wasm pages instead of 17,
//! which a process's end resets faster.

fn main() {
    println!("cargo:rustc-link-arg=-zstack-size={}", (64 << 10) - (2 << 10));
}
