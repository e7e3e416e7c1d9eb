//! QUIC between nodes: one quinn endpoint per node that both dials and accepts, mutual TLS
//! from [`tls`], and the byte-moving tasks of a connection in [`peer`]. The only module that
//! knows quinn and rustls.
//!
//! # Layout
//! - [`tls`]: the cookie-derived cluster key, its verifiers and the rustls configurations.
//! - [`peer`]: the handshake driver, the frame reader and the batching writer.
//! - [`kx`]: key exchange with key pairs made ahead of the handshakes.
//! - [`resume`]: session tickets that resume with any node of the cookie.
//! - [`socket`]: the endpoint's UDP socket, read without an empty read per wake-up.

mod kx;
pub mod peer;
mod resume;
pub(crate) mod socket;
pub mod tls;

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{ConnectionError, Endpoint, EndpointConfig, IdleTimeout, TransportConfig, VarInt};

use socket::SocketRuntime;
use tls::{Claim, ClusterIdentity, TlsError};

/// Application close codes: why a connection was closed on purpose.
pub mod close {
    use quinn::VarInt;
    /// The node is shutting down.
    pub const SHUTDOWN: VarInt = VarInt::from_u32(0);
    /// `disconnect_node` was called.
    pub const DISCONNECT: VarInt = VarInt::from_u32(1);
    /// The peer broke the protocol (bad frame, bad hello).
    pub const PROTOCOL: VarInt = VarInt::from_u32(2);
    /// Another connection between the same two nodes won.
    pub const DUPLICATE: VarInt = VarInt::from_u32(3);
    /// The peer was refused (wrong name for its certificate, bad version).
    pub const REFUSED: VarInt = VarInt::from_u32(4);
}

/// Why a connection to a node could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// The node's address could not be found.
    #[error("cannot find node {node}: {reason}")]
    Resolve {
        /// The node.
        node: String,
        /// Why.
        reason: String,
    },
    /// TLS refused the peer or the peer refused us: almost always a different cookie.
    #[error("{node} refused the connection ({reason}): the nodes probably do not share the same cookie")]
    Cookie {
        /// The node.
        node: String,
        /// What TLS said.
        reason: String,
    },
    /// The handshake failed for another reason.
    #[error("handshake with {node} failed: {reason}")]
    Handshake {
        /// The node.
        node: String,
        /// Why.
        reason: String,
    },
    /// The transport failed (timeout, unreachable).
    #[error("cannot connect to {node}: {reason}")]
    Transport {
        /// The node.
        node: String,
        /// Why.
        reason: String,
    },
    /// The peer is connecting to us at the same moment and its connection is kept instead.
    #[error("{node} is connecting to this node at the same time; its connection is kept")]
    Duplicate {
        /// The node.
        node: String,
    },
    /// A node cannot connect to itself.
    #[error("a node cannot connect to itself")]
    ToSelf,
    /// Distribution is not running on this node.
    #[error("this node is not distributed (start it with a name and a cookie)")]
    NotDistributed,
}

/// Why the endpoint could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// No port of the range was free.
    #[error("cannot listen on {ip} in ports {min}-{max}: {reason}")]
    NoPort {
        /// The interface.
        ip: IpAddr,
        /// Range start.
        min: u16,
        /// Range end.
        max: u16,
        /// The last error.
        reason: String,
    },
    /// TLS configuration failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// quinn refused the configuration or socket.
    #[error("cannot open the QUIC endpoint: {0}")]
    Endpoint(String),
}

/// A node's QUIC endpoint.
pub struct Transport {
    endpoint: Endpoint,
    client: quinn::ClientConfig,
    /// Tops the node's session tickets up when dials have used them.
    seeder: Arc<resume::Seeder>,
    /// The raw descriptor of the endpoint's socket, for the busy-wait to watch.
    #[cfg(unix)]
    fd: std::os::fd::RawFd,
}

