//! Frames a misbehaving peer (one that has the cookie) sends: they close its own connection
//! or are ignored, and never end, steal or cancel what belongs to other nodes' processes.

use anyhow::{Context, ensure};
use spore_host::proto::{self, Frame, Hello, PROTOCOL_VERSION, Query};
use spore_host::transport::tls::{Claim, ClusterIdentity};
use spore_host::transport::{Transport, peer};
use spore_host::{DistConfig, ExitReason, Incoming, Node, NodeConfig, NodeId, Pid, SpawnRequest};
use spore_tests::{DEADLINE, TICK, claim, cluster, guests, next_signal};

/// A hand-driven connection to a node, as the hidden node `name`.
struct Rogue {
    conn: quinn::Connection,
    est: peer::Established,
    /// Kept open for the connection's lifetime.
    _transport: Transport,
    name: String,
}

impl Rogue {
    async fn dial(node: &Node, name: &str) -> anyhow::Result<Self> {
        let addr = node.local_addr().context("address")?;
        let identity = ClusterIdentity::from_cookie(b"test-cookie", name)?;
        let transport = Transport::bind(&identity, claim(name), [127, 0, 0, 1].into(), (0, 0), TICK)?;
        let hello = Hello { version: PROTOCOL_VERSION, name: name.into(), incarnation: 1, hidden: true };
        let conn = transport.connect(addr, node.name(), Claim::of(&hello)).await?;
        let est = peer::dial(&conn, hello, node.name(), 1 << 20).await?;
        Ok(Self { conn, est, _transport: transport, name: name.into() })
    }

    /// A pid of this rogue node.
    fn pid(&self, index: u64) -> Pid {
        Pid { node: NodeId::of(&self.name), incarnation: 1, index }
    }

    async fn send(&mut self, frame: &Frame) -> anyhow::Result<()> {
        let mut buf = bytes::BytesMut::new();
        proto::encode(frame, &[], &mut buf);
        self.est.send.write_all(&buf).await?;
        Ok(())
    }

    /// Waits until the node has applied every frame sent so far (it answers in order).
    async fn sync(&mut self) -> anyhow::Result<()> {
        self.send(&Frame::Query { reference: 99, query: Query::Nodes }).await?;
        loop {
            let (frame, _) = tokio::time::timeout(DEADLINE, self.est.reader.next())
                .await
                .context("no answer")??
                .context("the node closed the stream")?;
            if matches!(frame, Frame::QueryReply { reference: 99, .. }) {
                return Ok(());
            }
        }
    }
}

#[tokio::test]
async fn a_peer_cannot_cancel_fake_or_take_over_a_monitor_it_does_not_own() -> anyhow::Result<()> {
    let nodes = cluster("monitors", 1);
    let b = &nodes[0];
    let mut watcher = b.host_process();
    let target = b.host_process();
    let monitor = watcher.monitor(target.pid());
    let mut rogue = Rogue::dial(b, "rogue-m@localhost").await?;
    let fake = rogue.pid(1);
    // Each of these would take the watcher's down notice away.
    rogue.send(&Frame::Demonitor { target: target.pid(), monitor }).await?;
    rogue.send(&Frame::Monitor { watcher: fake, target: target.pid(), monitor }).await?;
    let reason = ExitReason::Error("fake".into());
    rogue.send(&Frame::Down { watcher: watcher.pid(), pid: fake, monitor, reason }).await?;
    rogue.sync().await?;
    ensure!(watcher.pending() == 0, "a fake down notice arrived");
    let target_pid = target.pid();
    drop(target);
    let Incoming::Down { monitor: m, pid, reason } = next_signal(&mut watcher).await? else {
        anyhow::bail!("expected the down notice");
    };
    ensure!(m == monitor && pid == target_pid && reason == ExitReason::Normal, "{m} {pid} {reason}");
    Ok(())
}

