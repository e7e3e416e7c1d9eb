//! Calls across nodes (`spore_guest::rpc`): answers, failures, timeouts and clean mailboxes.

use std::collections::BTreeSet;

use ciborium::Value;
use spore_host::{SpawnRequest, cbor};
use spore_tests::{cluster, guests, next_message, text};

#[tokio::test]
async fn calls_answer_fail_time_out_and_leave_nothing_behind() -> anyhow::Result<()> {
    let nodes = cluster("rpc", 2);
    let (a, b) = (&nodes[0], &nodes[1]);
    let mut me = a.host_process();
    let calls = a.load_file(guests::CALLS).await?;
    let args = cbor::to_bytes(&Value::Array(vec![text(b.name()), a.pid_value(me.pid())]));
    a.spawn(SpawnRequest::new(calls, "caller").args(args))?;
    let mut got = BTreeSet::new();
    for _ in 0..8 {
        let (_, value) = next_message(&mut me).await?;
        got.insert(value.as_text().unwrap_or_default().to_owned());
    }
    let expected = [
        "double: Ok(42)",
        "fail: Err(Exited(Error(\"refused\")))",
        "hang: Err(Timeout)",
        "nosuch: true",
        "decode: true",
        "multicall: [Ok(4), Ok(4)]",
        "cast ran",
        "pending: 0",
    ];
    for line in expected {
        assert!(got.contains(line), "missing {line:?} in {got:?}");
    }
    Ok(())
}