impl Transport {
    /// Opens the endpoint on the first free port of `ports` on `ip`, with the default send
    /// window, for the node that dials as `claim`. Must run inside the node's runtime.
    pub fn bind(
        identity: &ClusterIdentity,
        claim: Claim,
        ip: IpAddr,
        ports: (u16, u16),
        tick: Duration,
    ) -> Result<Self, BindError> {
        Self::bind_with(identity, claim, ip, ports, tick, DEFAULT_SEND_WINDOW)
    }

    /// [`Transport::bind`] with `send_window` bytes allowed in flight per connection.
    pub fn bind_with(
        identity: &ClusterIdentity,
        claim: Claim,
        ip: IpAddr,
        ports: (u16, u16),
        tick: Duration,
        send_window: u64,
    ) -> Result<Self, BindError> {
        let transport = Arc::new(transport_config(tick, send_window));
        let server_tls = identity.server_config()?;
        let client_tls = Arc::new(identity.client_config()?);
        let seeder = Arc::new(identity.seeder(Arc::clone(&client_tls), &server_tls, claim)?);
        // Without tickets a node's first connections make full handshakes: slower, no less
        // sound, so a failure here is not the node's end.
        if let Err(e) = seeder.seed() {
            tracing::warn!("first connections will not resume: {e}");
        }
        let server_crypto =
            QuicServerConfig::try_from(server_tls).map_err(|e| BindError::Endpoint(e.to_string()))?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(server_crypto));
        server.transport_config(Arc::clone(&transport));
        let client_crypto =
            QuicClientConfig::try_from(client_tls).map_err(|e| BindError::Endpoint(e.to_string()))?;
        let mut client = quinn::ClientConfig::new(Arc::new(client_crypto));
        client.transport_config(transport);
        let socket = bind_in_range(ip, ports)?;
        size_buffers(&socket);
        #[cfg(unix)]
        let fd = std::os::fd::AsRawFd::as_raw_fd(&socket);
        let endpoint =
            Endpoint::new(EndpointConfig::default(), Some(server), socket, Arc::new(SocketRuntime))
                .map_err(|e| BindError::Endpoint(e.to_string()))?;
        Ok(Self {
            endpoint,
            client,
            seeder,
            #[cfg(unix)]
            fd,
        })
    }

    /// The raw descriptor of its UDP socket (valid while the transport lives).
    #[cfg(unix)]
    pub fn socket_fd(&self) -> std::os::fd::RawFd {
        self.fd
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.endpoint.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Dials node `node` at `addr` as the node `claim` names (the claim the transport was
    /// bound with, for its tickets to resume). Returns once the TLS handshake is done on this
    /// side; whether `node` was reached, its hello tells ([`peer::dial`]).
    pub async fn connect(
        &self,
        addr: SocketAddr,
        node: &str,
        claim: Claim,
    ) -> Result<quinn::Connection, ConnectError> {
        // The TLS handshake is on this side in progress until `connecting` resolves.
        let _handshake = kx::Handshake::start();
        let connecting = self
            .endpoint
            .connect_with(self.client.clone(), addr, &claim.server_name())
            .map_err(|e| ConnectError::Transport { node: node.to_owned(), reason: e.to_string() })?;
        let connected = connecting.await.map_err(|e| connect_error(node, &e));
        // The dial took a ticket; a failed one brought none back.
        self.seeder.top_up();
        connected
    }

    /// The next incoming connection attempt.
    pub async fn accept(&self) -> Option<quinn::Incoming> {
        self.endpoint.accept().await
    }

    /// Closes every connection with `code` and waits (bounded) until peers were told.
    pub async fn close(&self, code: VarInt, reason: &[u8]) {
        self.endpoint.close(code, reason);
        let _ = tokio::time::timeout(Duration::from_millis(500), self.endpoint.wait_idle()).await;
    }
}

/// Bytes a connection may have in flight by default: enough for loopback and a LAN. A path
/// whose bandwidth times round-trip time is larger (1 Gbit/s at 10 ms is 1.25 MB) needs a
/// larger window to be filled.
pub const DEFAULT_SEND_WINDOW: u64 = 512 << 10;

/// Liveness from one knob, like Erlang's `net_ticktime`: keep-alives every quarter tick,
/// and a silent peer is down after a tick.
fn transport_config(tick: Duration, send_window: u64) -> TransportConfig {
    let mut t = TransportConfig::default();
    t.keep_alive_interval(Some(tick / 4));
    t.max_idle_timeout(IdleTimeout::try_from(tick).ok());
    // Room for bursts of small messages and for 64 KiB ones without stalling on credit.
    t.stream_receive_window(VarInt::from_u32(8 << 20));
    t.receive_window(VarInt::from_u32(16 << 20));
    // What may be in flight, unacknowledged: the depth of the queue a fast sender builds
    // in front of a slower receiver (in its socket buffer, which holds it all where the
    // kernel lets it grow: see `size_buffers`). A deeper queue bought no throughput (W3 A/B: 0.5, 1, 2 and 16 MiB within noise)
    // but delays everything behind it, keep-alives included. Two test suites at once on two
    // cores (debug build, 1.5 s tick) had the million-message test's receiver time out its
    // peer in 3 runs of 4 with 16 MiB, 1 of 4 with 1 MiB, 0 of 4 with 512 KiB.
    t.send_window(send_window);
    // Ask the peer to acknowledge every fourth packet (quinn's default: every second), or
    // within its ack delay: a request and its answer then carry the acknowledgements, where
    // a remote spawn (W5) used to cost a datagram of its own for one. With the busy-wait on,
    // interleaved: W5 p50 37.5 -> 35.0 µs, W7 +5-20% calls/s, W3 +3-12%, W2 and W3b the same.
    let mut acks = quinn::AckFrequencyConfig::default();
    acks.ack_eliciting_threshold(VarInt::from_u32(3));
    t.ack_frequency_config(Some(acks));
    t
}

/// The UDP socket buffers a node asks for. The kernel caps them at `net.core.rmem_max` and
/// `wmem_max`: 4 MiB on the reference VM, but 208 KiB on a stock kernel, where a burst can
/// still overflow the receiver (raise the sysctls for the drop-free figure).
const SOCKET_BUFFER_BYTES: usize = 4 << 20;

/// Enlarges the socket's buffers. With the default 208 KiB, a burst of small messages
/// overflowed the receiver's buffer (W3: 6,000-8,000 drops per run, each a loss that cut the
/// congestion window); with 4 MiB and the send window above, none, and W3 went from
/// 573-603k to 660-759k msgs/s. A refusal only costs speed, so it is logged; the kernel's
/// silent cap is warned about once per process, with the fix.
fn size_buffers(socket: &UdpSocket) {
    let socket = socket2::SockRef::from(socket);
    if let Err(e) = socket.set_recv_buffer_size(SOCKET_BUFFER_BYTES) {
        tracing::debug!("cannot enlarge the UDP receive buffer: {e}");
    }
    if let Err(e) = socket.set_send_buffer_size(SOCKET_BUFFER_BYTES) {
        tracing::debug!("cannot enlarge the UDP send buffer: {e}");
    }
    if let (Ok(recv), Ok(send)) = (socket.recv_buffer_size(), socket.send_buffer_size()) {
        warn_if_capped(recv, send);
    }
}

/// Warns (once per process) when the kernel granted less than [`SOCKET_BUFFER_BYTES`].
fn warn_if_capped(recv: usize, send: usize) {
    static WARNED: std::sync::Once = std::sync::Once::new();
    if let Some(warning) = capped_buffers(recv, send) {
        WARNED.call_once(|| tracing::warn!("{warning}"));
    }
}

/// What to tell the operator when the kernel capped the buffers, given the sizes read back:
/// it caps a request at `net.core.rmem_max` / `wmem_max` without an error, and Linux reports
/// twice the size it grants, so a granted request reads back at least as large as asked.
fn capped_buffers(recv: usize, send: usize) -> Option<String> {
    let capped: Vec<String> = [("receive", recv), ("send", send)]
        .into_iter()
        .filter(|&(_, granted)| granted < SOCKET_BUFFER_BYTES)
        .map(|(which, granted)| format!("{which} buffer to {} KiB", granted / 2 / 1024))
        .collect();
    (!capped.is_empty()).then(|| {
        format!(
            "the kernel cut this node's UDP {} (asked: {} KiB): bursts of messages may be \
             dropped and slow down. To allow it: sysctl -w net.core.rmem_max={} net.core.wmem_max={}",
            capped.join(" and "),
            SOCKET_BUFFER_BYTES / 1024,
            SOCKET_BUFFER_BYTES,
            SOCKET_BUFFER_BYTES,
        )
    })
}

fn bind_in_range(ip: IpAddr, (min, max): (u16, u16)) -> Result<UdpSocket, BindError> {
    let mut last = String::from("empty range");
    for port in min..=max {
        match UdpSocket::bind(SocketAddr::new(ip, port)) {
            Ok(s) => return Ok(s),
            Err(e) => last = e.to_string(),
        }
        if port == u16::MAX {
            break;
        }
    }
    Err(BindError::NoPort { ip, min, max, reason: last })
}

/// Whether a QUIC error code is a TLS alert (the crypto range 0x100-0x1ff).
fn is_crypto(code: quinn::TransportErrorCode) -> bool {
    (0x100..0x200).contains(&u64::from(code))
}

/// Classifies a failed dial: a TLS failure means a wrong cookie in practice.
pub(crate) fn connect_error(node: &str, e: &ConnectionError) -> ConnectError {
    let node = node.to_owned();
    match e {
        ConnectionError::TransportError(t) if is_crypto(t.code) => {
            ConnectError::Cookie { node, reason: t.reason.clone() }
        }
        ConnectionError::ConnectionClosed(c) if is_crypto(c.error_code) => ConnectError::Cookie {
            node,
            reason: format!("TLS alert: {}", String::from_utf8_lossy(&c.reason)),
        },
        ConnectionError::ApplicationClosed(c) if c.error_code == close::DUPLICATE => {
            ConnectError::Duplicate { node }
        }
        ConnectionError::ApplicationClosed(c) => ConnectError::Handshake {
            node,
            reason: format!("closed by peer: {}", String::from_utf8_lossy(&c.reason)),
        },
        other => ConnectError::Transport { node, reason: other.to_string() },
    }
}

/// Why a live connection ended, as a nodedown reason.
pub(crate) fn down_reason(e: &ConnectionError) -> String {
    match e {
        ConnectionError::ApplicationClosed(c) => match c.error_code {
            close::SHUTDOWN => "shutdown".to_owned(),
            close::DISCONNECT => "disconnect".to_owned(),
            _ => format!("closed by peer: {}", String::from_utf8_lossy(&c.reason)),
        },
        ConnectionError::TimedOut => "connection timed out".to_owned(),
        ConnectionError::LocallyClosed => "closed".to_owned(),
        other => format!("connection lost: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capped_buffer_is_named_with_its_size_and_the_fix() {
        assert_eq!(capped_buffers(2 * SOCKET_BUFFER_BYTES, 2 * SOCKET_BUFFER_BYTES), None);
        let warning = capped_buffers(2 * 212_992, 2 * SOCKET_BUFFER_BYTES).unwrap();
        assert!(warning.contains("UDP receive buffer to 208 KiB"), "{warning}");
        assert!(!warning.contains("send buffer"), "{warning}");
        assert!(warning.contains("sysctl -w net.core.rmem_max=4194304"), "{warning}");
        let both = capped_buffers(1024, 2048).unwrap();
        assert!(both.contains("receive buffer to 0 KiB and send buffer to 1 KiB"), "{both}");
    }
}
