//! Guest polls in progress, counted per thread, and read by tickers about to park.
//!
//! Every guest poll is counted in and out; a ticker parks only when it sees no count. A count
//! shared between threads needs a locked read-modify-write at each end of every poll (two of
//! the few dozen locked instructions of a local round trip, 1.5% of W1's time). Here each
//! thread counts its own polls with plain stores, and a ticker that is about to park first
//! makes every thread of the process execute a memory barrier (`membarrier(2)`, one system
//! call, only when a ticker parks): after it, a poll counted in before is visible to the
//! ticker, and one counted in after reads the ticker's earlier stores (the cleared activity
//! flag, the parked flag) and wakes it. Where `membarrier` is not available (another OS, an
//! old kernel, a seccomp filter), each count is a sequentially consistent read-modify-write
//! instead, and the ticker's barrier an ordinary fence.

use std::sync::atomic::{AtomicUsize, Ordering, compiler_fence, fence};
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// One thread's guest polls in progress, alone on its cache line: written by its thread
/// only, read by tickers.
#[derive(Debug, Default)]
#[repr(align(128))]
struct ThreadPolls(AtomicUsize);

/// The counts of every thread that has polled a guest.
static THREADS: Mutex<Vec<Weak<ThreadPolls>>> = Mutex::new(Vec::new());

/// Whether tickers make the process-wide barrier, so that counts may be plain stores; set
/// once, by the first ticker, before any guest of its node runs.
static ASYMMETRIC: OnceLock<bool> = OnceLock::new();

thread_local! {
    /// This thread's count, registered in [`THREADS`] at its first poll.
    static POLLS: Arc<ThreadPolls> = {
        let polls = Arc::new(ThreadPolls::default());
        THREADS.lock().unwrap_or_else(|e| e.into_inner()).push(Arc::downgrade(&polls));
        polls
    };
}

/// Chooses how polls are counted: with the process-wide barrier if the kernel grants it.
/// Called by every ticker at its start; the first one decides.
pub(super) fn init() {
    ASYMMETRIC.get_or_init(register_barrier);
}

/// A guest poll in progress on this thread: counted from its start to its end (even an
/// unwinding one).
pub(super) struct Polling {
    /// Whether the count went in (it cannot on a thread that is exiting, which runs no
    /// guests then).
    counted: bool,
}

impl Polling {
    /// Counts a poll in. Ordered before the caller's next load (the activity flag) as the
    /// module doc says: by the tickers' barrier, or by this count's own SeqCst.
    pub fn enter() -> Self {
        let asymmetric = ASYMMETRIC.get().copied().unwrap_or(false);
        let counted = POLLS.try_with(|p| {
            if asymmetric {
                let n = p.0.load(Ordering::Relaxed);
                p.0.store(n + 1, Ordering::Relaxed);
                // The hardware may still delay the store past the next load; the tickers'
                // barrier covers that. The compiler must not.
                compiler_fence(Ordering::SeqCst);
            } else {
                p.0.fetch_add(1, Ordering::SeqCst);
            }
        });
        Self { counted: counted.is_ok() }
    }
}

impl Drop for Polling {
    fn drop(&mut self) {
        if !self.counted {
            return;
        }
        let _ = POLLS.try_with(|p| {
            if ASYMMETRIC.get().copied().unwrap_or(false) {
                let n = p.0.load(Ordering::Relaxed);
                p.0.store(n - 1, Ordering::Release);
            } else {
                p.0.fetch_sub(1, Ordering::Release);
            }
        });
    }
}

/// Whether a guest's poll is in progress on any thread. Exact only after [`barrier`]; a
/// ticker counting quiet ticks may miss one, which its check before parking then sees.
pub(super) fn any() -> bool {
    let mut threads = THREADS.lock().unwrap_or_else(|e| e.into_inner());
    threads.retain(|t| t.strong_count() > 0);
    threads.iter().filter_map(Weak::upgrade).any(|t| t.0.load(Ordering::SeqCst) != 0)
}

/// Makes every thread of the process execute a full memory barrier (see the module doc);
/// false if it could not, and then [`any`] cannot be trusted.
#[must_use]
pub(super) fn barrier() -> bool {
    fence(Ordering::SeqCst);
    !ASYMMETRIC.get().copied().unwrap_or(false) || membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)
}

/// `membarrier(2)` commands (linux/membarrier.h).
const MEMBARRIER_CMD_PRIVATE_EXPEDITED: i32 = 1 << 3;
const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: i32 = 1 << 4;

/// Registers the process for private expedited barriers; false where they are unavailable.
fn register_barrier() -> bool {
    // Registered, a barrier could still fail; test one now, and count with read-modify-writes
    // if it does. (One failing later keeps the ticker from parking, see `barrier`.)
    membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) && membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)
}

/// Issues a `membarrier` command; true on success.
#[cfg(target_os = "linux")]
fn membarrier(cmd: i32) -> bool {
    // SAFETY: membarrier takes three integer arguments and touches no memory of ours.
    unsafe { libc::syscall(libc::SYS_membarrier, cmd, 0, 0) == 0 }
}

/// No process-wide barrier elsewhere: counts are read-modify-writes.
#[cfg(not(target_os = "linux"))]
fn membarrier(_cmd: i32) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    #[test]
    fn a_poll_in_progress_on_another_thread_is_seen_after_the_barrier() {
        init();
        let (entered, poll_entered) = mpsc::channel();
        let (end, poll_ends) = mpsc::channel::<()>();
        let poller = std::thread::spawn(move || {
            let polling = Polling::enter();
            entered.send(()).unwrap();
            let _ = poll_ends.recv();
            drop(polling);
        });
        poll_entered.recv().unwrap();
        assert!(barrier(), "the barrier failed");
        assert!(any(), "a poll in progress was not seen");
        drop(end);
        poller.join().unwrap();
    }
}
