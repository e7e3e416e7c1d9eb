//! Busy-waiting before a node's worker threads sleep, as Erlang's schedulers do (`+sbwt`).
//!
//! A worker that runs out of work would block in `epoll_wait`, and the next datagram would
//! have to wake it: on a VM, waking an idle CPU costs tens of microseconds (the sender's
//! `sendmsg` spent 16% of its time in that wake-up in W5). A request-reply exchange pays it
//! at every hop. So a worker with nothing to do first spins for a short while, watching the
//! node's socket, the runtime's epoll instance and its queue, and goes to sleep only when
//! nothing came: on the
//! reference VM a remote round trip (W2) took 22 µs instead of 85 µs.
//!
//! The cost is CPU: up to the limit after each burst of work, a few percent of a core for a
//! node that sees a message every few milliseconds. The spinning thread yields its CPU at
//! every turn, so that other threads that want it (another node's, the compiler's) are not
//! held up. [`NodeConfig::busy_wait`] sets the limit; zero turns it off.
//!
//! [`NodeConfig::busy_wait`]: crate::NodeConfig::busy_wait

use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// Spins before a worker sleeps, until work shows up or the limit passes.
pub(crate) struct BusyWait {
    limit: Duration,
    /// The raw descriptor of the node's UDP socket, -1 until it has one.
    socket: AtomicI32,
    /// The runtime's epoll instance, -1 if unknown: readable when any of the runtime's
    /// descriptors (the port mapper's TCP streams, a cross-thread wake-up) has an event.
    epoll: AtomicI32,
}

impl BusyWait {
    /// Spins at most `limit` per idle spell.
    pub fn new(limit: Duration) -> Self {
        Self { limit, socket: AtomicI32::new(-1), epoll: AtomicI32::new(-1) }
    }

    /// Whether it spins at all.
    pub fn enabled(&self) -> bool {
        !self.limit.is_zero()
    }

    /// Watches `fd` (the node's UDP socket) while spinning.
    #[cfg(unix)]
    pub fn watch(&self, fd: std::os::fd::RawFd) {
        self.socket.store(fd, Ordering::Relaxed);
    }

    /// Watches `fd`, the epoll instance of the runtime whose workers spin, while spinning.
    #[cfg(unix)]
    pub fn watch_epoll(&self, fd: std::os::fd::RawFd) {
        self.epoll.store(fd, Ordering::Relaxed);
    }

    /// Called by a worker about to sleep: returns when a datagram waits on the socket, the
    /// runtime's epoll instance has an event, a task was queued for the runtime from outside,
    /// or the limit has passed. (A timer that falls due meanwhile waits for the limit at most,
    /// as do other descriptors where the epoll instance is unknown.)
    pub fn before_park(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let metrics = runtime.metrics();
        let deadline = Instant::now() + self.limit;
        loop {
            if self.event_waiting() || metrics.global_queue_depth() > 0 || Instant::now() >= deadline {
                return;
            }
            // Other threads on this CPU (another node's workers, the compiler) run first:
            // spinning must never hold them up.
            std::thread::yield_now();
        }
    }

    /// Whether a datagram waits on the watched socket, or the runtime has an event.
    #[cfg(unix)]
    fn event_waiting(&self) -> bool {
        let watched = [self.socket.load(Ordering::Relaxed), self.epoll.load(Ordering::Relaxed)];
        // A negative descriptor is ignored by poll(2).
        let mut polls = watched.map(|fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 });
        // SAFETY: `polls` holds two valid `pollfd`s for the duration of the call, which does
        // not block (timeout 0). A descriptor closed since only reads as ready or not.
        unsafe { libc::poll(polls.as_mut_ptr(), 2, 0) > 0 }
    }

    #[cfg(not(unix))]
    fn event_waiting(&self) -> bool {
        false
    }
}

/// This process's epoll instances (Linux): a runtime built between two calls added its own.
#[cfg(target_os = "linux")]
pub(crate) fn epoll_instances() -> std::collections::HashSet<std::os::fd::RawFd> {
    let Ok(fds) = std::fs::read_dir("/proc/self/fd") else { return Default::default() };
    fds.filter_map(|entry| {
        let entry = entry.ok()?;
        let fd = entry.file_name().to_str()?.parse().ok()?;
        let target = std::fs::read_link(entry.path()).ok()?;
        (target.as_os_str() == "anon_inode:[eventpoll]").then_some(fd)
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spins_no_longer_than_its_limit_without_a_runtime_or_socket() {
        let wait = BusyWait::new(Duration::from_millis(5));
        let start = Instant::now();
        // Outside a runtime it does not spin at all.
        wait.before_park();
        assert!(start.elapsed() < Duration::from_millis(5));
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let start = Instant::now();
        rt.block_on(async { wait.before_park() });
        let spun = start.elapsed();
        assert!(spun >= Duration::from_millis(5), "spun {spun:?}");
    }

    #[cfg(unix)]
    #[test]
    fn stops_spinning_when_a_datagram_waits() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let wait = BusyWait::new(Duration::from_secs(60));
        wait.watch(std::os::fd::AsRawFd::as_raw_fd(&socket));
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sender.send_to(b"x", socket.local_addr().unwrap()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let start = Instant::now();
        rt.block_on(async { wait.before_park() });
        assert!(start.elapsed() < Duration::from_secs(30));
    }
}
