//! Sandbox: what a process can see of its host without and with grants.

use spore_guest::{Pid, Spawn, receive, send};

/// Reports `(env var count, clock works, can list "/")` to `parent`.
fn probe(parent: Pid) {
    let env = std::env::vars().count() as u64;
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() > 0)
        .unwrap_or(false);
    let fs = std::fs::read_dir("/").is_ok();
    send(parent, &(env, clock, fs));
}

/// Spawns `probe` asking for the clock and environment, and relays its report to `parent`.
fn child_probe(parent: Pid) {
    Spawn::new("probe").args(&(Pid::me(),)).grant_clock().grant_env().start().expect("spawn probe");
    let report: (u64, bool, bool) = receive();
    send(parent, &report);
}

spore_guest::entries!(probe, child_probe);
