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
//! The socket is registered for reading only. Registered for writing too, it raised an
//! event each time a datagram it sent left its send buffer (on loopback, when the peer read
//! it), for nothing: it woke a sleeping worker, or ended a spinning one's spin (which watches
//! the runtime's epoll instance), once per datagram sent. Without it, an echo over QUIC made 2
//! `epoll_wait` per round trip instead of 2.85, and W5 spawned more per second in 9 of 11
//! interleaved pairs (5-26% more in the first six; W2, W3 and W7 within noise). Writing waits
//! for room only after a send found none (rare: the buffer is large), through a registration
//! for writing made then, on a duplicate of the descriptor, and dropped once there is room.
//!
//! Everything else (timers, tasks, sending, GSO and GRO) is quinn's and `quinn-udp`'s.

use std::fmt;
use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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
        Ok(Arc::new(Socket::new(socket)?))
    }

    fn now(&self) -> Instant {
        TokioRuntime.now()
    }
}

/// A nonblocking UDP socket registered with tokio for reading, read and written through
/// `quinn-udp`.
struct Socket {
    io: AsyncFd<std::net::UdpSocket>,
    state: UdpSocketState,
    /// A send found the buffer full: writers wait for room before they send again.
    full: AtomicBool,
}

impl Socket {
    /// Registers `socket` for reading with the current tokio runtime.
    fn new(socket: std::net::UdpSocket) -> io::Result<Self> {
        // Also makes the socket nonblocking, as `AsyncFd` needs.
        let state = UdpSocketState::new((&socket).into())?;
        // SAFETY: the `AsyncFd` owns the socket, whose descriptor stays open and the same
        // until the `AsyncFd` is dropped.
        let io = unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE) }
            .map_err(io::Error::from)?;
        Ok(Self { io, state, full: AtomicBool::new(false) })
    }
}

impl fmt::Debug for Socket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Socket").field("local", &self.io.get_ref().local_addr()).finish_non_exhaustive()
    }
}

impl AsyncUdpSocket for Socket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Box::pin(Writable { socket: self, room: None })
    }

    fn try_send(&self, transmit: &Transmit<'_>) -> io::Result<()> {
        let sent = self.state.send(self.io.get_ref().into(), transmit);
        if matches!(&sent, Err(e) if e.kind() == io::ErrorKind::WouldBlock) {
            self.full.store(true, Ordering::Release);
        }
        sent
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

/// Ready when the socket may take a datagram: at once, unless a send found it full; then
/// once the kernel says there is room.
#[derive(Debug)]
struct Writable {
    socket: Arc<Socket>,
    /// While the socket is full: a duplicate of its descriptor, registered for writing.
    room: Option<AsyncFd<OwnedFd>>,
}

impl UdpPoller for Writable {
    fn poll_writable(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // quinn asks before every send.
        let this = self.get_mut();
        if !this.socket.full.load(Ordering::Acquire) {
            this.room = None;
            return Poll::Ready(Ok(()));
        }
        let room = match &mut this.room {
            Some(room) => room,
            None => {
                let duplicate = this.socket.io.get_ref().as_fd().try_clone_to_owned()?;
                // Registering reports the room there is now, so room made before it is not
                // missed. SAFETY: the `AsyncFd` owns the duplicate, which stays open and the
                // same until the `AsyncFd` is dropped.
                let registered = unsafe { AsyncFd::register_with_interest(duplicate, Interest::WRITABLE) };
                this.room.insert(registered.map_err(io::Error::from)?)
            }
        };
        drop(ready!(room.poll_write_ready(cx))?);
        this.room = None;
        this.socket.full.store(false, Ordering::Release);
        Poll::Ready(Ok(()))
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

    /// A writer ready at once, until a send finds the socket full; then through a registration
    /// for writing made for the wait: ready once there is room (here at once), after which the
    /// socket is no longer full and a send goes out.
    #[tokio::test]
    async fn a_writer_waits_for_room_only_after_a_full_send() {
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let socket = Arc::new(Socket::new(std::net::UdpSocket::bind("127.0.0.1:0").unwrap()).unwrap());
        let mut writer = Arc::clone(&socket).create_io_poller();
        let waker = std::task::Waker::noop();
        let ready = writer.as_mut().poll_writable(&mut Context::from_waker(waker));
        assert!(matches!(ready, Poll::Ready(Ok(()))), "{ready:?}");
        socket.full.store(true, Ordering::Release);
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            std::future::poll_fn(|cx| writer.as_mut().poll_writable(cx)),
        )
        .await
        .expect("room within 10 s")
        .unwrap();
        assert!(!socket.full.load(Ordering::Acquire));
        let to = receiver.local_addr().unwrap();
        let transmit =
            Transmit { destination: to, ecn: None, contents: b"room", segment_size: None, src_ip: None };
        socket.try_send(&transmit).unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(receiver.recv(&mut buf).unwrap(), 4);
    }
}
