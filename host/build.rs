//! Builds the ping-pong example guest, which `spore demo` embeds.

#[path = "build_guests.rs"]
mod build_guests;

use std::path::Path;

fn main() {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo");
    let workspace = Path::new(&manifest_dir).parent().expect("host/ is inside the workspace");
    // The profile of the tests' std guests, which build ping-pong too: one build serves both.
    let wasm_dir = build_guests::build_guests(workspace, "guest-fast", &["ping-pong"], &[]);
    println!("cargo:rerun-if-changed={}", workspace.join("examples/ping-pong/src").display());
    println!("cargo:rerun-if-changed=build_guests.rs");
    println!("cargo:rustc-env=SPORE_DEMO_WASM={}", wasm_dir.join("ping_pong.wasm").display());
}
