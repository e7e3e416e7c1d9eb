//! The tasks of one connection: the handshake, the reader that decodes frames, and the
//! writer that batches queued frames into few large writes.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use quinn::{Connecting, Connection, ConnectionError, Incoming, RecvStream, SendStream, VarInt};
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, oneshot};

use super::tls::Claim;
use super::{ConnectError, close};
use crate::proto::{self, DecodeError, Frame, Handshake, Hello, Role};

/// How long a peer has to complete the handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes gathered into one write: batching small frames is worth 5-7x in messages per
/// second (TECH-NOTES, Transport).
const WRITE_BATCH_BYTES: usize = 64 << 10;
/// Payloads of at least this many bytes are handed to the stream without a copy; smaller
/// ones are cheaper to copy into the batch than to track as chunks of their own.
const SHARED_PAYLOAD_BYTES: usize = 4 << 10;

/// Why an acceptor refuses a second connection between the same nodes.
pub const DUPLICATE: &str = "duplicate connection";

/// A frame waiting for the writer, with its payload (empty for most frames).
#[derive(Debug)]
pub struct Outgoing {
    /// The header.
    pub frame: Frame,
    /// The bytes that follow it.
    pub payload: Bytes,
    /// Send credit it holds, returned once it is written (0 for signals, which never wait).
    pub credit: u32,
}

/// Why reading from a peer stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The peer sent something that is not a frame.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The stream ended in the middle of a frame.
    #[error("stream ended inside a frame")]
    Truncated,
    /// The stream or connection failed.
    #[error("stream: {0}")]
    Stream(String),
}

/// Decodes frames from the receiving half of a stream.
pub struct FrameReader {
    recv: RecvStream,
    frames: proto::FrameSplitter,
}

impl FrameReader {
    /// Reads frames of at most `max_frame` bytes from `recv`.
    pub fn new(recv: RecvStream, max_frame: usize) -> Self {
        Self { recv, frames: proto::FrameSplitter::new(max_frame) }
    }

    /// The next frame; `None` at the end of the stream.
    pub async fn next(&mut self) -> Result<Option<(Frame, Bytes)>, ReadError> {
        loop {
            if let Some(frame) = self.frames.next_frame()? {
                return Ok(Some(frame));
            }
            match self.recv.read_chunk(usize::MAX, true).await {
                Ok(Some(chunk)) => self.frames.push(chunk.bytes),
                Ok(None) if self.frames.is_empty() => return Ok(None),
                Ok(None) => return Err(ReadError::Truncated),
                Err(e) => return Err(ReadError::Stream(e.to_string())),
            }
        }
    }
}

/// A request to finish a connection's stream once what is queued is written, answered when
/// the peer has acknowledged all of it (see [`run_writer`]).
pub type Drain = oneshot::Sender<()>;