#[tokio::test]
async fn exit_reasons_from_a_peer_are_cut_to_4_kib() -> anyhow::Result<()> {
    let nodes = cluster("reasons", 1);
    let b = &nodes[0];
    let mut target = b.host_process();
    let mut rogue = Rogue::dial(b, "rogue-r@localhost").await?;
    let long = "é".repeat(6000);
    let frame = Frame::Exit {
        from: rogue.pid(1),
        to: target.pid(),
        reason: ExitReason::Error(long),
        kill: false,
        link: false,
    };
    rogue.send(&frame).await?;
    let Incoming::Exit { reason: ExitReason::Error(text), .. } = next_signal(&mut target).await? else {
        anyhow::bail!("expected the exit signal");
    };
    ensure!(text.len() <= 4096 && text.len() >= 4094 && text.chars().all(|c| c == 'é'), "{}", text.len());
    Ok(())
}

#[tokio::test]
async fn a_spawn_reply_from_a_node_that_was_not_asked_leaves_the_spawn_alone() -> anyhow::Result<()> {
    // The node asked is a fake that hands over the reference of the request it gets, and
    // answers when told.
    let identity = ClusterIdentity::from_cookie(b"test-cookie", "asked@localhost")?;
    let transport =
        Transport::bind(&identity, claim("asked@localhost"), [127, 0, 0, 1].into(), (0, 0), TICK)?;
    let asked_addr = transport.local_addr();
    let (reference_tx, reference_rx) = tokio::sync::oneshot::channel();
    let (answer_tx, answer_rx) = tokio::sync::oneshot::channel::<()>();
    let asked = tokio::spawn(async move {
        let incoming = transport.accept().await.context("no connection")?;
        let arriving = peer::Arriving::new(incoming).await?;
        let hello = Hello {
            version: PROTOCOL_VERSION,
            name: "asked@localhost".into(),
            incarnation: 3,
            hidden: false,
        };
        let (_conn, mut est) = arriving.accept(hello, 1 << 20).await.map_err(anyhow::Error::msg)?;
        let reference = loop {
            let (frame, _) = est.reader.next().await?.context("closed")?;
            if let Frame::SpawnRequest(header) = frame {
                break header.reference;
            }
        };
        let _ = reference_tx.send(reference);
        answer_rx.await?;
        let child = Pid { node: NodeId::of("asked@localhost"), incarnation: 3, index: 42 };
        let mut buf = bytes::BytesMut::new();
        proto::encode(&Frame::SpawnReply { reference, result: Ok(child) }, &[], &mut buf);
        est.send.write_all(&buf).await?;
        std::future::pending::<()>().await;
        Ok::<_, anyhow::Error>(())
    });
    let mut dist = DistConfig::new("test-cookie");
    dist.mapper_port = None;
    dist.addresses.insert("asked@localhost".into(), asked_addr);
    let a = Node::start(NodeConfig { dist: Some(dist), ..spore_tests::test_config("replies@localhost") })?;
    let me = a.host_process();
    let request = SpawnRequest::from_bytes(std::fs::read(guests::ECHO)?, "echo");
    let spawn = tokio::spawn(async move { me.spawn_on("asked@localhost", request).await });
    let reference = tokio::time::timeout(DEADLINE, reference_rx).await??;
    // Another node answers it: its connection is closed, the spawn stays pending.
    let mut rogue = Rogue::dial(&a, "rogue-s@localhost").await?;
    let stray = Frame::SpawnReply { reference, result: Err(spore_host::SpawnError::Timeout) };
    rogue.send(&stray).await?;
    tokio::time::timeout(DEADLINE, rogue.conn.closed()).await.context("the rogue stayed connected")?;
    answer_tx.send(()).map_err(|_| anyhow::anyhow!("the asked node stopped"))?;
    let child = tokio::time::timeout(DEADLINE, spawn).await???;
    ensure!(child.index == 42, "{child:?}");
    asked.abort();
    Ok(())
}
