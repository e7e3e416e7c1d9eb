//! A process's mailbox: a bounded queue with selective receive.
//!
//! Ordinary messages count against the bound, in number and in payload bytes; signals
//! (exit, down, node events) and group events never do, so a full mailbox cannot hide a
//! death from its owner.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use parking_lot::{Mutex, MutexGuard};
use tokio::time::{Instant, Sleep};

use super::{Incoming, Selector};

/// When a receive given `timeout` from now gives up: never if none, or if it is too far to
/// be reached (`Duration::MAX`, or `u64::MAX` ms, common ways to say "forever": adding them
/// to an `Instant` would panic).
pub(crate) fn deadline_after(timeout: Option<std::time::Duration>) -> Option<Instant> {
    timeout.and_then(|t| Instant::now().checked_add(t))
}

/// A mailbox refused a message: it holds its limit of messages, or the message would take
/// its payloads past their limit of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MailboxFull {
    /// The limit of messages.
    #[error("mailbox full ({0} messages)")]
    Messages(usize),
    /// The limit of payload bytes.
    #[error("mailbox full ({0} bytes)")]
    Bytes(usize),
}

/// A bounded queue of [`Incoming`] entries owned by one process.
///
/// Any task may push; only the owner receives. A waiting owner leaves its waker in the
/// queue, under the same lock as the entries, and the push that finds it takes it and wakes
/// the owner: a push between "nothing matches" and "wait" cannot be missed, and a message
/// costs one lock on each side (tokio's `Notify`, used before, took its own lock besides at
/// every poll and every push: 7.6% of a local ping-pong's CPU, W1).
pub struct Mailbox {
    queue: Mutex<Queue>,
    limit: usize,
    byte_limit: usize,
}

/// A receive's deadline (none: it waits forever), with its timer, made on its first wait:
/// a timer is large, so it is boxed, and only receives that wait with a deadline make one.
struct Deadline {
    at: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
}

impl Deadline {
    /// A deadline at `at` (never if none).
    fn new(at: Option<Instant>) -> Self {
        Self { at, timer: None }
    }

    /// Ready once the deadline has passed; never for none.
    fn poll_passed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(at) = self.at else { return Poll::Pending };
        self.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at))).as_mut().poll(cx)
    }
}

/// The entries of a mailbox, and its owner's waker while it waits.
pub(crate) struct Queue {
    entries: VecDeque<Incoming>,
    /// How many ordinary messages `entries` holds (the bounded part).
    messages: usize,
    /// Their payload bytes.
    bytes: usize,
    /// The owner's waker while it waits; the next push takes it.
    waiter: Option<Waker>,
    /// The owner has ended: pushes are dropped ([`Mailbox::close`]).
    closed: bool,
}

impl Queue {
    /// Removes the entry at `i`, taking a message off the bounded counts.
    fn remove(&mut self, i: usize) -> Option<Incoming> {
        // The oldest, most often: a pop needs none of a removal's shifting.
        let entry = if i == 0 { self.entries.pop_front() } else { self.entries.remove(i) }?;
        if let Incoming::Message(m) = &entry {
            self.messages -= 1;
            self.bytes -= m.payload.len();
        }
        Some(entry)
    }

    /// Removes and returns the oldest entry matching `selectors`, if any, scanning from
    /// position `from`; on a miss, `from` is advanced past everything scanned.
    pub(crate) fn take_match(&mut self, selectors: &[Selector], from: &mut usize) -> Option<Incoming> {
        let start = (*from).min(self.entries.len());
        let found = self
            .entries
            .iter()
            .skip(start)
            .position(|e| Selector::any_matches(selectors, e))
            .map(|i| i + start);
        match found {
            Some(i) => self.remove(i),
            None => {
                *from = self.entries.len();
                None
            }
        }
    }

    /// Leaves the owner's waker for the next push (keeping the one there if it wakes the
    /// same task).
    fn wait_with(&mut self, waker: &Waker) {
        match &self.waiter {
            Some(w) if w.will_wake(waker) => {}
            _ => self.waiter = Some(waker.clone()),
        }
    }
}