/// Writes queued frames, gathering whatever is queued into one write, until the queue
/// closes, the stream fails or a [`Drain`] comes on `drain`; returns each written frame's
/// credit to `credit`. On a drain, once nothing is left queued, it finishes the stream and
/// answers when the peer has acknowledged every byte: a stopping node closes its
/// connections only then, or what it sent last would be lost with them.
pub async fn run_writer(
    mut send: SendStream,
    mut queue: mpsc::UnboundedReceiver<Outgoing>,
    credit: Arc<Semaphore>,
    mut drain: oneshot::Receiver<Drain>,
) {
    let mut batch = Batch::new();
    loop {
        let first = tokio::select! {
            biased;
            next = queue.recv() => match next {
                Some(next) => next,
                None => break,
            },
            asked = &mut drain => {
                // No drain will come (its sender went with the link, which is down): as a
                // closed queue.
                let Ok(done) = asked else { break };
                let _ = send.finish();
                let _ = send.stopped().await;
                let _ = done.send(());
                return;
            }
        };
        let mut held = first.credit as usize;
        batch.push(first);
        while batch.bytes < WRITE_BATCH_BYTES {
            match queue.try_recv() {
                Ok(next) => {
                    held += next.credit as usize;
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        let written = batch.write(&mut send).await;
        credit.add_permits(held);
        if let Err(e) = written {
            tracing::debug!("writer stopped: {e}");
            return;
        }
    }
    let _ = send.finish();
}

/// Frames gathered for one write: small ones encoded into one buffer, large payloads kept
/// as they are, each after its header. Copying a 64 KiB payload into the buffer was 12% of
/// a sender's time in W3b (memmove, with the packet copy and the kernel's).
struct Batch {
    /// Headers, and small frames whole.
    buf: BytesMut,
    /// What is ready to write, in order, when large payloads were gathered.
    chunks: Vec<Bytes>,
    /// Bytes gathered.
    bytes: usize,
}

impl Batch {
    fn new() -> Self {
        Self { buf: BytesMut::with_capacity(WRITE_BATCH_BYTES), chunks: Vec::new(), bytes: 0 }
    }

    /// Adds a frame.
    fn push(&mut self, out: Outgoing) {
        let before = self.buf.len();
        if out.payload.len() >= SHARED_PAYLOAD_BYTES {
            proto::encode_head(&out.frame, out.payload.len(), &mut self.buf);
            self.bytes += self.buf.len() - before + out.payload.len();
            self.chunks.push(self.buf.split().freeze());
            self.chunks.push(out.payload);
        } else {
            proto::encode(&out.frame, &out.payload, &mut self.buf);
            self.bytes += self.buf.len() - before;
        }
    }

    /// Writes what was gathered and empties the batch.
    async fn write(&mut self, send: &mut SendStream) -> Result<(), quinn::WriteError> {
        self.bytes = 0;
        if self.chunks.is_empty() {
            return send.write_chunk(self.buf.split().freeze()).await;
        }
        if !self.buf.is_empty() {
            self.chunks.push(self.buf.split().freeze());
        }
        let written = send.write_all_chunks(&mut self.chunks).await;
        self.chunks.clear();
        written
    }
}

/// Encodes one frame on its own (handshake frames, before the writer runs).
async fn write_frame(send: &mut SendStream, frame: &Frame) -> Result<(), String> {
    let mut buf = BytesMut::new();
    proto::encode(frame, &[], &mut buf);
    send.write_all(&buf).await.map_err(|e| e.to_string())
}

/// A connection whose handshake completed: the peer's hello and the stream halves.
pub struct Established {
    /// The peer's hello.
    pub peer: Hello,
    /// Frames to the peer.
    pub send: SendStream,
    /// Frames from the peer.
    pub reader: FrameReader,
}

/// Runs the dialer's side of the handshake on a fresh connection to `node`: reads the
/// acceptor's hello (it came with the TLS handshake), checks that it is `node`, and answers.
pub async fn dial(
    conn: &Connection,
    ours: Hello,
    node: &str,
    max_frame: usize,
) -> Result<Established, ConnectError> {
    let fail = |reason: String| ConnectError::Handshake { node: node.to_owned(), reason };
    let run = async {
        let (mut send, recv) = conn.accept_bi().await.map_err(|e| super::connect_error(node, &e))?;
        let mut reader = FrameReader::new(recv, max_frame);
        let mut hs = Handshake::new(Role::Dialer, ours);
        let (frame, _) = match reader.next().await {
            Ok(Some(f)) => f,
            Ok(None) => return Err(fail("the peer closed the stream".into())),
            Err(ReadError::Stream(_)) => {
                let reason = conn.closed().await;
                return Err(super::connect_error(node, &reason));
            }
            Err(e) => return Err(fail(e.to_string())),
        };
        let expected = node.to_owned();
        hs.handle_frame(frame, |h| {
            if h.name == expected {
                Ok(())
            } else {
                Err(format!("dialed {expected}, but it says it is {}", h.name))
            }
        })
        .map_err(|e| fail(e.to_string()))?;
        while let Some(frame) = hs.poll_transmit() {
            write_frame(&mut send, &frame).await.map_err(fail)?;
        }
        let peer = hs.peer().cloned().ok_or_else(|| fail("handshake incomplete".into()))?;
        Ok(Established { peer, send, reader })
    };
    let result = match tokio::time::timeout(HANDSHAKE_TIMEOUT, run).await {
        Ok(r) => r,
        Err(_) => Err(fail("timed out".into())),
    };
    if let Err(ConnectError::Handshake { reason, .. }) = &result {
        conn.close(close::REFUSED, reason.as_bytes());
    }
    result
}

/// An incoming connection whose TLS ClientHello has arrived: the acceptor decides on its
/// [`Claim`] whether to take it, before the handshake's cryptography.
pub struct Arriving {
    connecting: Connecting,
    /// Who the dialer says it is; `None` if its ClientHello carried no claim (a node of an
    /// older protocol, or not a node).
    pub claim: Option<Claim>,
    /// Counts the handshake as in progress until the connection is taken or refused.
    _handshake: super::kx::Handshake,
}

impl Arriving {
    /// Waits for the ClientHello of `incoming`.
    pub async fn new(incoming: Incoming) -> Result<Self, ConnectionError> {
        let handshake = super::kx::Handshake::start();
        let mut connecting = incoming.accept()?;
        let data = connecting.handshake_data().await?;
        let claim = data
            .downcast::<quinn::crypto::rustls::HandshakeData>()
            .ok()
            .and_then(|d| d.server_name)
            .as_deref()
            .and_then(Claim::parse);
        Ok(Self { connecting, claim, _handshake: handshake })
    }

    /// Takes the connection: our hello leaves with our half of the TLS handshake (0.5-RTT);
    /// once the handshake is done, the dialer's hello must match its claim and its
    /// certificate. Closes the connection on failure (refuses one without a claim).
    pub async fn accept(self, ours: Hello, max_frame: usize) -> Result<(Connection, Established), String> {
        let Some(claim) = self.claim else {
            self.refuse(close::REFUSED, NO_CLAIM).await;
            return Err(NO_CLAIM.into());
        };
        let (conn, handshake_done) = match self.connecting.into_0rtt() {
            Ok(accepted) => accepted,
            Err(connecting) => {
                // quinn converts every incoming connection; should that change, refuse.
                Self { connecting, claim: None, _handshake: self._handshake }
                    .refuse(close::REFUSED, "no 0.5-RTT")
                    .await;
                return Err("quinn refused 0.5-RTT".into());
            }
        };
        let run = async {
            let (mut send, recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
            let mut hs = Handshake::new(Role::Acceptor, ours);
            while let Some(frame) = hs.poll_transmit() {
                write_frame(&mut send, &frame).await?;
            }
            // Resolves once the TLS handshake is done or failed. (Its value says whether the
            // dialer's 0-RTT data was accepted: there is none.)
            handshake_done.await;
            if let Some(reason) = conn.close_reason() {
                return Err(format!("TLS handshake failed ({reason}); a node with a different cookie?"));
            }
            let mut reader = FrameReader::new(recv, max_frame);
            let (frame, _) = reader.next().await.map_err(|e| e.to_string())?.ok_or("no hello")?;
            let certs = conn
                .peer_identity()
                .and_then(|id| id.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>().ok())
                .ok_or("the peer presented no certificate")?;
            let cert = certs.first().ok_or("the peer presented no certificate")?.clone();
            hs.handle_frame(frame, |h| {
                super::tls::cert_names(&cert, &h.name)?;
                if Claim::of(h) == claim {
                    Ok(())
                } else {
                    Err(format!(
                        "{} (incarnation {}) is not who its ClientHello claimed",
                        h.name, h.incarnation
                    ))
                }
            })
            .map_err(|e| e.to_string())?;
            let peer = hs.peer().cloned().ok_or("handshake incomplete")?;
            Ok::<_, String>(Established { peer, send, reader })
        };
        let result = match tokio::time::timeout(HANDSHAKE_TIMEOUT, run).await {
            Ok(r) => r,
            Err(_) => Err("handshake timed out".to_owned()),
        };
        match result {
            Ok(est) => Ok((conn, est)),
            Err(reason) => {
                conn.close(close::REFUSED, reason.as_bytes());
                Err(reason)
            }
        }
    }

    /// Refuses the connection with `code` and `reason`, told once the TLS handshake is done:
    /// a close sent during the handshake reaches the dialer without its code.
    pub async fn refuse(self, code: VarInt, reason: &str) {
        if let Ok(Ok(conn)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, self.connecting).await {
            conn.close(code, reason.as_bytes());
        }
    }
}

/// Why a connection without a [`Claim`] is refused.
pub const NO_CLAIM: &str = "its ClientHello does not say which node it is (a node of an older Spore?)";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NodeId, Pid};

    #[test]
    fn a_batch_keeps_frame_order_and_hands_large_payloads_over_uncopied() {
        let pid = |index| Pid { node: NodeId::of("a@h"), incarnation: 1, index };
        let big = Bytes::from(vec![7u8; 64 << 10]);
        let frames = [
            (Frame::Send { from: pid(1), to: pid(2), tag: 0 }, Bytes::from_static(b"small")),
            (Frame::Send { from: pid(1), to: pid(2), tag: 1 }, big.clone()),
            (Frame::Link { from: pid(1), to: pid(3) }, Bytes::new()),
            (Frame::Send { from: pid(1), to: pid(2), tag: 2 }, Bytes::from(vec![9u8; SHARED_PAYLOAD_BYTES])),
            (Frame::Send { from: pid(1), to: pid(2), tag: 3 }, Bytes::from_static(b"tail")),
        ];
        let mut batch = Batch::new();
        let mut expected = BytesMut::new();
        for (frame, payload) in &frames {
            proto::encode(frame, payload, &mut expected);
            batch.push(Outgoing { frame: frame.clone(), payload: payload.clone(), credit: 0 });
        }
        let mut wire = BytesMut::new();
        for chunk in batch.chunks.iter().chain([&batch.buf.clone().freeze()]) {
            wire.extend_from_slice(chunk);
        }
        assert_eq!(wire, expected);
        assert_eq!(batch.bytes, expected.len());
        assert!(batch.chunks.iter().any(|c| c.as_ptr() == big.as_ptr() && c.len() == big.len()));
    }
}
