//! One node: processes, mailboxes, links, monitors, names, limits.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use ciborium::Value;
use spore_host::{
    CacheDir, ExitReason, Incoming, Node, NodeConfig, Selector, SendError, SpawnError, SpawnRequest, cbor,
};
use spore_tests::{
    DEADLINE, as_text, guests, int, load, next_down, next_message, next_signal, node, spawn, text,
};

#[tokio::test]
async fn ping_pong_prints_the_tutorial_lines_in_order() -> anyhow::Result<()> {
    let node = node("pingpong@localhost");
    let module = load(&node, guests::PING_PONG).await?;
    let mut group = node.group_leader();
    let pid = node.spawn(SpawnRequest::new(module, "main").group_leader(group.pid()))?;
    let mut out = Vec::new();
    let mut err = Vec::new();
    let reason = tokio::time::timeout(DEADLINE, group.print_until_done(pid, &mut out, &mut err))
        .await
        .context("hung")?;
    assert_eq!(reason, ExitReason::Normal);
    let expected = "Pong received ping\nPing received pong\n".repeat(3) + "Ping finished\nPong finished\n";
    assert_eq!(String::from_utf8(out)?, expected);
    assert!(err.is_empty(), "stderr: {}", String::from_utf8_lossy(&err));
    Ok(())
}

#[tokio::test]
async fn ten_thousand_processes_blocked_in_receive_all_answer() -> anyhow::Result<()> {
    const N: usize = 10_000;
    let config = NodeConfig {
        name: "many@localhost".into(),
        limits: spore_host::Limits { memory_bytes: 32 << 20, ..Default::default() },
        max_processes: N as u32 + 16,
        // Small reservations keep 10k slots well inside the address space, next to the
        // other tests' nodes in this process.
        memory_reservation: Some(64 << 20),
        cache_dir: CacheDir::Path(spore_tests::cache_dir()),
        ..NodeConfig::default()
    };
    let node = Node::start(config)?;
    let module = load(&node, guests::ECHO).await?;
    let mut me = node.host_process();
    let mut pids = Vec::with_capacity(N);
    for _ in 0..N {
        pids.push(spawn(&node, module, "echo", vec![])?);
    }
    ensure!(node.process_count() >= N, "only {} processes alive", node.process_count());
    for (i, pid) in pids.iter().enumerate() {
        me.send(*pid, 1, cbor::to_bytes(&int(i as u64))).await?;
    }
    let mut answered = vec![false; N];
    for _ in 0..N {
        let (from, value) = next_message(&mut me).await?;
        let i = pids.iter().position(|p| *p == from).context("answer from a stranger")?;
        ensure!(value == int(i as u64), "wrong answer from {from}");
        answered[i] = true;
    }
    ensure!(answered.iter().all(|a| *a));
    Ok(())
}

#[tokio::test]
async fn pool_exhaustion_is_a_typed_spawn_error() -> anyhow::Result<()> {
    let mut config = spore_tests::test_config("full@localhost");
    config.max_processes = 3;
    let node = Node::start(config)?;
    let module = load(&node, guests::ECHO).await?;
    for _ in 0..3 {
        spawn(&node, module, "echo", vec![])?;
    }
    let err = node.spawn(SpawnRequest::new(module, "echo")).unwrap_err();
    assert!(matches!(err, SpawnError::Quota(_)), "{err}");
    Ok(())
}

#[tokio::test]
async fn a_spinning_guest_does_not_stop_others_and_can_be_killed() -> anyhow::Result<()> {
    let node = node("spin@localhost");
    let spin = load(&node, guests::SPIN).await?;
    let echo = load(&node, guests::ECHO).await?;
    let mut me = node.host_process();
    // More spinners than worker threads.
    let spinners: Vec<_> = (0..4).map(|_| spawn(&node, spin, "spin", vec![])).collect::<Result<_, _>>()?;
    let monitors: Vec<_> = spinners.iter().map(|p| me.monitor(*p)).collect();
    let echoer = spawn(&node, echo, "echo", vec![])?;
    for i in 0..20 {
        me.send(echoer, 0, cbor::to_bytes(&int(i))).await?;
        let (from, value) = next_message(&mut me).await?;
        ensure!(from == echoer && value == int(i));
    }
    for p in &spinners {
        node.kill(*p);
    }
    for _ in &spinners {
        match next_signal(&mut me).await? {
            Incoming::Down { monitor, reason, .. } => {
                ensure!(monitors.contains(&monitor));
                ensure!(reason == ExitReason::Killed, "{reason}");
            }
            other => anyhow::bail!("unexpected {other:?}"),
        }
    }
    Ok(())
}

