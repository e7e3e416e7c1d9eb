//! Guests on the SDK without std (`#![no_std]`, tests/lean-guests): smaller, and they must
//! still run, send and receive, allocate, and end with the right reasons.

use anyhow::{bail, ensure};
use ciborium::Value;
use spore_host::{ExitReason, Incoming, SpawnRequest, cbor};
use spore_tests::{guests, int, load, next_message, next_signal, node, text};

#[tokio::test]
async fn a_guest_without_std_is_smaller_and_says_hello() -> anyhow::Result<()> {
    let lean = std::fs::read(guests::LEAN_HELLO)?.len();
    let std = std::fs::read(guests::HELLO)?.len();
    ensure!(lean * 4 < std * 3, "hello without std is {lean} bytes, with std {std}");
    let node = node("leanhello@localhost");
    let module = load(&node, guests::LEAN_HELLO).await?;
    let mut me = node.host_process();
    let args = cbor::to_bytes(&Value::Array(vec![node.pid_value(me.pid())]));
    let pid = node.spawn(SpawnRequest::new(module, "hello").args(args))?;
    let (_, hello) = next_message(&mut me).await?;
    let expected = Value::Array(vec![text(&module.to_string()), node.pid_value(pid), text("hello")]);
    ensure!(hello == expected, "expected {expected:?}, got {hello:?}");
    Ok(())
}

#[tokio::test]
async fn a_guest_without_std_receives_allocates_and_ends_with_its_reasons_and_limits() -> anyhow::Result<()> {
    let node = node("leanprobe@localhost");
    let module = load(&node, guests::LEAN_PROBE).await?;
    let mut me = node.host_process();
    let my_pid = node.pid_value(me.pid());

    let echo = node.spawn(SpawnRequest::new(module, "echo"))?;
    for word in ["one", "two", "three"] {
        me.send(echo, 0, cbor::to_bytes(&Value::Array(vec![my_pid.clone(), text(word)]))).await?;
        let (_, back) = next_message(&mut me).await?;
        ensure!(back == Value::Array(vec![text(word), node.pid_value(echo)]), "{back:?}");
    }

    let rounds = 300u64;
    let args = cbor::to_bytes(&Value::Array(vec![int(rounds), my_pid.clone()]));
    node.spawn(SpawnRequest::new(module, "churn").args(args))?;
    let (_, sum) = next_message(&mut me).await?;
    let expected: u64 =
        (0..rounds).step_by(2).map(|i| (0..i * 97).sum::<u64>()).sum::<u64>() + (0..1u64 << 20).sum::<u64>();
    ensure!(sum == int(expected), "churn kept {sum:?}, expected {expected}");

    let args = cbor::to_bytes(&Value::Array(vec![text("lean and mean")]));
    let (_, monitor) = me.spawn_monitor(SpawnRequest::new(module, "boom").args(args))?;
    let reason = down_reason(next_signal(&mut me).await?, monitor)?;
    ensure!(
        matches!(&reason, ExitReason::Panic(m) if m.starts_with("lean and mean at ") && m.contains("lean_probe.rs")),
        "{reason}"
    );

    let (_, monitor) = me.spawn_monitor(SpawnRequest::new(module, "fail"))?;
    let reason = down_reason(next_signal(&mut me).await?, monitor)?;
    ensure!(reason == ExitReason::Error("lean failure".into()), "{reason}");

    let (_, monitor) = me.spawn_monitor(SpawnRequest::new(module, "oom"))?;
    let reason = down_reason(next_signal(&mut me).await?, monitor)?;
    ensure!(matches!(&reason, ExitReason::Limit(m) if m.starts_with("memory limit of")), "{reason}");
    Ok(())
}

/// The reason of a down notice for `monitor`.
fn down_reason(signal: Incoming, monitor: spore_host::Ref) -> anyhow::Result<ExitReason> {
    match signal {
        Incoming::Down { monitor: m, reason, .. } if m == monitor => Ok(reason),
        other => bail!("expected the down notice, got {other:?}"),
    }
}
