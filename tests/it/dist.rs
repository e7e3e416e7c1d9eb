//! Several nodes in one test process: connections, cookies, remote messages, links and
//! monitors across nodes, flow and order, and hostile peers.

use std::time::Duration;

use anyhow::{Context, ensure};
use ciborium::Value;
use spore_host::proto::{Frame, Hello, PROTOCOL_VERSION};
use spore_host::transport::tls::{Claim, ClusterIdentity};
use spore_host::transport::{ConnectError, Transport, peer};
use spore_host::{
    DistConfig, ExitReason, Incoming, Node, NodeConfig, Selector, SpawnRequest, StartError, cbor,
};
use spore_tests::{
    DEADLINE, TICK, as_text, claim, cluster, cluster_ticking, dist_node, free_port, guests, int, load,
    next_down, next_message, next_node_event, next_signal, spawn, text,
};

#[tokio::test]
async fn nodes_connect_and_list_each_other() -> anyhow::Result<()> {
    let nodes = cluster("list", 2);
    let mut watcher = nodes[1].host_process();
    watcher.monitor_nodes(true);
    nodes[0].connect(nodes[1].name()).await?;
    assert_eq!(nodes[0].nodes(), vec![nodes[1].name().to_owned()]);
    let (name, up, _) = next_node_event(&mut watcher, DEADLINE).await?;
    assert_eq!((name.as_str(), up), (nodes[0].name(), true));
    assert_eq!(nodes[1].nodes(), vec![nodes[0].name().to_owned()]);
    Ok(())
}

#[tokio::test]
async fn a_host_process_connects_and_disconnects_from_a_task_on_its_nodes_runtime() -> anyhow::Result<()> {
    let nodes = cluster("handle", 2);
    let mut watcher = nodes[0].host_process();
    watcher.monitor_nodes(true);
    let me = nodes[0].host_process();
    let b = nodes[1].name().to_owned();
    let task = nodes[0].handle().spawn(async move {
        me.connect(&b).await?;
        let first = me.disconnect(&b);
        Ok::<_, ConnectError>((first, me))
    });
    let (disconnected, me) = tokio::time::timeout(DEADLINE, task).await??.map_err(anyhow::Error::from)?;
    ensure!(disconnected, "the first disconnect found no connection");
    let (name, up, _) = next_node_event(&mut watcher, DEADLINE).await?;
    assert_eq!((name.as_str(), up), (nodes[1].name(), true));
    let (name, up, _) = next_node_event(&mut watcher, DEADLINE).await?;
    assert_eq!((name.as_str(), up), (nodes[1].name(), false));
    ensure!(!me.disconnect(nodes[1].name()), "a second disconnect found a connection");
    // A name that no mapper or address knows fails instead of waiting.
    let unknown = tokio::time::timeout(DEADLINE, me.connect("nobody@localhost")).await?;
    ensure!(unknown.is_err(), "connecting to an unknown node succeeded");
    Ok(())
}

#[tokio::test]
async fn a_second_node_under_a_running_nodes_name_is_refused_and_a_restart_is_not() -> anyhow::Result<()> {
    let mapper = free_port();
    let config = |name: &str| {
        let mut dist = DistConfig::new("test-cookie");
        dist.mapper_port = Some(mapper);
        NodeConfig { dist: Some(dist), ..spore_tests::test_config(name) }
    };
    let _other = Node::start(config("other@localhost"))?;
    let first = Node::start(config("twin@localhost"))?;
    // Started from an async context, as `spore node` starts it: an error, not a panic.
    match Node::start(config("twin@localhost")) {
        Err(StartError::NameTaken { name, mapper_port }) => {
            assert_eq!((name.as_str(), mapper_port), ("twin@localhost", mapper));
        }
        other => anyhow::bail!("expected the name to be taken, got {:?}", other.map(|n| n.name().to_owned())),
    }
    // Stopped, its name is free again at once.
    first.shutdown();
    let again = Node::start(config("twin@localhost"))?;
    assert_eq!(spore_host::mapper::lookup("twin@localhost", mapper).await?, again.local_addr().unwrap());
    Ok(())
}