/// Spawns crash's `watch` for `victim` and returns what it reported.
async fn watched(node: &Node, victim: &str, how: &str) -> anyhow::Result<String> {
    let crash = load(node, guests::CRASH).await?;
    let mut me = node.host_process();
    let watcher = spawn(node, crash, "watch", vec![node.pid_value(me.pid()), text(victim), text(how)])?;
    let (from, child) = next_message(&mut me).await?;
    ensure!(from == watcher, "report from a stranger");
    let (_, got) = next_message(&mut me).await?;
    ensure!(
        matches!(child.as_array().map(Vec::as_slice), Some([tag, _]) if *tag == text("child")),
        "{child:?}"
    );
    let got = match got.as_array().map(Vec::as_slice) {
        Some([tag, Value::Text(got)]) if *tag == text("got") => got.clone(),
        _ => anyhow::bail!("bad report {got:?}"),
    };
    Ok(got)
}

#[tokio::test]
async fn a_trap_reaches_links_as_exit_messages() -> anyhow::Result<()> {
    let node = node("trap@localhost");
    let got = watched(&node, "trap", "link").await?;
    assert!(got.starts_with("exit trap:") && got.contains("unreachable"), "{got}");
    Ok(())
}

#[tokio::test]
async fn a_panic_reaches_monitors_with_its_message() -> anyhow::Result<()> {
    let node = node("panic@localhost");
    let got = watched(&node, "panics", "monitor").await?;
    assert!(got.starts_with("down panic: on purpose"), "{got}");
    Ok(())
}

#[tokio::test]
async fn a_stack_overflow_traps_and_ends_that_process_only() -> anyhow::Result<()> {
    let node = node("overflow@localhost");
    let got = watched(&node, "overflow", "monitor").await?;
    assert!(got.starts_with("down trap:") && got.contains("out of bounds"), "{got}");
    // The watcher, on the same node, lived to report it; so does a new process.
    let got = watched(&node, "panics", "monitor").await?;
    assert!(got.starts_with("down panic: on purpose"), "{got}");
    Ok(())
}

#[tokio::test]
async fn a_memory_bomb_ends_with_a_limit_reason() -> anyhow::Result<()> {
    let node = node("oom@localhost");
    let got = watched(&node, "oom", "monitor").await?;
    assert!(got.starts_with("down limit: memory limit of 64.0 MiB exceeded"), "{got}");
    let got = watched(&node, "quit", "link").await;
    // `quit` needs an argument; without one it ends with an argument error: still a reason.
    assert!(got?.starts_with("exit bad arguments for entry `quit`"));
    let got = watched(&node, "fails", "link").await?;
    assert_eq!(got, "exit returned an error");
    Ok(())
}

#[tokio::test]
async fn a_crash_kills_linked_processes_that_do_not_trap_exits() -> anyhow::Result<()> {
    let node = node("linked@localhost");
    let crash = load(&node, guests::CRASH).await?;
    let echo = load(&node, guests::ECHO).await?;
    let mut me = node.host_process();
    let (victim, monitor) = me.spawn_monitor(SpawnRequest::new(crash, "linked_victim"))?;
    match next_signal(&mut me).await? {
        Incoming::Down { monitor: m, pid, reason } => {
            ensure!(m == monitor && pid == victim);
            ensure!(matches!(&reason, ExitReason::Panic(m) if m.starts_with("on purpose")), "{reason}");
        }
        other => anyhow::bail!("unexpected {other:?}"),
    }
    // The node and other processes keep working.
    let echoer = spawn(&node, echo, "echo", vec![])?;
    me.send(echoer, 0, cbor::to_bytes(&text("still here"))).await?;
    let (_, value) = next_message(&mut me).await?;
    ensure!(value == text("still here"));
    Ok(())
}

