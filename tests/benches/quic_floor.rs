//! The QUIC floor (`FLOOR quic64` and `FLOOR quic64-spin`): 64-byte round trips on one
//! stream of a connection between two of Spore's own transports (its QUIC endpoint and
//! socket, its TLS and transport settings), echoed by the floor's echo process, placed as
//! node B. None of Spore's distribution runs above it: no frames, peers, mailboxes, processes
//! or guests. So W2's round trip can be read against what quinn, TLS and the kernel alone take
//! in the same run, as W4a's is read against wasmtime's.
//!
//! `quic64` waits as the UDP and TCP floors do, asleep in the kernel until the datagram
//! comes. `quic64-spin` keeps both sides polling their sockets meanwhile, as a node's worker
//! spins when idle (`NodeConfig::busy_wait`, on by default, so in W2).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::Context;
use spore_host::proto::{Hello, PROTOCOL_VERSION};
use spore_host::transport::Transport;
use spore_host::transport::tls::{Claim, ClusterIdentity};

/// Both sides' cookie.
const COOKIE: &[u8] = b"spore-bench-quic-floor";
/// The echo side's node name (its certificate names it).
const ECHO: &str = "floor-echo@localhost";
/// The dialer's node name.
const DIALER: &str = "floor@localhost";
/// The variants, one stream each, in this order: the `FLOOR` name and whether both sides
/// spin while they wait.
pub const VARIANTS: [(&str, bool); 2] = [("quic64", false), ("quic64-spin", true)];

/// A transport of Spore's for `node` on an ephemeral loopback port. Call it inside a tokio
/// runtime (its socket registers with the runtime's driver).
fn transport(node: &str) -> anyhow::Result<Transport> {
    let identity = ClusterIdentity::from_cookie(COOKIE, node)?;
    Ok(Transport::bind(
        &identity,
        spore_tests::claim(node),
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        (0, 0),
        Duration::from_secs(15),
    )?)
}

/// Keeps a current-thread runtime polling its sockets, never asleep, until dropped: its task
/// yields over and over, and a runtime with a yielded task polls its I/O driver without
/// blocking.
struct Spin(tokio::task::JoinHandle<()>);

impl Spin {
    fn start() -> Self {
        Self(tokio::spawn(async {
            loop {
                tokio::task::yield_now().await;
            }
        }))
    }
}

impl Drop for Spin {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The echo side, bound before it serves so that its port can be told first.
pub struct Echo(Transport);

impl Echo {
    /// Binds the echo side's transport, its socket registered with `runtime` (the one that
    /// will run [`Echo::serve`]).
    pub fn bind(runtime: &tokio::runtime::Runtime) -> anyhow::Result<Self> {
        let _entered = runtime.enter();
        transport(ECHO).map(Self)
    }

    /// The UDP port it listens on.
    pub fn port(&self) -> u16 {
        self.0.local_addr().port()
    }

    /// Accepts one connection and echoes each of its [`VARIANTS`]' streams, one after the
    /// other, until the dialer closes the connection.
    pub async fn serve(self) -> anyhow::Result<()> {
        let incoming = self.0.accept().await.context("the endpoint closed")?;
        let conn = incoming.await.context("accepting the floor's connection")?;
        for (_, spin) in VARIANTS {
            let (mut send, mut recv) = conn.accept_bi().await.context("accepting a stream")?;
            let _spin = spin.then(Spin::start);
            let mut buf = [0u8; 64];
            while recv.read_exact(&mut buf).await.is_ok() {
                send.write_all(&buf).await.context("echoing")?;
            }
        }
        conn.closed().await;
        Ok(())
    }
}

/// The timed round trips of one variant: µs each, and the seconds they took in all.
pub struct Timed {
    /// The `FLOOR` name.
    pub what: &'static str,
    /// Each timed round trip, µs.
    pub samples: Vec<f64>,
    /// All of them, seconds.
    pub total: f64,
}

/// Connects to the echo side on `port` and makes, on each of [`VARIANTS`]' streams,
/// `warm_up` untimed and `n` timed 64-byte round trips.
pub async fn round_trips(port: u16, n: usize, warm_up: usize) -> anyhow::Result<Vec<Timed>> {
    let transport = transport(DIALER)?;
    let hello = Hello { version: PROTOCOL_VERSION, name: DIALER.to_owned(), incarnation: 1, hidden: true };
    let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
    let conn =
        transport.connect(addr, ECHO, Claim::of(&hello)).await.context("connecting to the echo side")?;
    let mut timed = Vec::with_capacity(VARIANTS.len());
    for (what, spin) in VARIANTS {
        let (mut send, mut recv) = conn.open_bi().await.context("opening a stream")?;
        let _spin = spin.then(Spin::start);
        let mut buf = [7u8; 64];
        let mut samples = Vec::with_capacity(n);
        let mut started = Instant::now();
        for i in 0..warm_up + n {
            if i == warm_up {
                started = Instant::now();
            }
            let t = Instant::now();
            send.write_all(&buf).await.context("sending")?;
            recv.read_exact(&mut buf).await.context("receiving the echo")?;
            if i >= warm_up {
                samples.push(t.elapsed().as_secs_f64() * 1e6);
            }
        }
        let total = started.elapsed().as_secs_f64();
        send.finish().context("finishing a stream")?;
        timed.push(Timed { what, samples, total });
    }
    conn.close(0u32.into(), b"done");
    transport.close(0u32.into(), b"done").await;
    Ok(timed)
}