/// [`Mailbox::wait_for`]'s future.
struct WaitFor<'m, F> {
    mailbox: &'m Mailbox,
    deadline: Deadline,
    take: F,
    /// Whether this wait may have left its waker in the queue.
    waiting: bool,
}

impl<T, F: FnMut(&mut Queue) -> Option<T> + Unpin> Future for WaitFor<'_, F> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let this = self.get_mut();
        {
            let mut q = this.mailbox.queue.lock();
            if let Some(taken) = (this.take)(&mut q) {
                if this.waiting {
                    q.waiter = None;
                    this.waiting = false;
                }
                return Poll::Ready(Some(taken));
            }
            q.wait_with(cx.waker());
            this.waiting = true;
        }
        // Polled outside the lock: the first poll makes the timer. A push that races the
        // deadline is still taken below.
        if this.deadline.poll_passed(cx).is_ready() {
            let mut q = this.mailbox.queue.lock();
            q.waiter = None;
            this.waiting = false;
            return Poll::Ready((this.take)(&mut q));
        }
        Poll::Pending
    }
}

impl<F> Drop for WaitFor<'_, F> {
    /// A wait given up (its process killed, a host process's receive cancelled) takes its
    /// waker back, so that no push wakes a task that no longer waits here.
    fn drop(&mut self) {
        if self.waiting {
            self.mailbox.queue.lock().waiter = None;
        }
    }
}

impl Mailbox {
    /// An empty mailbox holding at most `limit` ordinary messages of at most `byte_limit`
    /// payload bytes in all.
    pub fn new(limit: usize, byte_limit: usize) -> Self {
        Self {
            queue: Mutex::new(Queue {
                entries: VecDeque::new(),
                messages: 0,
                bytes: 0,
                waiter: None,
                closed: false,
            }),
            limit,
            byte_limit,
        }
    }

    /// Its limits: ordinary messages, and their payload bytes.
    pub fn limits(&self) -> (usize, usize) {
        (self.limit, self.byte_limit)
    }

    /// Appends an entry; ordinary messages are refused when the mailbox is full.
    pub fn push(&self, entry: Incoming) -> Result<(), MailboxFull> {
        let waiter = {
            let mut q = self.queue.lock();
            if q.closed {
                return Ok(());
            }
            if let Incoming::Message(m) = &entry {
                let bytes = q.bytes.saturating_add(m.payload.len());
                if q.messages >= self.limit {
                    return Err(MailboxFull::Messages(self.limit));
                }
                if bytes > self.byte_limit {
                    return Err(MailboxFull::Bytes(self.byte_limit));
                }
                q.messages += 1;
                q.bytes = bytes;
            }
            q.entries.push_back(entry);
            q.waiter.take()
        };
        // Woken outside the lock, which the owner takes first thing.
        if let Some(waiter) = waiter {
            waiter.wake();
        }
        Ok(())
    }

    /// Ends the mailbox with its owner: what waits is dropped, and so is every later push
    /// (from a sender that kept the owner's entry, see `ProcState::send_local`), as
    /// messages to a dead process are.
    pub fn close(&self) {
        let (entries, waiter) = {
            let mut q = self.queue.lock();
            q.closed = true;
            (q.messages, q.bytes) = (0, 0);
            (std::mem::take(&mut q.entries), q.waiter.take())
        };
        drop((entries, waiter));
    }

    /// How many entries wait.
    pub fn len(&self) -> usize {
        self.queue.lock().entries.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entries, locked: for a caller that takes several in one go.
    pub(crate) fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock()
    }

    /// Waits until `take` takes something, trying it on the locked entries at the first poll
    /// and at each wake-up, or until `deadline` (forever if none), when it tries once more.
    /// What a waiting process holds is small on purpose: every page of stack a waiting
    /// process has touched stays resident (W4b), so `take` should be out of line.
    pub(crate) fn wait_for<T>(
        &self,
        deadline: Option<Instant>,
        take: impl FnMut(&mut Queue) -> Option<T> + Unpin,
    ) -> impl Future<Output = Option<T>> {
        WaitFor { mailbox: self, deadline: Deadline::new(deadline), take, waiting: false }
    }