#[tokio::test]
async fn mailbox_bound_is_enforced_with_a_clear_error() -> anyhow::Result<()> {
    let node = node("mailbox@localhost");
    let limits = load(&node, guests::LIMITS).await?;
    let me = node.host_process();
    let mut request = SpawnRequest::new(limits, "deaf");
    request.mailbox_limit = Some(5);
    let deaf = node.spawn(request)?;
    for i in 0..5 {
        me.send(deaf, 0, cbor::to_bytes(&int(i))).await?;
    }
    let err = me.send(deaf, 0, cbor::to_bytes(&int(5))).await.unwrap_err();
    assert_eq!(err, SendError::MailboxFull(deaf));
    assert_eq!(err.to_string(), format!("mailbox of {deaf} is full"));
    Ok(())
}

#[tokio::test]
async fn mailbox_bytes_are_bounded_so_a_deaf_process_cannot_fill_the_node() -> anyhow::Result<()> {
    let mut config = spore_tests::test_config("mailboxbytes@localhost");
    config.limits.mailbox_bytes = 1 << 20;
    let node = Node::start(config)?;
    let limits = load(&node, guests::LIMITS).await?;
    let me = node.host_process();
    let deaf = node.spawn(SpawnRequest::new(limits, "deaf"))?;
    for _ in 0..4 {
        me.send(deaf, 0, vec![0u8; 256 << 10]).await?;
    }
    let err = me.send(deaf, 0, vec![0u8; 1]).await.unwrap_err();
    assert_eq!(err, SendError::MailboxFull(deaf));
    Ok(())
}

#[tokio::test]
async fn message_size_bound_is_enforced_for_hosts_and_guests() -> anyhow::Result<()> {
    let mut config = spore_tests::test_config("size@localhost");
    config.max_message_bytes = 1024;
    let node = Node::start(config)?;
    let limits = load(&node, guests::LIMITS).await?;
    let mut me = node.host_process();
    let err = me.send(me.pid(), 0, vec![0u8; 2048]).await.unwrap_err();
    assert_eq!(err.to_string(), "message of 2048 bytes is over the limit of 1024 bytes");
    spawn(&node, limits, "send_big", vec![node.pid_value(me.pid()), int(4096)])?;
    let (_, outcome) = next_message(&mut me).await?;
    assert_eq!(as_text(&outcome)?, "too large (limit 1024)");
    spawn(&node, limits, "send_big", vec![node.pid_value(me.pid()), int(100)])?;
    let (_, outcome) = next_message(&mut me).await?;
    assert_eq!(as_text(&outcome)?, "sent");
    // A timer's message is checked when it is set, not dropped when it fires.
    spawn(&node, limits, "send_big_later", vec![node.pid_value(me.pid()), int(4096)])?;
    let (_, outcome) = next_message(&mut me).await?;
    assert_eq!(as_text(&outcome)?, "too large (limit 1024)");
    Ok(())
}

#[tokio::test]
async fn send_receive_sends_then_receives_and_a_failed_send_receives_nothing() -> anyhow::Result<()> {
    let mut config = spore_tests::test_config("sendreceive@localhost");
    config.max_message_bytes = 1024;
    let node = Node::start(config)?;
    let limits = load(&node, guests::LIMITS).await?;
    let mut me = node.host_process();
    spawn(&node, limits, "send_receive_halves", vec![node.pid_value(me.pid()), int(4096)])?;
    let (_, note) = next_message(&mut me).await?;
    assert_eq!(as_text(&note)?, "a note");
    let (_, steps) = next_message(&mut me).await?;
    assert_eq!(
        as_text(&steps)?,
        "too large (limit 1024), 1 pending; waiting; second; Ok(7); third; fourth; fifth; None"
    );
    Ok(())
}