#[tokio::test]
async fn a_node_whose_ports_are_all_busy_says_so() -> anyhow::Result<()> {
    let busy = std::net::UdpSocket::bind("127.0.0.1:0")?;
    let port = busy.local_addr()?.port();
    let mut dist = DistConfig::new("test-cookie");
    dist.mapper_port = Some(free_port());
    dist.ports = (port, port);
    let config = NodeConfig { dist: Some(dist), ..spore_tests::test_config("busy@localhost") };
    match Node::start(config) {
        Err(e @ StartError::Listen(_)) => {
            assert!(e.to_string().contains(&format!("ports {port}-{port}")), "{e}")
        }
        other => anyhow::bail!("expected a listen error, got {:?}", other.map(|n| n.name().to_owned())),
    }
    Ok(())
}

#[tokio::test]
async fn nodes_dialing_each_other_at_once_end_up_with_one_link_that_stays() -> anyhow::Result<()> {
    // Each acceptor decides on a dialer's claim before the handshake: whichever way the two
    // ClientHellos cross, both sides must keep the same connection and never report the
    // other node down.
    let mut pairs = Vec::new();
    for round in 0..12 {
        let nodes = cluster(&format!("both{round}x"), 2);
        let (a, b) = (&nodes[0], &nodes[1]);
        let (mut wa, mut wb) = (a.host_process(), b.host_process());
        wa.monitor_nodes(true);
        wb.monitor_nodes(true);
        let (to_b, to_a) = tokio::join!(a.connect(b.name()), b.connect(a.name()));
        to_b.with_context(|| format!("round {round}: a to b"))?;
        to_a.with_context(|| format!("round {round}: b to a"))?;
        for (w, other) in [(&mut wa, b), (&mut wb, a)] {
            let (name, up, reason) = next_node_event(w, DEADLINE).await?;
            ensure!(up && name == other.name(), "round {round}: {name} up={up} ({reason})");
        }
        wa.send(wb.pid(), 1, cbor::to_bytes(&int(round))).await?;
        ensure!(next_message(&mut wb).await? == (wa.pid(), int(round)), "round {round}: a to b");
        wb.send(wa.pid(), 2, cbor::to_bytes(&int(round))).await?;
        ensure!(next_message(&mut wa).await? == (wb.pid(), int(round)), "round {round}: b to a");
        ensure!(a.nodes() == vec![b.name().to_owned()] && b.nodes() == vec![a.name().to_owned()]);
        pairs.push((nodes, wa, wb));
    }
    // A duplicate connection closed late would show as a nodedown.
    let mut watching = tokio::task::JoinSet::new();
    let mut nodes = Vec::new();
    for (pair, wa, wb) in pairs {
        nodes.push(pair);
        for mut w in [wa, wb] {
            watching.spawn(
                async move { w.receive(&[Selector::Signals], Some(Duration::from_millis(300))).await },
            );
        }
    }
    let late: Vec<Incoming> = watching.join_all().await.into_iter().flatten().collect();
    ensure!(late.is_empty(), "late node events: {late:?}");
    Ok(())
}