    /// Waits for the oldest entry matching `selectors` (anything if empty), until `deadline`
    /// (forever if none). Entries that do not match stay, in order. A deadline, not a
    /// timeout: a caller that receives again after an entry it does not want keeps its time.
    pub async fn receive(&self, selectors: &[Selector], deadline: Option<Instant>) -> Option<Incoming> {
        let mut scanned = 0;
        self.wait_for(deadline, |q| q.take_match(selectors, &mut scanned)).await
    }

    /// Waits until `deadline` (forever if none) for the oldest entry, then appends it to
    /// `out` with those after it that wait already: at most `max` entries in all (at least
    /// one), and after the first no more payload bytes than `byte_budget`. Leaves `out` as
    /// it was on timeout.
    pub async fn receive_many(
        &self,
        max: usize,
        byte_budget: usize,
        deadline: Option<Instant>,
        out: &mut Vec<Incoming>,
    ) {
        let take = |q: &mut Queue| {
            let first = q.take_match(&[], &mut 0)?;
            out.push(first);
            let mut budget = byte_budget;
            for _ in 1..max {
                let size = match q.entries.front() {
                    None => break,
                    Some(Incoming::Message(m)) => m.payload.len(),
                    Some(_) => 0,
                };
                if size > budget {
                    break;
                }
                budget -= size;
                out.extend(q.remove(0));
            }
            Some(())
        };
        self.wait_for(deadline, take).await;
    }

    /// Removes the down notice of monitor `monitor`, if it waits here.
    pub fn remove_down(&self, monitor: u64) {
        self.queue
            .lock()
            .entries
            .retain(|e| !matches!(e, Incoming::Down { monitor: m, .. } if *m == monitor));
    }

