//! Spawning on other nodes: code shipped once by content hash, typed errors for bad
//! modules, deadlines, atomic links across nodes, output coming home, the disk cache.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use spore_host::proto::{self, Frame, Hello, ModuleHeader, PROTOCOL_VERSION, SpawnHeader};
use spore_host::transport::tls::{Claim, ClusterIdentity};
use spore_host::transport::{Transport, peer};
use spore_host::{
    CacheDir, DistConfig, ExitReason, Incoming, Node, NodeConfig, Selector, SpawnError, SpawnRequest, cbor,
};
use spore_tests::{
    DEADLINE, TICK, claim, cluster, dist_node, free_port, guests, int, next_message, next_signal, text,
};

fn echo_request() -> SpawnRequest {
    SpawnRequest::from_bytes(std::fs::read(guests::ECHO).expect("echo guest"), "echo")
}

#[tokio::test]
async fn a_module_is_shipped_once_however_many_spawns_follow() -> anyhow::Result<()> {
    let nodes = cluster("once", 2);
    let (a, b) = (&nodes[0], &nodes[1]);
    let mut me = a.host_process();
    for i in 0..5u64 {
        let pid = me.spawn_on(b.name(), echo_request()).await?;
        me.send(pid, 1, cbor::to_bytes(&int(i))).await?;
        let (from, value) = next_message(&mut me).await?;
        ensure!(from == pid && value == int(i));
    }
    assert_eq!(a.stats().modules_shipped, 1, "{:?}", a.stats());
    assert_eq!(b.stats().modules_received, 1, "{:?}", b.stats());

    // A large module is not brought in the request: the target asks for it, and it comes
    // on a stream of its own, once.
    let echo = std::fs::read(guests::ECHO)?;
    let large = spore_tests::with_custom_section(&echo, "ballast", &vec![7; 300 << 10]);
    for i in 0..2u64 {
        let pid = me.spawn_on(b.name(), SpawnRequest::from_bytes(large.clone(), "echo")).await?;
        me.send(pid, 1, cbor::to_bytes(&int(i))).await?;
        ensure!(next_message(&mut me).await? == (pid, int(i)));
    }
    assert_eq!(a.stats().modules_shipped, 2, "{:?}", a.stats());
    assert_eq!(b.stats().modules_received, 2, "{:?}", b.stats());
    Ok(())
}

#[tokio::test]
async fn bad_modules_and_entries_are_typed_errors_and_the_target_keeps_serving() -> anyhow::Result<()> {
    let mapper = free_port();
    let a = dist_node("badmod0@localhost", "test-cookie", mapper);
    let mut dist = DistConfig::new("test-cookie");
    dist.mapper_port = Some(mapper);
    let config = NodeConfig {
        max_module_bytes: 100_000,
        cache_dir: CacheDir::Disabled,
        dist: Some(dist),
        ..spore_tests::test_config("badmod1@localhost")
    };
    let b = Node::start(config)?;
    let mut me = a.host_process();

    let err =
        me.spawn_on(b.name(), SpawnRequest::from_bytes(&b"not wasm at all"[..], "main")).await.unwrap_err();
    assert!(matches!(&err, SpawnError::InvalidModule(m) if m.contains("not a WebAssembly file")), "{err}");

    let big = std::fs::read(guests::PING_PONG)?;
    ensure!(big.len() > 100_000, "the ping-pong guest is small enough to fit the limit");
    let err = me.spawn_on(b.name(), SpawnRequest::from_bytes(big, "main")).await.unwrap_err();
    assert_eq!(err, SpawnError::TooLarge(100_000));

    let small = std::fs::read(guests::ECHO)?;
    ensure!(small.len() <= 100_000, "the echo guest is {} bytes", small.len());
    let err = me.spawn_on(b.name(), SpawnRequest::from_bytes(small, "nope")).await.unwrap_err();
    assert!(
        matches!(&err, SpawnError::UnknownEntry { entry, available } if entry == "nope" && available == "echo")
    );

    // Still serving.
    let pid = me.spawn_on(b.name(), echo_request()).await?;
    me.send(pid, 0, cbor::to_bytes(&text("alive"))).await?;
    ensure!(next_message(&mut me).await?.1 == text("alive"));
    Ok(())
}

