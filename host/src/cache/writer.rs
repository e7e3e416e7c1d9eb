//! Writes the disk cache's files off the load path: a module's first spawn does not wait
//! for its artifact to be serialized and written (W5b: 0.7 ms of a 12.5 ms ship, compile and
//! first spawn). The writes run on a thread of their own at idle priority, so that on a busy
//! CPU they give way to processes; a node that stops waits for them (see [`DiskWriter::flush`]).

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Condvar};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Writes queued at most: past it a write runs on the caller's thread, so that a CPU too
/// busy for the idle-priority writer cannot grow the queue without end. A queued write
/// holds only handles to its module's bytes and compiled code, which the loaded module
/// keeps anyway, so the queue may be long: it must outlast a burst of new modules on a
/// busy CPU, or their writes land on the load path. With 32, W5b's 200 new modules on one
/// CPU filled it, and every module after that paid its write on the spawn: p50 6.7, 7.3
/// and 9.7 ms in three rounds against 5.9, 5.9 and 9.2 with room for the burst (5.7, 5.7
/// and 7.8 with no disk cache at all).
const MAX_QUEUED: usize = 1024;

type Job = Box<dyn FnOnce() + Send>;

/// The queue of one cache's pending writes and the thread that runs them, started at the
/// first write.
pub(crate) struct DiskWriter {
    queue: Mutex<Option<Sender<Job>>>,
    /// Writes queued and not yet done, with the condition [`Self::flush`] waits on.
    pending: Arc<(std::sync::Mutex<usize>, Condvar)>,
}

impl DiskWriter {
    pub fn new() -> Self {
        Self { queue: Mutex::new(None), pending: Arc::new((std::sync::Mutex::new(0), Condvar::new())) }
    }

    /// Runs `job` on the writer thread, or here when the queue is full or the thread cannot
    /// be started.
    pub fn submit(&self, job: impl FnOnce() + Send + 'static) {
        if let Err(job) = self.enqueue(Box::new(job)) {
            job();
        }
    }

    /// Queues `job`; gives it back when it cannot be queued.
    fn enqueue(&self, job: Job) -> Result<(), Job> {
        let mut pending = self.pending.0.lock().unwrap_or_else(|e| e.into_inner());
        if *pending >= MAX_QUEUED {
            return Err(job);
        }
        let mut queue = self.queue.lock();
        if queue.is_none() {
            *queue = self.start();
        }
        let Some(tx) = queue.as_ref() else { return Err(job) };
        // Counted before it is sent: the writer may finish it before `send` returns.
        *pending += 1;
        tx.send(job).map_err(|back| {
            *pending -= 1;
            back.0
        })
    }

    /// Waits at most `timeout` for the queued writes; false if some were still pending.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (count, done) = &*self.pending;
        let mut pending = count.lock().unwrap_or_else(|e| e.into_inner());
        while *pending > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            pending = done.wait_timeout(pending, left).unwrap_or_else(|e| e.into_inner()).0;
        }
        true
    }

    /// Starts the writer thread; `None` if the system refuses a thread.
    fn start(&self) -> Option<Sender<Job>> {
        let (tx, rx) = channel();
        let pending = Arc::clone(&self.pending);
        std::thread::Builder::new().name("spore-cache-writer".into()).spawn(move || run(rx, pending)).ok()?;
        Some(tx)
    }
}

/// The writer thread: runs jobs until its cache is dropped.
fn run(jobs: Receiver<Job>, pending: Arc<(std::sync::Mutex<usize>, Condvar)>) {
    crate::sched::lower_priority();
    for job in jobs {
        job();
        let (count, done) = &*pending;
        let mut n = count.lock().unwrap_or_else(|e| e.into_inner());
        *n -= 1;
        if *n == 0 {
            done.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flush_waits_for_queued_writes() {
        let writer = DiskWriter::new();
        let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for _ in 0..5 {
            let done = Arc::clone(&done);
            writer.submit(move || {
                std::thread::sleep(Duration::from_millis(2));
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            });
        }
        assert!(writer.flush(Duration::from_secs(10)));
        assert_eq!(done.load(std::sync::atomic::Ordering::SeqCst), 5);
    }

    #[test]
    fn a_full_queue_writes_on_the_callers_thread() {
        let writer = DiskWriter::new();
        let (release, blocked) = std::sync::mpsc::channel::<()>();
        writer.submit(move || {
            let _ = blocked.recv();
        });
        let me = std::thread::current().id();
        let here = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for _ in 0..MAX_QUEUED {
            let here = Arc::clone(&here);
            writer.submit(move || {
                if std::thread::current().id() == me {
                    here.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            });
        }
        // The first job holds the writer and the next ones fill the queue to its limit:
        // the last ran here.
        assert_eq!(here.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(!writer.flush(Duration::from_millis(1)));
        release.send(()).unwrap();
        assert!(writer.flush(Duration::from_secs(10)));
    }
}