#[tokio::test]
async fn a_node_waits_for_a_connection_it_admitted_instead_of_dialing_and_dials_if_it_fails()
-> anyhow::Result<()> {
    // Two hand-driven dialers that stop after the node's hello: the node has admitted them,
    // and their handshakes are still running when it wants to reach them.
    let mut dist = DistConfig::new("test-cookie");
    dist.mapper_port = None;
    dist.tick = TICK;
    let mut fakes = Vec::new();
    for name in ["slowpoke@localhost", "quitter@localhost"] {
        let identity = ClusterIdentity::from_cookie(b"test-cookie", name)?;
        let transport = Transport::bind(&identity, claim(name), [127, 0, 0, 1].into(), (0, 0), TICK)?;
        dist.addresses.insert(name.to_owned(), transport.local_addr());
        let hello = Hello { version: PROTOCOL_VERSION, name: name.into(), incarnation: 1, hidden: false };
        fakes.push((transport, hello));
    }
    let config = spore_host::NodeConfig { dist: Some(dist), ..spore_tests::test_config("waiter@localhost") };
    let node = spore_host::Node::start(config)?;
    let addr = node.local_addr().context("address")?;
    let mut halfway = Vec::new();
    for (transport, hello) in &fakes {
        let conn = transport.connect(addr, node.name(), Claim::of(hello)).await?;
        let (send, recv) = conn.accept_bi().await?;
        let mut reader = peer::FrameReader::new(recv, 1 << 20);
        let (frame, _) = reader.next().await?.context("no hello")?;
        ensure!(matches!(&frame, Frame::Hello(h) if h.name == node.name()), "{frame:?}");
        halfway.push((conn, send));
    }

    // The node wants slowpoke: it waits for slowpoke's connection, which then completes.
    let mut connect = Box::pin(node.connect("slowpoke@localhost"));
    tokio::select! {
        biased;
        r = &mut connect => anyhow::bail!("connected before slowpoke's hello: {r:?}"),
        () = std::future::ready(()) => {}
    }
    let mut hello = bytes::BytesMut::new();
    spore_host::proto::encode(&Frame::Hello(fakes[0].1.clone()), &[], &mut hello);
    halfway[0].1.write_all(&hello).await?;
    tokio::time::timeout(DEADLINE, connect).await.context("slowpoke never came up")??;
    ensure!(node.nodes() == vec!["slowpoke@localhost".to_owned()]);

    // The node wants quitter, whose connection then fails: the node dials it.
    let mut connect = Box::pin(node.connect("quitter@localhost"));
    tokio::select! {
        biased;
        r = &mut connect => anyhow::bail!("connected before quitter's hello: {r:?}"),
        () = std::future::ready(()) => {}
    }
    halfway[1].0.close(0u32.into(), b"changed my mind");
    let answer = async {
        let incoming = fakes[1].0.accept().await.context("no connection from the node")?;
        let arriving = peer::Arriving::new(incoming).await?;
        ensure!(arriving.claim == Some(Claim { node: node.id(), incarnation: node.incarnation() }));
        let (conn, est) = arriving.accept(fakes[1].1.clone(), 1 << 20).await.map_err(anyhow::Error::msg)?;
        Ok((conn, est))
    };
    let (answered, connected) =
        tokio::join!(tokio::time::timeout(DEADLINE, answer), tokio::time::timeout(DEADLINE, connect));
    let _dialed = answered.context("the node never dialed quitter")??;
    connected.context("quitter never came up")??;
    ensure!(node.nodes() == vec!["quitter@localhost".to_owned(), "slowpoke@localhost".to_owned()]);

    // Slowpoke was never dialed.
    let dialed = tokio::time::timeout(Duration::from_millis(200), fakes[0].0.accept()).await;
    ensure!(dialed.is_err(), "the node dialed slowpoke too");
    Ok(())
}

#[tokio::test]
async fn a_wrong_cookie_is_refused_both_ways_and_named() -> anyhow::Result<()> {
    let mapper = free_port();
    let a = dist_node("cookiea@localhost", "one cookie", mapper);
    let b = dist_node("cookieb@localhost", "another cookie", mapper);
    for (from, to) in [(&a, &b), (&b, &a)] {
        let err = from.connect(to.name()).await.unwrap_err();
        assert!(matches!(err, ConnectError::Cookie { .. }), "{err:?}");
        assert!(err.to_string().contains("cookie"), "{err}");
    }
    assert!(a.nodes().is_empty() && b.nodes().is_empty());
    Ok(())
}

#[tokio::test]
async fn a_peer_claiming_another_name_is_refused() -> anyhow::Result<()> {
    let nodes = cluster("claim", 1);
    let target = nodes[0].name().to_owned();
    let addr = nodes[0].local_addr().context("address")?;
    // Right cookie, certificate for "mallory"; a hello claiming "alice", or a ClientHello
    // claiming someone else than the hello.
    let identity = ClusterIdentity::from_cookie(b"test-cookie", "mallory@localhost")?;
    let transport =
        Transport::bind(&identity, claim("mallory@localhost"), [127, 0, 0, 1].into(), (0, 0), TICK)?;
    let hello =
        |name: &str| Hello { version: PROTOCOL_VERSION, name: name.into(), incarnation: 1, hidden: false };
    let cases = [
        (
            "a hello naming another node than the certificate",
            hello("alice@localhost"),
            hello("alice@localhost"),
        ),
        (
            "a ClientHello claiming another node than the hello",
            hello("bob@localhost"),
            hello("mallory@localhost"),
        ),
        (
            "a ClientHello claiming another incarnation",
            Hello { incarnation: 2, ..hello("mallory@localhost") },
            hello("mallory@localhost"),
        ),
    ];
    for (what, claimed, said) in cases {
        let conn = transport.connect(addr, &target, Claim::of(&claimed)).await?;
        // The dialer's side completes (the acceptor answered on the claim), then the
        // acceptor checks and closes.
        let _est = peer::dial(&conn, said, &target, 1 << 20).await?;
        let closed = tokio::time::timeout(DEADLINE, conn.closed())
            .await
            .with_context(|| format!("{what}: not closed"))?;
        let quinn::ConnectionError::ApplicationClosed(close) = &closed else {
            anyhow::bail!("{what}: {closed:?}")
        };
        ensure!(close.error_code == spore_host::transport::close::REFUSED, "{what}: {close:?}");
        ensure!(nodes[0].nodes().is_empty(), "{what}: the acceptor took the peer");
    }
    Ok(())
}