#[tokio::test]
async fn bytes_that_do_not_match_their_hash_are_refused() -> anyhow::Result<()> {
    let nodes = cluster("hash", 1);
    let b = &nodes[0];
    let addr = b.local_addr().context("address")?;
    let identity = ClusterIdentity::from_cookie(b"test-cookie", "rogue@localhost")?;
    let transport =
        Transport::bind(&identity, claim("rogue@localhost"), [127, 0, 0, 1].into(), (0, 0), TICK)?;
    let hello =
        Hello { version: PROTOCOL_VERSION, name: "rogue@localhost".into(), incarnation: 1, hidden: true };
    let conn = transport.connect(addr, b.name(), Claim::of(&hello)).await?;
    let mut est = peer::dial(&conn, hello, b.name(), 1 << 20).await?;
    let echo = std::fs::read(guests::ECHO)?;
    let module = spore_host::ModuleId::of(&echo);
    let rogue = spore_host::Pid { node: spore_host::NodeId::of("rogue@localhost"), incarnation: 1, index: 1 };
    let request = rogue_spawn(7, module, rogue, 0);
    let mut buf = bytes::BytesMut::new();
    proto::encode(&request, &[], &mut buf);
    est.send.write_all(&buf).await?;
    let (need, _) = est.reader.next().await?.context("no answer")?;
    ensure!(matches!(need, Frame::SpawnNeed { reference: 7, .. }), "{need:?}");
    // Ship other bytes under the module's id.
    let mut corrupt = echo.clone();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    let mut uni = conn.open_uni().await?;
    let header = postcard::to_stdvec(&ModuleHeader { module, size: corrupt.len() as u64 })?;
    uni.write_all(&(header.len() as u32).to_le_bytes()).await?;
    uni.write_all(&header).await?;
    uni.write_all(&corrupt).await?;
    uni.finish()?;
    let (reply, _) = est.reader.next().await?.context("no reply")?;
    let Frame::SpawnReply { reference: 7, result: Err(SpawnError::InvalidModule(m)) } = reply else {
        anyhow::bail!("expected a refusal, got {reply:?}");
    };
    ensure!(m.contains("hash mismatch"), "{m}");
    ensure!(b.process_count() == 0, "nothing was spawned");

    // The same, with the bytes brought in the request itself.
    let brought = rogue_spawn(8, module, rogue, corrupt.len() as u32);
    let mut buf = bytes::BytesMut::new();
    proto::encode(&brought, &corrupt, &mut buf);
    est.send.write_all(&buf).await?;
    let (reply, _) = est.reader.next().await?.context("no reply")?;
    let Frame::SpawnReply { reference: 8, result: Err(SpawnError::InvalidModule(m)) } = reply else {
        anyhow::bail!("expected a refusal, got {reply:?}");
    };
    ensure!(m.contains("hash mismatch"), "{m}");
    ensure!(b.process_count() == 0, "nothing was spawned");
    Ok(())
}

/// A spawn request of `echo` from the rogue process `rogue`, with `code_bytes` of module
/// bytes after its (empty) arguments.
fn rogue_spawn(
    reference: u64,
    module: spore_host::ModuleId,
    rogue: spore_host::Pid,
    code_bytes: u32,
) -> Frame {
    Frame::SpawnRequest(Box::new(SpawnHeader {
        reference,
        module,
        entry: "echo".into(),
        parent: rogue,
        leader: rogue,
        leader_node: "rogue@localhost".into(),
        link: false,
        monitor: None,
        memory_limit: None,
        mailbox_limit: None,
        fuel: None,
        clock: false,
        code_bytes,
    }))
}

/// A node that completes the handshake, reads one spawn request, then does `then`.
async fn fake_target(transport: Transport, name: &str, close: bool) {
    let Some(incoming) = transport.accept().await else { return };
    let Ok(arriving) = peer::Arriving::new(incoming).await else { return };
    let hello = Hello { version: PROTOCOL_VERSION, name: name.into(), incarnation: 9, hidden: false };
    let Ok((conn, mut est)) = arriving.accept(hello, 1 << 20).await else { return };
    while let Ok(Some((frame, _))) = est.reader.next().await {
        if matches!(frame, Frame::SpawnRequest(_)) {
            if close {
                conn.close(0u32.into(), b"dying");
            }
            // Otherwise: never answer, keep the connection.
            std::future::pending::<()>().await;
        }
    }
}

