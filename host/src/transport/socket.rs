//! The endpoint's UDP socket for quinn on tokio, reading without the empty read that ends
//! each wake-up.
//!
//! quinn's endpoint reads its socket until a read comes back empty, and quinn's own tokio
//! socket learns that the socket is drained only from that read (`EAGAIN`): one more
//! `recvmmsg` per wake-up, so per datagram on a request-reply exchange, where each wake-up
//! brings one. Here a batch that comes back short of what was asked for already says the
//! socket was drained (the kernel stops a batch at the first datagram that is not there), so
//! the socket's readiness is cleared then and the next read waits for the next datagram's
//! event. Clearing is race-free: tokio clears only if no event arrived since the readiness
//! was read, and a datagram that lands after the read raises a new edge-triggered event.
//!
//! Everything else (timers, tasks, sending, GSO and GRO) is quinn's and `quinn-udp`'s.

use std::fmt;
use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use quinn::udp::{RecvMeta, Transmit, UdpSocketState};
use quinn::{AsyncTimer, AsyncUdpSocket, Runtime, TokioRuntime, UdpPoller};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// quinn's tokio runtime with [`Socket`] as the endpoint's socket.
#[derive(Debug)]
pub(crate) struct SocketRuntime;

impl Runtime for SocketRuntime {
    fn new_timer(&self, t: Instant) -> Pin<Box<dyn AsyncTimer>> {
        TokioRuntime.new_timer(t)
    }

    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) {
        TokioRuntime.spawn(future);
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        // Also makes the socket nonblocking, as `AsyncFd` needs.
        let state = UdpSocketState::new((&socket).into())?;
        // SAFETY: the `AsyncFd` owns the socket, whose descriptor stays open and the same
        // until the `AsyncFd` is dropped.
        let io = unsafe { AsyncFd::register(socket) }.map_err(io::Error::from)?;
        Ok(Arc::new(Socket { io, state }))
    }

    fn now(&self) -> Instant {
        TokioRuntime.now()
    }
}

/// A nonblocking UDP socket registered with tokio, read and written through `quinn-udp`.
struct Socket {
    io: AsyncFd<std::net::UdpSocket>,
    state: UdpSocketState,
}

impl fmt::Debug for Socket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Socket").field("local", &self.io.get_ref().local_addr()).finish_non_exhaustive()
    }
}

impl AsyncUdpSocket for Socket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Box::pin(Writable(self))
    }

    fn try_send(&self, transmit: &Transmit<'_>) -> io::Result<()> {
        // A send that would block clears the write readiness, so the poller waits for room.
        self.io.try_io(Interest::WRITABLE, |socket| self.state.send(socket.into(), transmit))
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let asked = bufs.len().min(meta.len()).min(quinn::udp::BATCH_SIZE);
        loop {
            let mut guard = ready!(self.io.poll_read_ready(cx))?;
            match guard.try_io(|socket| self.state.recv(socket.get_ref().into(), bufs, meta)) {
                Ok(Ok(read)) => {
                    if read < asked {
                        guard.clear_ready_matching(tokio::io::Ready::READABLE);
                    }
                    return Poll::Ready(Ok(read));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                // Would block: readiness cleared by `try_io`; wait for the next event.
                Err(_) => {}
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    fn may_fragment(&self) -> bool {
        self.state.may_fragment()
    }

    fn max_transmit_segments(&self) -> usize {
        self.state.max_gso_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.state.gro_segments()
    }
}

/// Ready when the socket may take a datagram.
#[derive(Debug)]
struct Writable(Arc<Socket>);

impl UdpPoller for Writable {
    fn poll_writable(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The guard is dropped without clearing: a send that finds no room clears it.
        self.0.io.poll_write_ready(cx).map_ok(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every datagram arrives, across short batches (which clear the readiness: the next
    /// datagram must set it again) and full ones (which must not clear it: the rest of the
    /// queue raises no new event).
    #[tokio::test]
    async fn every_datagram_is_read_across_short_and_full_batches() {
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = receiver.local_addr().unwrap();
        let socket = SocketRuntime.wrap_udp_socket(receiver).unwrap();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut storage = vec![[0u8; 64]; quinn::udp::BATCH_SIZE];
        let bursts = [1, 3, quinn::udp::BATCH_SIZE + 8, 1, quinn::udp::BATCH_SIZE, 2];
        let mut next = 0u16;
        for burst in bursts {
            let first = next;
            for _ in 0..burst {
                sender.send_to(&next.to_le_bytes(), to).unwrap();
                next += 1;
            }
            let mut read = Vec::new();
            while read.len() < burst {
                let mut bufs: Vec<IoSliceMut<'_>> = storage.iter_mut().map(|b| IoSliceMut::new(b)).collect();
                let mut meta = vec![RecvMeta::default(); bufs.len()];
                let n = tokio::time::timeout(
                    std::time::Duration::from_secs(10),
                    std::future::poll_fn(|cx| socket.poll_recv(cx, &mut bufs, &mut meta)),
                )
                .await
                .expect("the burst's next datagram within 10 s")
                .unwrap();
                for (m, b) in meta.iter().zip(&bufs).take(n) {
                    read.push(u16::from_le_bytes([b[0], b[1]]));
                    assert_eq!(m.len, 2);
                }
            }
            assert_eq!(read, (first..next).collect::<Vec<_>>());
        }
    }
}
