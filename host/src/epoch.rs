//! Preemption by epoch: a ticker thread advances the engine's epoch every tick so that a
//! running guest yields to others (each store yields once its deadline of one tick passes).
//!
//! The ticker runs only while guests do. Every poll of a guest's future marks the node
//! [`GuestActivity`]; after [`QUIET_TICKS`] ticks without a poll the ticker parks, and the
//! next poll wakes it. A node whose processes are all waiting for messages (or that has
//! none) therefore costs no wake-ups at all, where a free-running 1 ms ticker costs a
//! thousand a second per node.
//!
//! Parking cannot starve a running guest: the ticker never parks while a guest's poll is in
//! progress (each poll is counted in and out, [`polls`]), so a guest that
//! runs sees the epoch advance past its deadline and yields at its next epoch check, and the
//! poll that resumes it wakes the ticker again. Marking at the poll's start is not enough:
//! wasmtime sets a guest's next deadline (the epoch then, plus one) when the guest resumes
//! inside the poll, which can be ticks later if the OS deschedules its thread in between; a
//! ticker parked meanwhile would never reach that deadline, and the guest would run on
//! unpreempted.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::thread::{JoinHandle, Thread};
use std::time::Duration;

use wasmtime::Engine;

mod polls;

use polls::Polling;

/// Ticks without any guest poll after which the ticker parks.
const QUIET_TICKS: u32 = 2;

/// Whether guests ran recently; shared by a node's guest futures and its ticker.
#[derive(Debug)]
pub(crate) struct GuestActivity {
    /// Set by every guest poll, cleared by the ticker once per tick.
    active: AtomicBool,
    /// The ticker is parked (or about to park) and must be woken by the next poll.
    parked: AtomicBool,
    /// The ticker thread, to unpark it.
    ticker: std::sync::OnceLock<Thread>,
}

impl GuestActivity {
    fn new() -> Self {
        Self {
            active: AtomicBool::new(false),
            parked: AtomicBool::new(false),
            ticker: std::sync::OnceLock::new(),
        }
    }

    /// Records that a guest is about to run. On the hot path this is one load of a flag that
    /// is already set (a plain load on x86, whatever its ordering).
    #[inline]
    pub fn mark(&self) {
        if !self.active.load(Ordering::SeqCst) {
            self.wake();
        }
    }

    #[cold]
    fn wake(&self) {
        // Pairs with the ticker's store of `parked` and load of `active` (both SeqCst): either
        // the ticker sees this poll and stays awake, or this sees it parked and unparks it.
        self.active.store(true, Ordering::SeqCst);
        if self.parked.load(Ordering::SeqCst)
            && let Some(t) = self.ticker.get()
        {
            t.unpark();
        }
    }

    /// Wraps `future`, a future that runs guest code, so that each of its polls marks
    /// activity and is counted while in progress. The wrapper holds the future inline: an
    /// `async fn` taking it by value would keep it twice in its state (the argument and the
    /// pinned copy), which cost every process 1.7 KB of heap.
    pub fn track<F: Future>(self: &Arc<Self>, future: F) -> Tracked<F> {
        Tracked { activity: Arc::clone(self), future }
    }
}

pin_project_lite::pin_project! {
    /// A guest future that marks [`GuestActivity`] whenever it is polled.
    pub(crate) struct Tracked<F> {
        activity: Arc<GuestActivity>,
        #[pin]
        future: F,
    }
}

impl<F: Future> Future for Tracked<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _polling = Polling::enter();
        this.activity.mark();
        this.future.poll(cx)
    }
}

/// Makes `store`'s guest yield each time its deadline of one tick passes, and resume only
/// after its worker has polled the runtime's I/O and timer driver (`tokio::task::yield_now`
/// defers the wake-up until then).
///
/// wasmtime's own async yield wakes the task at once, which queues it behind the others
/// without the driver being polled: with guests that spin, timers and sockets were served
/// only every `event_interval` task polls, so that interval had to be small (8), and a
/// worker busy passing messages paid an `epoll_wait` every 8 polls (W1: 5% of its time). A
/// deferred yield polls the driver once all the others have had their turn, and puts what
/// it wakes ahead of the spinners. A 1 ms sleep on a two-worker node took (p50) 6.5 ms beside
/// two spinning guests with the old pair (8, undeferred) and 2.2 ms with this one and
/// tokio's default interval (61); beside eight, 5.3 and 4.3 ms. On one CPU beside eight it
/// takes longer, 7.6 ms against 5.3: the driver waits for a round of eight 1 ms slices.
///
/// The first deadline is one tick away: a new store's is the epoch 0, long past, and every
/// process yielded at its first instruction, which a deferred yield makes cost a driver
/// poll per spawn.
pub(crate) fn yield_at_deadlines<T: 'static>(store: &mut wasmtime::Store<T>) {
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|_| {
        Ok(wasmtime::UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now())))
    });
}