#[tokio::test]
async fn a_spawn_on_a_node_that_is_not_there_says_why_however_soon_it_is_retried() -> anyhow::Result<()> {
    let a = dist_node("retrier@localhost", "test-cookie", free_port());
    let me = a.host_process();
    // The second and third attempts come within the half second in which a failed node is
    // not dialed again; they used to say only "connection lost".
    for attempt in 1..=3 {
        let err = me.spawn_on("ghost@localhost", echo_request()).await.unwrap_err();
        let message = err.to_string();
        ensure!(
            matches!(err, SpawnError::Unreachable(_)) && message.contains("no node called ghost@localhost"),
            "attempt {attempt}: {message}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_target_dying_or_silent_during_a_spawn_is_an_error_within_the_deadline() -> anyhow::Result<()> {
    for (fake_name, close) in [("dying@localhost", true), ("silent@localhost", false)] {
        let identity = ClusterIdentity::from_cookie(b"test-cookie", fake_name)?;
        let transport = Transport::bind(&identity, claim(fake_name), [127, 0, 0, 1].into(), (0, 0), TICK)?;
        let fake_addr = transport.local_addr();
        let fake = tokio::spawn(fake_target(transport, fake_name, close));
        let mut dist = DistConfig::new("test-cookie");
        dist.mapper_port = None;
        dist.addresses.insert(fake_name.into(), fake_addr);
        let config = NodeConfig {
            spawn_timeout: Duration::from_secs(2),
            dist: Some(dist),
            ..spore_tests::test_config(&format!("asker-{close}@localhost"))
        };
        let a = Node::start(config)?;
        let me = a.host_process();
        let started = Instant::now();
        let err = me.spawn_on(fake_name, echo_request()).await.unwrap_err();
        let took = started.elapsed();
        if close {
            assert!(matches!(err, SpawnError::Unreachable(_)), "{err}");
        } else {
            assert_eq!(err, SpawnError::Timeout);
        }
        assert!(took < Duration::from_secs(4), "{fake_name}: the error took {took:?}");
        fake.abort();
    }
    Ok(())
}

#[tokio::test]
async fn a_remote_spawn_link_dies_with_its_parents_node_and_tells_the_parent_of_its_own() -> anyhow::Result<()>
{
    // The parent's node goes down: the child dies with noconnection.
    let mut nodes = cluster("plink", 2);
    let b = nodes.pop().context("b")?;
    let a = nodes.pop().context("a")?;
    let parent = a.host_process();
    let child = parent.spawn_link_on(b.name(), echo_request()).await?;
    let mut watcher = b.host_process();
    let monitor = watcher.monitor(child);
    a.shutdown();
    match next_signal(&mut watcher).await? {
        Incoming::Down { monitor: m, reason, .. } if m == monitor => {
            ensure!(reason == ExitReason::Noconnection, "{reason}")
        }
        other => anyhow::bail!("unexpected {other:?}"),
    }

    // The child's node goes down: the parent is told.
    let mut nodes = cluster("clink", 2);
    let b = nodes.pop().context("b")?;
    let a = nodes.pop().context("a")?;
    let mut parent = a.host_process();
    let child = parent.spawn_link_on(b.name(), echo_request()).await?;
    b.shutdown();
    match parent.receive(&[Selector::Signals], Some(DEADLINE)).await {
        Some(Incoming::Exit { from, reason }) if from == child => {
            ensure!(reason == ExitReason::Noconnection, "{reason}")
        }
        other => anyhow::bail!("unexpected {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn output_of_remote_processes_comes_home_in_causal_order() -> anyhow::Result<()> {
    let nodes = cluster("home", 3);
    let (home, pong_node, ping_node) = (&nodes[0], &nodes[1], &nodes[2]);
    let mut group = home.group_leader();
    let code = std::fs::read(guests::PING_PONG)?;
    for round in 0..3 {
        let request = SpawnRequest::from_bytes(code.clone(), "start")
            .args(spore_host::demo::text_args(&[ping_node.name()]));
        let first = group.process().spawn_on(pong_node.name(), request).await?;
        let mut out = Vec::new();
        let mut err = Vec::new();
        let reason =
            tokio::time::timeout(DEADLINE, group.print_until_done(first, &mut out, &mut err)).await?;
        assert_eq!(reason, ExitReason::Normal, "round {round}");
        let expected =
            "Pong received ping\nPing received pong\n".repeat(3) + "Ping finished\nPong finished\n";
        assert_eq!(String::from_utf8(out)?, expected, "round {round}");
        group = home.group_leader();
    }
    // The module went to each node once.
    assert_eq!(pong_node.stats().modules_received, 1);
    assert_eq!(ping_node.stats().modules_received, 1);
    Ok(())
}

#[tokio::test]
async fn a_restarted_node_reuses_its_compiled_modules_unless_damaged() -> anyhow::Result<()> {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("restart-cache");
    let _ = std::fs::remove_dir_all(&dir);
    let config = || NodeConfig {
        cache_dir: CacheDir::Path(dir.clone()),
        ..spore_tests::test_config("cache@localhost")
    };
    let first = Node::start(config())?;
    let id = first.load_file(guests::ECHO).await?;
    assert_eq!((first.stats().modules_compiled, first.stats().modules_from_disk), (1, 0));
    first.shutdown();
    let second = Node::start(config())?;
    assert_eq!(second.load_file(guests::ECHO).await?, id);
    assert_eq!((second.stats().modules_compiled, second.stats().modules_from_disk), (0, 1));
    second.shutdown();

    // One byte of the compiled code changed on disk: not loaded, compiled again, replaced.
    let files = std::fs::read_dir(&dir)?.map(|e| e.map(|e| e.path())).collect::<Result<Vec<_>, _>>()?;
    let artifacts: Vec<_> = files.iter().filter(|p| p.extension().is_some_and(|x| x == "cwasm")).collect();
    let [artifact] = artifacts.as_slice() else { anyhow::bail!("one artifact expected: {artifacts:?}") };
    let mut bytes = std::fs::read(artifact)?;
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(artifact, &bytes)?;
    let third = Node::start(config())?;
    assert_eq!(third.load_file(guests::ECHO).await?, id);
    assert_eq!((third.stats().modules_compiled, third.stats().modules_from_disk), (1, 0));
    third.shutdown();
    let fourth = Node::start(config())?;
    assert_eq!(fourth.load_file(guests::ECHO).await?, id);
    assert_eq!((fourth.stats().modules_compiled, fourth.stats().modules_from_disk), (0, 1));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_of_the_same_new_bytes_at_once_compile_them_once() -> anyhow::Result<()> {
    let node = std::sync::Arc::new(Node::start(NodeConfig {
        cache_dir: CacheDir::Disabled,
        ..spore_tests::test_config("loadonce@localhost")
    })?);
    let echo = std::fs::read(guests::ECHO)?;
    let loads: Vec<_> = (0..4)
        .map(|_| {
            let (node, echo) = (std::sync::Arc::clone(&node), echo.clone());
            tokio::spawn(async move { node.load(echo).await })
        })
        .collect();
    for load in loads {
        load.await??;
    }
    assert_eq!(node.stats().modules_compiled, 1);
    Ok(())
}

#[tokio::test]
async fn a_module_with_known_code_reuses_its_compiled_functions() -> anyhow::Result<()> {
    let node = Node::start(NodeConfig {
        cache_dir: CacheDir::Disabled,
        ..spore_tests::test_config("fns@localhost")
    })?;
    let echo = std::fs::read(guests::ECHO)?;
    node.load(echo.clone()).await?;
    let first = node.stats();
    assert!(first.functions_compiled > 0, "the first module compiles its functions");
    // The same code under another id (a custom section differs), as a module rebuilt
    // with only its data changed would be: its functions come from the cache, but for a
    // few whose Cranelift IR carries something of the module (about 1 in 12 for echo).
    node.load(spore_tests::with_custom_section(&echo, "version", b"2")).await?;
    let second = node.stats();
    assert_eq!(second.modules_compiled, 2);
    let again = second.functions_compiled - first.functions_compiled;
    let reused = second.functions_reused - first.functions_reused;
    assert!(
        again * 4 < first.functions_compiled,
        "{again} of {} functions compiled again",
        first.functions_compiled
    );
    assert!(reused * 4 > first.functions_compiled * 3, "only {reused} functions reused");
    // New code compiles.
    node.load_file(guests::SINK).await?;
    assert!(node.stats().functions_compiled > second.functions_compiled);
    Ok(())
}

#[tokio::test]
async fn spawn_arguments_over_the_message_limit_are_refused_and_the_link_stays_up() -> anyhow::Result<()> {
    let nodes = cluster("bigargs", 2);
    let (a, b) = (&nodes[0], &nodes[1]);
    let mut me = a.host_process();
    let first = me.spawn_on(b.name(), echo_request()).await?;
    let limit = NodeConfig::default().max_message_bytes;
    let mut request = echo_request();
    // Past the peer's frame limit too (the message limit plus header room).
    request.args = vec![0u8; limit + (128 << 10)].into();
    let err = me.spawn_on(b.name(), request).await.unwrap_err();
    ensure!(matches!(&err, SpawnError::Limits(m) if m.contains("over the message limit")), "{err}");
    // The connection carried on: the first child still answers.
    me.send(first, 1, cbor::to_bytes(&int(5))).await?;
    let (from, value) = next_message(&mut me).await?;
    ensure!(from == first && value == int(5));
    Ok(())
}
