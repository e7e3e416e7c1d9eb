//! A smoke run of the remote benchmark workloads (tests/benches/workloads.rs, included here):
//! node B as a `spore node` OS process (target/debug/spore, built by the workspace's `cargo
//! test`), W2, W3, W3b, W5, W5b (both guests), W7 and W6 with tiny N. Counts only: no timing is asserted.

#[allow(dead_code, reason = "the bench's own entry points are not used here")]
#[path = "../benches/workloads.rs"]
mod workloads;

#[test]
fn remote_workloads_run_with_tiny_n_and_count_right() -> anyhow::Result<()> {
    let lines = workloads::smoke(workloads::spore_binary()?)?;
    for line in &lines {
        eprintln!("{line}");
    }
    let ids: Vec<&str> = lines.iter().filter_map(|l| l.split_whitespace().next()).collect();
    assert_eq!(ids, ["W2", "W3", "W3b", "W5", "W5b", "W5b-std", "W7", "W6"]);
    let w6 = lines.last().map(String::as_str).unwrap_or_default();
    assert!(w6.contains(" rejected=true "), "{w6}");
    Ok(())
}