#[tokio::test]
async fn a_received_message_reaches_the_guest_field_for_field_through_receive_and_send_receive()
-> anyhow::Result<()> {
    let node = node("fields@localhost");
    let limits = load(&node, guests::LIMITS).await?;
    let mut me = node.host_process();
    spawn(&node, limits, "received_fields", vec![node.pid_value(me.pid())])?;
    let (_, outcome) = next_message(&mut me).await?;
    assert_eq!(as_text(&outcome)?, "ok");
    Ok(())
}

#[tokio::test]
async fn a_module_over_the_size_limit_is_too_large_for_a_guest_spawn() -> anyhow::Result<()> {
    let mut config = spore_tests::test_config("modsize@localhost");
    config.max_module_bytes = 512 << 10;
    let node = Node::start(config)?;
    let limits = load(&node, guests::LIMITS).await?;
    let mut me = node.host_process();
    spawn(&node, limits, "spawn_bytes", vec![node.pid_value(me.pid()), int(600 << 10)])?;
    let (_, outcome) = next_message(&mut me).await?;
    assert_eq!(as_text(&outcome)?, "too large (limit 524288)");
    spawn(&node, limits, "spawn_bytes", vec![node.pid_value(me.pid()), int(100)])?;
    let (_, outcome) = next_message(&mut me).await?;
    assert!(as_text(&outcome)?.contains("not a WebAssembly file"), "{outcome:?}");
    Ok(())
}

#[tokio::test]
async fn a_receive_with_too_many_selectors_ends_only_that_process() -> anyhow::Result<()> {
    let node = node("selectors@localhost");
    let limits = load(&node, guests::LIMITS).await?;
    let mut me = node.host_process();
    spawn(&node, limits, "many_selectors", vec![node.pid_value(me.pid()), int(256)])?;
    let (_, outcome) = next_message(&mut me).await?;
    assert_eq!(as_text(&outcome)?, "received");
    let args = cbor::to_bytes(&Value::Array(vec![node.pid_value(me.pid()), int(300)]));
    let (pid, monitor) = me.spawn_monitor(SpawnRequest::new(limits, "many_selectors").args(args))?;
    let Incoming::Down { monitor: m, pid: p, reason: ExitReason::Trap(why) } = next_signal(&mut me).await?
    else {
        anyhow::bail!("expected a trap");
    };
    ensure!(m == monitor && p == pid && why.contains("300 selectors"), "{why}");
    Ok(())
}

#[tokio::test]
async fn receive_with_timeout_returns_on_time() -> anyhow::Result<()> {
    let node = node("timeout@localhost");
    let limits = load(&node, guests::LIMITS).await?;
    let mut me = node.host_process();
    let started = Instant::now();
    spawn(&node, limits, "wait", vec![node.pid_value(me.pid()), int(200)])?;
    let (_, outcome) = next_message(&mut me).await?;
    let took = started.elapsed();
    assert_eq!(as_text(&outcome)?, "timeout");
    assert!(took >= Duration::from_millis(200), "returned early, after {took:?}");
    assert!(took < Duration::from_secs(5), "returned late, after {took:?}");
    // The host side: a receive with a timeout and nothing to receive.
    let started = Instant::now();
    assert!(me.receive(&[Selector::Any], Some(Duration::from_millis(50))).await.is_none());
    assert!(started.elapsed() >= Duration::from_millis(50));
    Ok(())
}

#[tokio::test]
async fn a_timeout_too_long_to_reach_means_no_timeout_for_guests_and_hosts() -> anyhow::Result<()> {
    let node = node("forever@localhost");
    let limits = load(&node, guests::LIMITS).await?;
    let mut me = node.host_process();
    // `u64::MAX` ms or `Duration::MAX`, common ways to say "forever": the receive waits.
    let waiter = spawn(&node, limits, "wait", vec![node.pid_value(me.pid()), int(u64::MAX)])?;
    me.send(waiter, 0, cbor::to_bytes(&text("hi"))).await?;
    let (from, outcome) = next_message(&mut me).await?;
    assert_eq!((from, as_text(&outcome)?), (waiter, "message hi"));
    // The host side: `Duration::MAX` panicked (adding it to an `Instant` overflows).
    let mut host = node.host_process();
    me.send(host.pid(), 0, cbor::to_bytes(&text("hello"))).await?;
    assert!(matches!(host.receive(&[Selector::Any], Some(Duration::MAX)).await, Some(Incoming::Message(_))));
    Ok(())
}