/// Advances the engine's epoch every tick while guests run.
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
    activity: Arc<GuestActivity>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    /// Starts the ticker thread of `engine`.
    pub fn start(engine: Engine, tick: Duration) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        polls::init();
        let activity = Arc::new(GuestActivity::new());
        let (flag, shared) = (Arc::clone(&stop), Arc::clone(&activity));
        let thread = std::thread::Builder::new()
            .name("spore-epoch".into())
            .spawn(move || tick_while_active(&engine, tick, &shared, &flag))?;
        // Set before any guest can run: the node hands out `activity` only after this.
        let _ = activity.ticker.set(thread.thread().clone());
        Ok(Self { stop, activity, thread: Some(thread) })
    }

    /// The activity flag the node's guest futures mark.
    pub fn activity(&self) -> Arc<GuestActivity> {
        Arc::clone(&self.activity)
    }
}

fn tick_while_active(engine: &Engine, tick: Duration, activity: &GuestActivity, stop: &AtomicBool) {
    let mut quiet = 0;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(tick);
        // Ticking goes on while a guest's poll is in progress and for a few ticks after the
        // last one: guests that wait briefly would otherwise have every poll wake the ticker.
        engine.increment_epoch();
        if activity.active.swap(false, Ordering::SeqCst) | polls::any() {
            quiet = 0;
            continue;
        }
        quiet += 1;
        if quiet < QUIET_TICKS {
            continue;
        }
        activity.parked.store(true, Ordering::SeqCst);
        // After the barrier, a poll counted in is seen here, or it sees `parked` and wakes
        // this thread (see `polls`).
        if polls::barrier()
            && !activity.active.load(Ordering::SeqCst)
            && !polls::any()
            && !stop.load(Ordering::SeqCst)
        {
            std::thread::park();
        }
        activity.parked.store(false, Ordering::SeqCst);
        quiet = 0;
    }
}

impl Drop for EpochTicker {
    /// Stops and joins the thread, which holds an engine clone (TECH-NOTES pitfall 7).
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waits (bounded) until `cond` holds.
    fn eventually(cond: impl Fn() -> bool) -> bool {
        let until = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < until {
            if cond() {
                return true;
            }
            std::thread::yield_now();
        }
        false
    }

    /// A ticker of `tick` on an engine of its own, and its activity flag.
    fn ticker(tick: Duration) -> (EpochTicker, Arc<GuestActivity>) {
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        let ticker = EpochTicker::start(Engine::new(&config).unwrap(), tick).unwrap();
        let activity = ticker.activity();
        (ticker, activity)
    }

    #[test]
    fn the_ticker_parks_when_idle_and_wakes_on_activity() {
        let (ticker, activity) = ticker(Duration::from_millis(20));
        assert!(eventually(|| activity.parked.load(Ordering::SeqCst)), "an idle ticker parks");
        activity.mark();
        assert!(eventually(|| !activity.parked.load(Ordering::SeqCst)), "a poll wakes the ticker");
        assert!(eventually(|| activity.parked.load(Ordering::SeqCst)), "and it parks again");
        drop(ticker);
    }

    #[test]
    fn the_ticker_does_not_park_while_a_poll_is_in_progress() {
        let (ticker, activity) = ticker(Duration::from_millis(1));
        // A poll whose thread stalls for 50 ticks (as if the OS had descheduled it before
        // the guest set its deadline): the ticker must keep ticking all along.
        let stalled = activity.track(std::future::poll_fn(|_| {
            let until = std::time::Instant::now() + Duration::from_millis(50);
            while std::time::Instant::now() < until && !activity.parked.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
            Poll::Ready(activity.parked.load(Ordering::SeqCst))
        }));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let parked = std::pin::pin!(stalled).poll(&mut cx);
        assert_eq!(parked, Poll::Ready(false), "the ticker parked during a poll");
        assert!(eventually(|| activity.parked.load(Ordering::SeqCst)), "it parks once the poll ends");
        drop(ticker);
    }
}