    /// Takes a matching entry without waiting.
    pub fn try_receive(&self, selectors: &[Selector]) -> Option<Incoming> {
        self.queue.lock().take_match(selectors, &mut 0)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;
    use crate::process::{ExitReason, Message, NodeId, Pid};

    fn message(bytes: usize) -> Incoming {
        let sender = Pid { node: NodeId(1), incarnation: 1, index: 1 };
        Incoming::Message(Message { sender, tag: 0, payload: Bytes::from(vec![0; bytes]) })
    }

    #[test]
    fn a_closed_mailbox_drops_what_waits_and_every_later_push() {
        let mailbox = Mailbox::new(2, 1000);
        mailbox.push(message(10)).unwrap();
        mailbox.push(message(10)).unwrap();
        mailbox.close();
        assert_eq!(mailbox.len(), 0);
        // Not full, and nothing kept: a push is dropped as one to a dead process is.
        for _ in 0..3 {
            mailbox.push(message(10)).unwrap();
        }
        assert!(mailbox.is_empty());
    }

    #[test]
    fn payload_bytes_are_bounded_and_freed_by_receiving() {
        let mailbox = Mailbox::new(100, 1000);
        mailbox.push(message(600)).unwrap();
        mailbox.push(message(400)).unwrap();
        assert_eq!(mailbox.push(message(1)), Err(MailboxFull::Bytes(1000)));
        // Signals never count.
        let from = Pid { node: NodeId(1), incarnation: 1, index: 2 };
        mailbox.push(Incoming::Exit { from, reason: ExitReason::Normal }).unwrap();
        assert!(mailbox.try_receive(&[Selector::Any]).is_some());
        mailbox.push(message(600)).unwrap();
        assert!(mailbox.push(message(1)).is_err());
        assert_eq!(mailbox.len(), 3);
    }

    #[tokio::test]
    async fn many_are_taken_in_order_within_the_count_and_the_byte_budget() {
        let mailbox = Mailbox::new(100, usize::MAX);
        for size in [700, 100, 200, 300, 1, 1] {
            mailbox.push(message(size)).unwrap();
        }
        let sizes = |out: &[Incoming]| -> Vec<usize> {
            out.iter()
                .map(|e| match e {
                    Incoming::Message(m) => m.payload.len(),
                    _ => usize::MAX,
                })
                .collect()
        };
        let mut out = Vec::new();
        // The first is taken whatever its size; then 100 + 200 fit a budget of 300, 300 not.
        mailbox.receive_many(10, 300, None, &mut out).await;
        assert_eq!(sizes(&out), [700, 100, 200]);
        out.clear();
        mailbox.receive_many(2, 1000, None, &mut out).await;
        assert_eq!(sizes(&out), [300, 1]);
        out.clear();
        mailbox.receive_many(0, 0, None, &mut out).await;
        assert_eq!(sizes(&out), [1]);
        assert!(mailbox.is_empty());
        // The bound counts what was taken out.
        for _ in 0..100 {
            mailbox.push(message(0)).unwrap();
        }
        out.clear();
        mailbox.receive_many(100, 0, Some(Instant::now()), &mut out).await;
        assert_eq!(out.len(), 100);
        mailbox.push(message(0)).unwrap();
        out.clear();
        mailbox.receive_many(5, 0, Some(Instant::now() + Duration::from_millis(1)), &mut out).await;
        assert_eq!(out.len(), 1);
        out.clear();
        mailbox.receive_many(5, 0, Some(Instant::now() + Duration::from_millis(1)), &mut out).await;
        assert!(out.is_empty(), "a timeout takes nothing");
    }

    /// Two tasks on two workers bounce one message between their mailboxes: each push
    /// races its receiver's passage from a miss to its wait, and none may be missed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_push_is_missed_by_a_receiver_about_to_wait() {
        const ROUNDS: usize = 20_000;
        let a = std::sync::Arc::new(Mailbox::new(10, usize::MAX));
        let b = std::sync::Arc::new(Mailbox::new(10, usize::MAX));
        let (a2, b2) = (a.clone(), b.clone());
        let echo = tokio::spawn(async move {
            for _ in 0..ROUNDS {
                let m = b2.receive(&[], None).await.unwrap();
                a2.push(m).unwrap();
            }
        });
        let rounds = async {
            for _ in 0..ROUNDS {
                b.push(message(1)).unwrap();
                a.receive(&[], None).await.unwrap();
            }
        };
        tokio::time::timeout(Duration::from_secs(20), rounds).await.expect("a push was missed");
        echo.await.unwrap();
    }

    /// A wait given up takes its waker back; a wait that times out takes what came meanwhile.
    #[tokio::test]
    async fn a_wait_given_up_leaves_no_waker_behind() {
        let mailbox = Mailbox::new(10, usize::MAX);
        let soon = Instant::now() + Duration::from_millis(20);
        {
            let wait = std::pin::pin!(mailbox.receive(&[Selector::Tag(7)], Some(soon)));
            assert!(futures_poll_once(wait).await.is_none());
            assert!(mailbox.queue().waiter.is_some(), "a pending wait leaves its waker");
        }
        assert!(mailbox.queue().waiter.is_none(), "a dropped wait takes it back");
        assert!(mailbox.receive(&[Selector::Tag(7)], Some(soon)).await.is_none(), "times out");
        assert!(mailbox.queue().waiter.is_none());
    }

    /// Polls `fut` once: its output if ready.
    async fn futures_poll_once<F: Future>(mut fut: Pin<&mut F>) -> Option<F::Output> {
        std::future::poll_fn(|cx| {
            Poll::Ready(match fut.as_mut().poll(cx) {
                Poll::Ready(v) => Some(v),
                Poll::Pending => None,
            })
        })
        .await
    }

    #[test]
    fn the_number_of_messages_is_bounded() {
        let mailbox = Mailbox::new(2, usize::MAX);
        mailbox.push(message(0)).unwrap();
        mailbox.push(message(0)).unwrap();
        assert_eq!(mailbox.push(message(0)), Err(MailboxFull::Messages(2)));
    }
}