#[test]
fn an_epoch_tick_of_zero_or_of_hours_is_refused_at_start() {
    for tick in [Duration::ZERO, Duration::from_secs(3600)] {
        let config = NodeConfig { epoch_tick: tick, ..spore_tests::test_config("tick@localhost") };
        let Err(refused) = Node::start(config) else {
            panic!("a node started with an epoch tick of {tick:?}")
        };
        assert!(
            refused
                .to_string()
                .starts_with(&format!("bad configuration: an epoch tick of {tick:?} is outside")),
            "{refused}"
        );
    }
}

#[tokio::test]
async fn a_name_vanishes_with_its_process_and_a_taken_name_is_refused() -> anyhow::Result<()> {
    let node = node("names@localhost");
    let names = load(&node, guests::NAMES).await?;
    let mut me = node.host_process();
    let first = spawn(&node, names, "claim", vec![node.pid_value(me.pid()), text("svc")])?;
    let (_, outcome) = next_message(&mut me).await?;
    assert_eq!(as_text(&outcome)?, "ok");
    assert_eq!(node.whereis("svc"), Some(first));
    spawn(&node, names, "claim", vec![node.pid_value(me.pid()), text("svc")])?;
    let (_, outcome) = next_message(&mut me).await?;
    assert_eq!(as_text(&outcome)?, "taken");
    let err = node.register("svc", me.pid()).unwrap_err();
    assert_eq!(err.to_string(), format!("name already registered by {first}"));
    // End the first claimant; its name goes with it.
    let monitor = me.monitor(first);
    me.send(first, 0, cbor::to_bytes(&text("bye"))).await?;
    match next_signal(&mut me).await? {
        Incoming::Down { monitor: m, .. } if m == monitor => {}
        other => anyhow::bail!("unexpected {other:?}"),
    }
    assert_eq!(node.whereis("svc"), None);
    spawn(&node, names, "lookup", vec![node.pid_value(me.pid()), text("svc")])?;
    let (_, outcome) = next_message(&mut me).await?;
    assert_eq!(outcome, Value::Null);
    Ok(())
}

#[tokio::test]
async fn pids_inside_messages_can_be_forwarded_and_used_to_reply() -> anyhow::Result<()> {
    let node = node("relay@localhost");
    let relay = load(&node, guests::RELAY).await?;
    let mut me = node.host_process();
    let answer = spawn(&node, relay, "answer", vec![])?;
    let relayer = spawn(&node, relay, "relay", vec![])?;
    let msg = Value::Array(vec![node.pid_value(me.pid()), node.pid_value(answer)]);
    me.send(relayer, 0, cbor::to_bytes(&msg)).await?;
    let (from, reply) = next_message(&mut me).await?;
    ensure!(from == answer, "reply from {from}, expected {answer}");
    let Value::Array(parts) = reply else { anyhow::bail!("bad reply") };
    ensure!(parts[0] == text("hello from"));
    ensure!(node.value_pid(&parts[1]) == Some(answer));
    Ok(())
}

/// Each process of a chain spawns the next as soon as it starts, then waits for what comes
/// back: a child that runs before its parent goes on (see `yield_to_child`) spawns and waits
/// in its turn, and the answer still climbs the whole chain.
#[tokio::test]
async fn a_chain_of_processes_each_spawning_the_next_passes_an_answer_back_up() -> anyhow::Result<()> {
    // The tests' nodes run at most 64 processes.
    const LINKS: u32 = 50;
    let node = node("chain@localhost");
    let relay = load(&node, guests::RELAY).await?;
    let mut me = node.host_process();
    let head = spawn(&node, relay, "chain", vec![int(LINKS.into()), node.pid_value(me.pid())])?;
    let (from, back) = next_message(&mut me).await?;
    ensure!(from == head, "answer from {from}, expected the chain's head {head}");
    assert_eq!(back, text("end"));
    Ok(())
}

