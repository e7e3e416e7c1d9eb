// Shared by the build scripts of `spore-host` (the embedded demo) and `spore-tests` (the
// test guests): builds guest crates of this workspace for `wasm32-wasip2`, installing the
// target with rustup when it is missing.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The target guests are built for.
pub const GUEST_TARGET: &str = "wasm32-wasip2";

/// Builds `packages` with the cargo profile `profile` (`guest`, or `guest-fast` for code
/// built for speed) and extra `cargo build` arguments (such as `--examples`), and returns
/// the directory holding their `.wasm` files.
pub fn build_guests(workspace: &Path, profile: &str, packages: &[&str], extra: &[&str]) -> PathBuf {
    ensure_target();
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join("guests");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--quiet")
        .args(["--profile", profile, "--target", GUEST_TARGET])
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        // Its own target directory: the outer build holds the lock on the usual one.
        .arg("--target-dir")
        .arg(&target_dir);
    for p in packages {
        cmd.args(["-p", p]);
    }
    cmd.args(extra);
    // Settings of the outer build that must not leak into the guest build.
    for var in [
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_TARGET",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("cannot run cargo to build the guests");
    assert!(status.success(), "building the guests {packages:?} for {GUEST_TARGET} failed");
    for dir in ["guest-sdk/src", "wit"] {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }
    target_dir.join(GUEST_TARGET).join(profile)
}

/// Installs the guest target with rustup when the toolchain lacks it.
fn ensure_target() {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(&rustc).args(["--print", "sysroot"]).output().expect("cannot run rustc");
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    if sysroot.join("lib/rustlib").join(GUEST_TARGET).exists() {
        return;
    }
    let status = Command::new("rustup").args(["target", "add", GUEST_TARGET]).status();
    assert!(
        matches!(status, Ok(s) if s.success()),
        "the {GUEST_TARGET} target is missing and `rustup target add {GUEST_TARGET}` failed"
    );
}
