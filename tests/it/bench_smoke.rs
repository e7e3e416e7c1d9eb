//! A smoke run of the benchmark workloads (tests/benches/workloads.rs, included here): the
//! local ones (W1, W4a, W4b, on both builds of the SDK) on in-process nodes, the remote ones
//! with node B as a `spore node` OS process (target/debug/spore, built by the workspace's
//! `cargo test`), all with tiny N, then the QUIC floor (its echo side on a thread) and W4a's
//! wasmtime floor. Counts only: no timing is asserted.

#[allow(dead_code, reason = "the bench's own entry points are not used here")]
#[path = "../benches/workloads.rs"]
mod workloads;

#[test]
fn every_workload_runs_with_tiny_n_and_counts_right() -> anyhow::Result<()> {
    let lines = workloads::smoke(workloads::spore_binary()?)?;
    for line in &lines {
        eprintln!("{line}");
    }
    let ids: Vec<&str> = lines.iter().filter_map(|l| l.split_whitespace().next()).collect();
    let expected = [
        "W1", "W4a", "W4a-std", "W4b", "W4b-std", "W2", "W3", "W3b", "W5", "W5b", "W5b-std", "W7", "W6",
        "FLOOR", "FLOOR", "FLOOR",
    ];
    assert_eq!(ids, expected);
    let w6 = &lines[lines.len() - 4];
    assert!(w6.contains(" rejected=true "), "{w6}");
    let floors = &lines[lines.len() - 3..];
    for (floor, what) in floors.iter().zip(["quic64", "quic64-spin", "wasm-spawn"]) {
        assert!(floor.starts_with(&format!("FLOOR {what} ")) && floor.contains(" n=10 "), "{floor}");
    }
    Ok(())
}