#[tokio::test]
async fn a_process_sees_no_clock_environment_or_files_unless_granted() -> anyhow::Result<()> {
    let node = node("sandbox@localhost");
    let sandbox = load(&node, guests::SANDBOX).await?;
    let mut me = node.host_process();
    let report = |v: &Value| -> anyhow::Result<(u64, bool, bool)> {
        match v.as_array().map(Vec::as_slice) {
            Some([Value::Integer(env), Value::Bool(clock), Value::Bool(fs)]) => {
                Ok((u64::try_from(*env)?, *clock, *fs))
            }
            _ => anyhow::bail!("bad report {v:?}"),
        }
    };
    spawn(&node, sandbox, "probe", vec![node.pid_value(me.pid())])?;
    let (_, bare) = next_message(&mut me).await?;
    assert_eq!(report(&bare)?, (0, false, false), "nothing granted");

    let dir = std::env::temp_dir();
    let mut request = SpawnRequest::new(sandbox, "probe")
        .args(cbor::to_bytes(&Value::Array(vec![node.pid_value(me.pid())])));
    request.grants = spore_host::Grants {
        clock: true,
        env: vec![("GREETING".into(), "hello".into())],
        dirs: vec![spore_host::Preopen { host: dir.clone(), guest: "/".into(), writable: false }],
    };
    node.spawn(request.clone())?;
    let (_, granted) = next_message(&mut me).await?;
    assert_eq!(report(&granted)?, (1, true, true), "everything granted");

    // A child asks for the clock and the environment but not files: it gets what its parent
    // has and asks for, no more.
    let child = SpawnRequest { entry: "child_probe".into(), ..request };
    node.spawn(child)?;
    let (_, inherited) = next_message(&mut me).await?;
    assert_eq!(report(&inherited)?, (1, true, false));
    Ok(())
}

#[tokio::test]
async fn a_fuel_budget_ends_a_process_that_spends_it() -> anyhow::Result<()> {
    let mut config = spore_tests::test_config("fuel@localhost");
    config.fuel = true;
    let node = Node::start(config)?;
    let spin = load(&node, guests::SPIN).await?;
    let mut me = node.host_process();
    let mut request = SpawnRequest::new(spin, "spin");
    request.fuel = Some(50_000_000);
    let (_, monitor) = me.spawn_monitor(request)?;
    match next_signal(&mut me).await? {
        Incoming::Down { monitor: m, reason, .. } if m == monitor => {
            assert_eq!(reason, ExitReason::Limit("fuel budget exhausted".into()));
        }
        other => anyhow::bail!("unexpected {other:?}"),
    }
    // A node without fuel metering refuses budgets clearly.
    let plain = spore_tests::node("nofuel@localhost");
    let spin = load(&plain, guests::SPIN).await?;
    let mut request = SpawnRequest::new(spin, "spin");
    request.fuel = Some(1);
    let err = plain.spawn(request).unwrap_err();
    assert_eq!(err.to_string(), "limits refused: fuel budgets need a node started with fuel metering");
    Ok(())
}

#[tokio::test]
async fn timers_fire_in_order_and_cancelled_ones_do_not() -> anyhow::Result<()> {
    let node = node("timers@localhost");
    let limits = load(&node, guests::LIMITS).await?;
    let mut me = node.host_process();
    spawn(&node, limits, "timers", vec![node.pid_value(me.pid())])?;
    let mut got = Vec::new();
    for _ in 0..3 {
        let (_, v) = next_message(&mut me).await?;
        got.push(as_text(&v)?.to_owned());
    }
    assert_eq!(got, ["early", "late", "slept"]);
    Ok(())
}

