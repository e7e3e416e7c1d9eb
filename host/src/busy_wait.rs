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
//! A connection handshake is a chain of short waits: the port mapper's answer, then each
//! flight of the TLS handshake, each side idle while the other computes its keys and
//! signatures for a few hundred microseconds, longer than the spin. So while a handshake is
//! in progress, for [`HANDSHAKE_SPIN`] after it started at most, a task keeps one worker of
//! the node busy, and the handshake's messages find it awake (see
//! [`BusyWait::handshake_started`]).
//!
//! [`NodeConfig::busy_wait`]: crate::NodeConfig::busy_wait

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long after the start of a connection handshake (dialled or accepted) a task keeps
/// one of the node's workers busy at most, while the handshake is in progress: a first
/// connect on the reference VM takes 1.5-3 ms, of which a few hundred microseconds at a
/// time each side waits for the other.
pub(crate) const HANDSHAKE_SPIN: Duration = Duration::from_millis(4);

/// The longest spin: a timer that falls due while a worker spins waits for the spin's end,
/// so [`NodeConfig::busy_wait`](crate::NodeConfig::busy_wait) is cut to this (and a
/// `Duration::MAX` given there does not overflow the spin's deadline).
pub(crate) const MAX_BUSY_WAIT: Duration = Duration::from_millis(10);

/// Spins before a worker sleeps, until work shows up or the limit passes.
pub(crate) struct BusyWait {
    limit: Duration,
    /// The raw descriptor of the node's UDP socket, -1 until it has one.
    socket: AtomicI32,
    /// The runtime's epoll instance, -1 if unknown: readable when any of the runtime's
    /// descriptors (the port mapper's TCP streams, a cross-thread wake-up) has an event.
    epoll: AtomicI32,
    /// When `extended_until` counts from.
    origin: Instant,
    /// Until when (nanoseconds after `origin`) a worker is kept busy: the end of the latest
    /// handshake's [`HANDSHAKE_SPIN`].
    extended_until: AtomicU64,
    /// Whether the task that keeps a worker busy runs.
    spinning: AtomicBool,
    /// Handshakes in progress: the task stops when none is left.
    handshakes: AtomicUsize,
}

/// A handshake in progress (see [`BusyWait::handshake_started`]); dropped when it ends.
pub(crate) struct Handshake(Arc<BusyWait>);

impl Drop for Handshake {
    fn drop(&mut self) {
        self.0.handshakes.fetch_sub(1, Ordering::AcqRel);
    }
}

impl BusyWait {
    /// Spins at most `limit` per idle spell (at most [`MAX_BUSY_WAIT`]).
    pub fn new(limit: Duration) -> Self {
        Self {
            limit: limit.min(MAX_BUSY_WAIT),
            socket: AtomicI32::new(-1),
            epoll: AtomicI32::new(-1),
            origin: Instant::now(),
            extended_until: AtomicU64::new(0),
            spinning: AtomicBool::new(false),
            handshakes: AtomicUsize::new(0),
        }
    }

    /// A connection handshake has started: until it ends (the guard is dropped), for
    /// [`HANDSHAKE_SPIN`] from now at most, a task of the current runtime keeps one of its
    /// workers busy, unless spinning is off.
    ///
    /// A task, not a longer spin before parking: a parked-to-be worker polls neither timers
    /// nor the I/O driver, and QUIC's timers (acknowledgements, pacing) fell due meanwhile:
    /// W6 connects took 5.9 ms instead of 2.4 with a 4 ms spin there. The task yields to
    /// the runtime, which polls its drivers between tasks, and to the other threads of its
    /// CPU (another node's, on a shared core) at every turn.
    pub fn handshake_started(self: &Arc<Self>) -> Handshake {
        self.handshakes.fetch_add(1, Ordering::AcqRel);
        let guard = Handshake(Arc::clone(self));
        if !self.enabled() {
            return guard;
        }
        let until = self.now() + u64::try_from(HANDSHAKE_SPIN.as_nanos()).unwrap_or(u64::MAX);
        self.extended_until.fetch_max(until, Ordering::AcqRel);
        if !self.spinning.swap(true, Ordering::AcqRel) {
            tokio::spawn(Arc::clone(self).spin_through_handshakes());
        }
        guard
    }

    /// Whether a handshake is in progress and the latest one's spin has not passed.
    fn keep_spinning(&self) -> bool {
        self.handshakes.load(Ordering::Acquire) > 0
            && self.now() < self.extended_until.load(Ordering::Acquire)
    }

    /// Nanoseconds since `origin`.
    fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Keeps a worker busy while handshakes are in progress, until the latest one's spin has
    /// passed.
    async fn spin_through_handshakes(self: Arc<Self>) {
        loop {
            while self.keep_spinning() {
                std::thread::yield_now();
                tokio::task::yield_now().await;
            }
            self.spinning.store(false, Ordering::Release);
            // A handshake that started between the last check and the store found the flag
            // set and spawned no task: this one goes on for it.
            if !self.keep_spinning() || self.spinning.swap(true, Ordering::AcqRel) {
                return;
            }
        }
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
    fn a_limit_past_the_longest_spin_is_cut_to_it() {
        assert_eq!(BusyWait::new(Duration::MAX).limit, MAX_BUSY_WAIT);
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let start = Instant::now();
        rt.block_on(async { BusyWait::new(Duration::MAX).before_park() });
        assert!(start.elapsed() < Duration::from_secs(5), "spun {:?}", start.elapsed());
    }

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

    /// Waits (at most 10 s) until `wait`'s spinning task has ended.
    async fn wait_for_the_end(wait: &BusyWait) {
        let start = Instant::now();
        while wait.spinning.load(Ordering::Acquire) {
            assert!(start.elapsed() < Duration::from_secs(10), "still spinning");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    #[test]
    fn a_handshake_keeps_a_worker_busy_for_a_while_unless_spinning_is_off() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let wait = Arc::new(BusyWait::new(Duration::from_micros(1)));
        rt.block_on(async {
            // Ends with the handshake's time...
            let first = wait.handshake_started();
            assert!(wait.spinning.load(Ordering::Acquire));
            // (a second handshake extends the spin of the running task)
            let second = wait.handshake_started();
            wait_for_the_end(&wait).await;
            drop((first, second));
            // ...or with the last handshake in progress.
            let third = wait.handshake_started();
            assert!(wait.spinning.load(Ordering::Acquire));
            drop(third);
            wait_for_the_end(&wait).await;
        });
        let off = Arc::new(BusyWait::new(Duration::ZERO));
        let _handshake = rt.block_on(async { off.handshake_started() });
        assert!(!off.spinning.load(Ordering::Acquire));
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