#[tokio::test]
async fn a_pid_learned_from_a_third_node_is_reachable() -> anyhow::Result<()> {
    let nodes = cluster("third", 3);
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let relay_b = load(b, guests::RELAY).await?;
    let relay_c = load(c, guests::RELAY).await?;
    let mut me = a.host_process();
    let answer = spawn(b, relay_b, "answer", vec![])?;
    let relayer = spawn(c, relay_c, "relay", vec![])?;
    // A tells C's relay about A's process and B's answerer; B has never heard of A.
    a.remember_node(answer.node, b.name());
    let msg = Value::Array(vec![a.pid_value(me.pid()), a.pid_value(answer)]);
    a.remember_node(relayer.node, c.name());
    me.send(relayer, 0, cbor::to_bytes(&msg)).await?;
    let (from, reply) = next_message(&mut me).await?;
    ensure!(from == answer, "reply from {from}, expected {answer}");
    ensure!(matches!(reply.as_array().map(Vec::as_slice), Some([t, _]) if *t == text("hello from")));
    Ok(())
}

#[tokio::test]
async fn links_and_monitors_work_across_nodes() -> anyhow::Result<()> {
    let nodes = cluster("links", 2);
    let (a, b) = (&nodes[0], &nodes[1]);
    let echo = load(b, guests::ECHO).await?;
    let mut me = a.host_process();
    let target = spawn(b, echo, "echo", vec![])?;
    a.remember_node(target.node, b.name());
    me.link(target);
    let monitor = me.monitor(target);
    // The link is in place once a round trip has passed (signals and messages keep order).
    me.send(target, 0, cbor::to_bytes(&int(1))).await?;
    next_message(&mut me).await?;
    b.kill(target);
    let mut got_exit = false;
    let mut got_down = false;
    while !(got_exit && got_down) {
        match next_signal(&mut me).await? {
            Incoming::Exit { from, reason } if from == target => {
                ensure!(reason == ExitReason::Killed, "{reason}");
                got_exit = true;
            }
            Incoming::Down { monitor: m, pid, reason } if m == monitor && pid == target => {
                ensure!(reason == ExitReason::Killed, "{reason}");
                got_down = true;
            }
            other => anyhow::bail!("unexpected {other:?}"),
        }
    }
    // A monitor of a process that is already gone fires at once with noproc.
    let late = me.monitor(target);
    match next_signal(&mut me).await? {
        Incoming::Down { monitor, reason, .. } if monitor == late => ensure!(reason == ExitReason::Noproc),
        other => anyhow::bail!("unexpected {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn a_remote_message_to_a_full_mailbox_ends_the_receiver_visibly() -> anyhow::Result<()> {
    let nodes = cluster("overflow", 2);
    let (a, b) = (&nodes[0], &nodes[1]);
    let limits = load(b, guests::LIMITS).await?;
    let mut request = SpawnRequest::new(limits, "deaf");
    request.mailbox_limit = Some(5);
    let deaf = b.spawn(request)?;
    a.remember_node(deaf.node, b.name());
    let mut me = a.host_process();
    let monitor = me.monitor(deaf);
    // Five fit; the sixth cannot be refused to a sender whose send already returned, and
    // must not vanish: the receiver ends with a limit reason its monitor sees.
    for i in 0..6 {
        me.send(deaf, 0, cbor::to_bytes(&int(i))).await?;
    }
    match next_signal(&mut me).await? {
        Incoming::Down { monitor: m, pid, reason: ExitReason::Limit(why) } if m == monitor && pid == deaf => {
            ensure!(why.starts_with("mailbox full (5 messages)"), "{why}");
            ensure!(why.contains(&me.pid().to_string()), "the reason names the sender: {why}");
        }
        other => anyhow::bail!("unexpected {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn a_timer_for_another_nodes_process_ends_with_its_setter() -> anyhow::Result<()> {
    let nodes = cluster("timer-remote", 2);
    let (a, b) = (&nodes[0], &nodes[1]);
    let limits = load(a, guests::LIMITS).await?;
    let there = b.host_process();
    let mut me = a.host_process();
    let setter = spawn(a, limits, "timer_for", vec![a.pid_value(me.pid()), a.pid_value(there.pid())])?;
    let (_, outcome) = next_message(&mut me).await?;
    ensure!(as_text(&outcome)? == "set", "{outcome:?}");
    ensure!(a.stats().pending_timers == 1);
    // This node cannot see the end of the process it is for: the setter owns it.
    let monitor = me.monitor(setter);
    me.kill(setter);
    next_down(&mut me, monitor).await?;
    ensure!(a.stats().pending_timers == 0, "the timer outlived its setter");
    Ok(())
}

#[tokio::test]
async fn a_node_going_down_fires_links_monitors_and_nodedown() -> anyhow::Result<()> {
    let mut nodes = cluster("down", 2);
    let b = nodes.pop().context("two nodes")?;
    let a = nodes.pop().context("two nodes")?;
    let echo = load(&b, guests::ECHO).await?;
    let mut me = a.host_process();
    me.monitor_nodes(true);
    let target = spawn(&b, echo, "echo", vec![])?;
    a.remember_node(target.node, b.name());
    me.link(target);
    let monitor = me.monitor(target);
    me.send(target, 0, cbor::to_bytes(&int(1))).await?;
    let (_, up, _) = next_node_event(&mut me, DEADLINE).await?;
    ensure!(up);
    next_message(&mut me).await?;
    let b_name = b.name().to_owned();
    b.shutdown();
    let (mut exit, mut down, mut nodedown) = (false, false, false);
    while !(exit && down && nodedown) {
        match me.receive(&[Selector::Signals], Some(DEADLINE)).await.context("signals")? {
            Incoming::Exit { reason, .. } => {
                ensure!(reason == ExitReason::Noconnection, "{reason}");
                exit = true;
            }
            Incoming::Down { monitor: m, reason, .. } if m == monitor => {
                ensure!(reason == ExitReason::Noconnection, "{reason}");
                down = true;
            }
            Incoming::Node { name, up: false, reason } => {
                ensure!(name == b_name);
                ensure!(reason == "shutdown", "nodedown reason {reason}");
                nodedown = true;
            }
            other => anyhow::bail!("unexpected {other:?}"),
        }
    }
    ensure!(a.nodes().is_empty());
    Ok(())
}

/// Two nodes `<prefix>0` and `<prefix>1` whose connections allow 16 KiB in flight.
fn small_window_pair(prefix: &str) -> anyhow::Result<(Node, Node)> {
    let mapper = free_port();
    let node = |i: u32| {
        let mut dist = DistConfig::new("test-cookie");
        dist.mapper_port = Some(mapper);
        dist.tick = TICK;
        dist.send_window = 16 << 10;
        let config =
            NodeConfig { dist: Some(dist), ..spore_tests::test_config(&format!("{prefix}{i}@localhost")) };
        Node::start(config)
    };
    Ok((node(0)?, node(1)?))
}

#[tokio::test]
async fn messages_larger_than_a_small_send_window_arrive_in_order() -> anyhow::Result<()> {
    const N: usize = 64;
    let (a, b) = small_window_pair("window")?;
    let (me, mut them) = (a.host_process(), b.host_process());
    a.remember_node(them.pid().node, b.name());
    for i in 0..N {
        me.send(them.pid(), i as u64, vec![i as u8; 100 << 10]).await?;
    }
    for i in 0..N {
        let Some(Incoming::Message(m)) = them.receive(&[], Some(DEADLINE)).await else {
            anyhow::bail!("message {i} did not arrive");
        };
        ensure!(m.tag == i as u64 && m.payload.len() == 100 << 10 && m.payload.iter().all(|&x| x == i as u8));
    }
    Ok(())
}

/// A guest's `send-receive` to another node whose send window it has used up waits for
/// credit, then receives: every message arrives, in order.
#[tokio::test]
async fn a_send_receive_waiting_for_send_credit_delivers_everything_in_order() -> anyhow::Result<()> {
    const N: u64 = 136;
    const SIZE: u64 = 64 << 10;
    let (a, b) = small_window_pair("credit")?;
    let mut them = b.host_process();
    let limits = load(&a, guests::LIMITS).await?;
    a.remember_node(them.pid().node, b.name());
    // 8.5 MiB: more than the send credit of a connection (8 MiB), ahead of a 16 KiB window.
    spawn(&a, limits, "send_receive_flood", vec![a.pid_value(them.pid()), int(N), int(SIZE)])?;
    for i in 0..N {
        let (_, value) = next_message(&mut them).await.with_context(|| format!("message {i}"))?;
        let Value::Array(fields) = value else { anyhow::bail!("message {i}: {value:?}") };
        ensure!(fields.first() == Some(&int(i)), "message {i} out of order: {:?}", fields.first());
        ensure!(
            fields.get(1).and_then(Value::as_text).map(str::len) == Some(SIZE as usize),
            "message {i} cut"
        );
    }
    ensure!(as_text(&next_message(&mut them).await?.1)? == "end");
    Ok(())
}

#[tokio::test]
async fn a_million_messages_arrive_complete_and_in_order() -> anyhow::Result<()> {
    const N: u64 = 1_000_000;
    // The test is about delivery; with the short tick, a concurrent test's spinning guests
    // (every core busy for six seconds) could time the link out in a debug build.
    let nodes = cluster_ticking("million", 2, Duration::from_secs(15));
    let (a, b) = (&nodes[0], &nodes[1]);
    let sink = load(b, guests::SINK).await?;
    let mut me = a.host_process();
    let target = spawn(b, sink, "sink", vec![a.pid_value(me.pid())])?;
    // B learns A's name from the pid it was given; A learns B's here.
    a.remember_node(target.node, b.name());
    let monitor = me.monitor(target);
    for seq in 0..N {
        me.send(target, 0, seq.to_le_bytes().to_vec()).await?;
    }
    me.send(target, 1, Vec::new()).await?;
    let started = std::time::Instant::now();
    let reply = me.receive(&[], Some(Duration::from_secs(300))).await.context("no answer from the sink")?;
    eprintln!("the sink answered {:?} after the last send", started.elapsed());
    let Incoming::Message(reply) = reply else { anyhow::bail!("unexpected {reply:?} (monitor {monitor})") };
    assert_eq!(cbor::from_bytes(&reply.payload), Some(Value::Array(vec![int(N), Value::Bool(true)])));
    Ok(())
}

#[tokio::test]
async fn nodes_busy_with_spinning_guests_stay_connected() -> anyhow::Result<()> {
    let nodes = cluster("busy", 2);
    let (a, b) = (&nodes[0], &nodes[1]);
    let mut me = a.host_process();
    me.monitor_nodes(true);
    a.connect(b.name()).await?;
    next_node_event(&mut me, DEADLINE).await?;
    for node in [a, b] {
        let spin = load(node, guests::SPIN).await?;
        for _ in 0..4 {
            spawn(node, spin, "spin", vec![])?;
        }
    }
    // Four ticks with every core busy: no nodedown may arrive.
    let quiet = me.receive(&[Selector::Signals], Some(TICK * 4)).await;
    ensure!(quiet.is_none(), "unexpected event while busy: {quiet:?}");
    ensure!(a.nodes() == vec![b.name().to_owned()]);
    Ok(())
}

#[tokio::test]
async fn a_first_connection_resumes_and_a_dial_that_reached_another_node_fails() -> anyhow::Result<()> {
    let nodes = cluster("resume", 1);
    let target = nodes[0].name().to_owned();
    let addr = nodes[0].local_addr().context("address")?;
    let name = "dialer@localhost";
    let identity = ClusterIdentity::from_cookie(b"test-cookie", name)?;
    let transport = Transport::bind(&identity, claim(name), [127, 0, 0, 1].into(), (0, 0), TICK)?;
    let hello = || Hello { version: PROTOCOL_VERSION, name: name.into(), incarnation: 1, hidden: true };
    // Never connected to the target, and yet resumed: the certificate the dialer holds for
    // its peer is its own, from the ticket it gave itself at start (a full handshake would
    // have brought the target's).
    let conn = transport.connect(addr, &target, claim(name)).await?;
    let certs = conn
        .peer_identity()
        .and_then(|id| id.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>().ok())
        .context("no peer certificate")?;
    ensure!(spore_host::transport::tls::cert_names(&certs[0], name).is_ok(), "not resumed");
    let est = peer::dial(&conn, hello(), &target, 1 << 20).await?;
    ensure!(est.peer.name == target);
    conn.close(0u32.into(), b"done");
    // The target's certificate no longer names the node dialled in the TLS handshake: its
    // hello does, and a dial that reached another node fails on it.
    let conn = transport.connect(addr, "elsewhere@localhost", claim(name)).await?;
    let err = peer::dial(&conn, hello(), "elsewhere@localhost", 1 << 20).await.err().context("accepted")?;
    ensure!(err.to_string().contains("but it says it is"), "{err}");
    Ok(())
}

#[tokio::test]
async fn hostile_input_closes_only_that_connection() -> anyhow::Result<()> {
    let nodes = cluster("hostile", 2);
    let (victim, friend) = (&nodes[0], &nodes[1]);
    let addr = victim.local_addr().context("address")?;
    let target = victim.name().to_owned();
    // A garbage datagram.
    let udp = std::net::UdpSocket::bind("127.0.0.1:0")?;
    udp.send_to(b"\x00garbage that is not QUIC\xff", addr)?;

    let identity = ClusterIdentity::from_cookie(b"test-cookie", "rogue@localhost")?;
    let transport =
        Transport::bind(&identity, claim("rogue@localhost"), [127, 0, 0, 1].into(), (0, 0), TICK)?;
    let hello =
        || Hello { version: PROTOCOL_VERSION, name: "rogue@localhost".into(), incarnation: 1, hidden: true };
    let mut buf = bytes::BytesMut::new();
    spore_host::proto::encode(&Frame::Peers { names: vec![] }, &[], &mut buf);
    let frame_before_hello = buf.to_vec();
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        ("frame before the handshake", frame_before_hello, false),
        ("oversized frame", u32::MAX.to_le_bytes().to_vec(), false),
        ("unknown frame type", [&3u32.to_le_bytes()[..], &[250, 1, 2]].concat(), true),
        ("truncated frame", [&100u32.to_le_bytes()[..], &[1, 2, 3]].concat(), true),
    ];
    for (what, bytes, after_hello) in cases {
        let conn = transport.connect(addr, &target, Claim::of(&hello())).await?;
        let mut send = if after_hello {
            let est = peer::dial(&conn, hello(), &target, 1 << 20).await?;
            est.send
        } else {
            // The acceptor opened the stream and sent its hello: answer with something else.
            conn.accept_bi().await?.0
        };
        send.write_all(&bytes).await?;
        send.finish()?;
        let closed = tokio::time::timeout(DEADLINE, conn.closed())
            .await
            .with_context(|| format!("{what}: not closed"))?;
        tracing_check(what, &closed);
    }
    // The victim still serves others.
    friend.connect(&target).await?;
    ensure!(friend.nodes() == vec![target.clone()]);
    Ok(())
}

/// The connection was closed by the victim with an application close (a logged reason).
fn tracing_check(what: &str, closed: &quinn::ConnectionError) {
    assert!(matches!(closed, quinn::ConnectionError::ApplicationClosed(_)), "{what}: closed by {closed:?}");
}

#[tokio::test]
async fn sending_to_a_name_on_another_node_reaches_it() -> anyhow::Result<()> {
    let nodes = cluster("named", 2);
    let (a, b) = (&nodes[0], &nodes[1]);
    let echo = load(b, guests::ECHO).await?;
    let target = b.spawn(SpawnRequest::new(echo, "echo"))?;
    b.register("echo", target)?;
    let mut me = a.host_process();
    me.send_named("echo", Some(b.name()), 0, cbor::to_bytes(&text("via name"))).await?;
    let (from, value) = next_message(&mut me).await?;
    ensure!(from == target && value == text("via name"));
    Ok(())
}

#[tokio::test]
async fn the_cluster_becomes_a_mesh_and_hidden_nodes_stay_out_of_it() -> anyhow::Result<()> {
    let mapper = free_port();
    let a = dist_node("mesha@localhost", "test-cookie", mapper);
    let b = dist_node("meshb@localhost", "test-cookie", mapper);
    let c = dist_node("meshc@localhost", "test-cookie", mapper);
    let mut watcher = a.host_process();
    watcher.monitor_nodes(true);
    a.connect(b.name()).await?;
    c.connect(b.name()).await?;
    // A hears of C from B (or C of A) and connects: A sees two nodeups.
    let mut up = std::collections::BTreeSet::new();
    while up.len() < 2 {
        let (name, is_up, _) = next_node_event(&mut watcher, DEADLINE).await?;
        ensure!(is_up, "unexpected nodedown of {name}");
        up.insert(name);
    }
    ensure!(up == [b.name().to_owned(), c.name().to_owned()].into_iter().collect());

    // A hidden node connects without appearing anywhere.
    let mut hidden = DistConfig::new("test-cookie");
    hidden.mapper_port = Some(mapper);
    hidden.hidden = true;
    let config = spore_host::NodeConfig { dist: Some(hidden), ..spore_tests::test_config("tool@localhost") };
    let tool = spore_host::Node::start(config)?;
    tool.connect(a.name()).await?;
    let reply = tool.query(a.name(), spore_host::proto::Query::Nodes).await?;
    ensure!(
        reply == spore_host::proto::QueryReply::Nodes(vec![b.name().to_owned(), c.name().to_owned()]),
        "{reply:?}"
    );
    ensure!(tool.nodes() == vec![a.name().to_owned()], "the tool sees its own connection");
    let quiet = watcher.receive(&[Selector::Signals], Some(Duration::from_millis(300))).await;
    ensure!(quiet.is_none(), "a hidden node caused {quiet:?}");
    Ok(())
}

#[test]
fn a_distribution_tick_of_zero_or_past_a_day_or_a_mapper_on_port_0_is_refused_at_start() {
    for tick in [Duration::ZERO, Duration::from_secs(86_401)] {
        let mut dist = DistConfig::new("cookie");
        dist.tick = tick;
        dist.mapper_port = None;
        let config = NodeConfig { dist: Some(dist), ..spore_tests::test_config("tick@localhost") };
        let Err(refused) = Node::start(config) else { panic!("a node started with a tick of {tick:?}") };
        let expected =
            format!("bad configuration: a distribution tick of {tick:?} is outside 100ms to 86400s");
        assert_eq!(refused.to_string(), expected);
    }
    // A mapper on port 0 would listen on a port of the system's choosing, where no node looks.
    let mut dist = DistConfig::new("cookie");
    dist.mapper_port = Some(0);
    let config = NodeConfig { dist: Some(dist), ..spore_tests::test_config("lost@localhost") };
    let Err(refused) = Node::start(config) else { panic!("a node started with a port mapper on port 0") };
    assert!(
        refused.to_string().starts_with("bad configuration: the port mapper's port cannot be 0"),
        "{refused}"
    );
}

#[test]
fn a_node_name_peers_would_refuse_is_refused_at_start() {
    // "a b@localhost" used to start, and then every peer refused its hello.
    for bad in ["a b@localhost", "noat", "@localhost", "a@", "a@b@c", "tab\t@localhost"] {
        let Err(refused) = Node::start(spore_tests::test_config(bad)) else { panic!("{bad:?} started") };
        assert!(matches!(refused, spore_host::StartError::BadName(_)), "{bad:?}: {refused}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_sent_just_before_a_node_stops_arrive() -> anyhow::Result<()> {
    // A stopping node closed its connections at once, and what its writers had not yet
    // sent or the peer had not yet acknowledged was lost: 0 to 30 of these 100 arrived.
    for round in 0..3 {
        let mut nodes = cluster(&format!("parting{round}x"), 2);
        let (b, a) = (nodes.pop().context("b")?, nodes.pop().context("a")?);
        let a_name = a.name().to_owned();
        let mut sink = b.host_process();
        b.register("sink", sink.pid())?;
        sink.monitor_nodes(true);
        let me = a.host_process();
        me.connect(b.name()).await?;
        for i in 0..100u64 {
            me.send_named("sink", Some(b.name()), i, vec![0u8; 1000]).await?;
        }
        a.shutdown();
        for i in 0..100u64 {
            let got = sink.receive(&[Selector::Tag(i)], Some(DEADLINE)).await;
            ensure!(matches!(got, Some(Incoming::Message(_))), "round {round}: message {i} of 100 lost");
        }
        // The peer saw the node go down as shut down, not as a stream that ended.
        loop {
            let (name, up, reason) = next_node_event(&mut sink, DEADLINE).await?;
            if name == a_name && !up {
                ensure!(reason == "shutdown", "round {round}: nodedown reason {reason}");
                break;
            }
        }
    }
    Ok(())
}