#[tokio::test]
async fn a_timer_outlives_the_process_that_set_it() -> anyhow::Result<()> {
    let node = node("timer-after-end@localhost");
    let limits = load(&node, guests::LIMITS).await?;
    let mut me = node.host_process();
    let setter = spawn(&node, limits, "timer_after_end", vec![node.pid_value(me.pid())])?;
    let monitor = me.monitor(setter);
    match next_signal(&mut me).await? {
        Incoming::Down { monitor: m, reason, .. } if m == monitor => {
            ensure!(matches!(reason, ExitReason::Normal | ExitReason::Noproc), "{reason:?}")
        }
        other => anyhow::bail!("expected the setter's down notice, got {other:?}"),
    }
    // As in Erlang, the timer belongs to no process: its message comes from the setter's pid.
    let (from, v) = next_message(&mut me).await?;
    ensure!(from == setter && as_text(&v)? == "after its end");
    Ok(())
}

#[tokio::test]
async fn pending_timers_are_held_to_their_owners_mailbox_limits_and_end_with_it() -> anyhow::Result<()> {
    let mut config = spore_tests::test_config("timerlimits@localhost");
    config.limits.mailbox_len = 50;
    config.limits.mailbox_bytes = 1 << 20;
    let node = Node::start(config)?;
    let limits = load(&node, guests::LIMITS).await?;
    let mut me = node.host_process();
    let parent = node.pid_value(me.pid());
    // Timers for itself: by count, the 51st pending timer is refused; a cancel makes room
    // again. By bytes: three messages of 300 KiB fit in 1 MiB, a fourth does not.
    for (bytes, expected) in [
        (1, "50 set, then mailbox full; after a cancel: set"),
        (300 << 10, "3 set, then mailbox full; after a cancel: set"),
    ] {
        let setter = spawn(&node, limits, "pending_timers", vec![parent.clone(), int(1000), int(bytes)])?;
        let monitor = me.monitor(setter);
        let (_, outcome) = next_message(&mut me).await?;
        ensure!(as_text(&outcome)? == expected, "{outcome:?}");
        // They were its own: they ended with it.
        next_down(&mut me, monitor).await?;
        ensure!(node.stats().pending_timers == 0, "{} timers left", node.stats().pending_timers);
    }
    Ok(())
}

#[tokio::test]
async fn a_timer_ends_with_the_local_process_it_is_for() -> anyhow::Result<()> {
    let node = node("timer-target-end@localhost");
    let limits = load(&node, guests::LIMITS).await?;
    let mut me = node.host_process();
    let parent = node.pid_value(me.pid());
    let target = spawn(&node, limits, "wait", vec![parent.clone(), int(3_600_000)])?;
    spawn(&node, limits, "timer_for", vec![parent.clone(), node.pid_value(target)])?;
    let (_, outcome) = next_message(&mut me).await?;
    ensure!(as_text(&outcome)? == "set", "{outcome:?}");
    ensure!(node.stats().pending_timers == 1);
    let monitor = me.monitor(target);
    me.kill(target);
    next_down(&mut me, monitor).await?;
    ensure!(node.stats().pending_timers == 0, "the timer for a dead process is still pending");
    // As in Erlang, a timer for a process that is not alive is set and does nothing.
    spawn(&node, limits, "timer_for", vec![parent, node.pid_value(target)])?;
    let (_, outcome) = next_message(&mut me).await?;
    ensure!(as_text(&outcome)? == "set" && node.stats().pending_timers == 0, "{outcome:?}");
    Ok(())
}

#[tokio::test]
async fn only_well_formed_node_names_are_remembered() -> anyhow::Result<()> {
    let node = node("known@localhost");
    let long = format!("{}@localhost", "x".repeat(300));
    // A newline would inject a line into the port mapper's protocol when the node is dialed.
    for bad in ["a\nREGISTER b@localhost 1@localhost", "noat", "@localhost", "a@", "a b@localhost", &long] {
        let id = spore_host::NodeId::of(bad);
        node.remember_node(id, bad);
        ensure!(node.node_name(id).is_none(), "{bad:?} was remembered");
    }
    let id = spore_host::NodeId::of("fine@localhost");
    node.remember_node(id, "fine@localhost");
    ensure!(node.node_name(id).as_deref() == Some("fine@localhost"));
    Ok(())
}
