//! A process's mailbox: a bounded queue with selective receive.
//!
//! Ordinary messages count against the bound; signals (exit, down, node events) and group
//! events never do, so a full mailbox cannot hide a death from its owner.

use std::collections::VecDeque;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{Incoming, Selector};

/// A mailbox refused a message because it holds its limit of messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("mailbox full ({limit} messages)")]
pub struct MailboxFull {
    /// The mailbox's limit.
    pub limit: usize,
}

/// A bounded queue of [`Incoming`] entries owned by one process.
///
/// Any task may push; only the owner receives. The owner waits on a [`Notify`] whose stored
/// permit makes a push between "nothing matches" and "wait" impossible to miss.
pub struct Mailbox {
    queue: Mutex<Queue>,
    ready: Notify,
    limit: usize,
}

struct Queue {
    entries: VecDeque<Incoming>,
    /// How many ordinary messages `entries` holds (the bounded part).
    messages: usize,
}

impl Mailbox {
    /// An empty mailbox holding at most `limit` ordinary messages.
    pub fn new(limit: usize) -> Self {
        Self {
            queue: Mutex::new(Queue { entries: VecDeque::new(), messages: 0 }),
            ready: Notify::new(),
            limit,
        }
    }

    /// Appends an entry; ordinary messages are refused when the mailbox is full.
    pub fn push(&self, entry: Incoming) -> Result<(), MailboxFull> {
        {
            let mut q = self.queue.lock();
            if matches!(entry, Incoming::Message(_)) {
                if q.messages >= self.limit {
                    return Err(MailboxFull { limit: self.limit });
                }
                q.messages += 1;
            }
            q.entries.push_back(entry);
        }
        self.ready.notify_one();
        Ok(())
    }

    /// How many entries wait.
    pub fn len(&self) -> usize {
        self.queue.lock().entries.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes and returns the oldest entry matching `selectors`, if any, scanning from
    /// position `from`; on a miss, `from` is advanced past everything scanned.
    fn take_match(&self, selectors: &[Selector], from: &mut usize) -> Option<Incoming> {
        let mut q = self.queue.lock();
        let start = (*from).min(q.entries.len());
        let found =
            q.entries.iter().skip(start).position(|e| Selector::any_matches(selectors, e)).map(|i| i + start);
        match found {
            Some(i) => {
                let entry = q.entries.remove(i)?;
                if matches!(entry, Incoming::Message(_)) {
                    q.messages -= 1;
                }
                Some(entry)
            }
            None => {
                *from = q.entries.len();
                None
            }
        }
    }

    /// Waits for the oldest entry matching `selectors` (anything if empty), at most
    /// `timeout` (forever if none). Entries that do not match stay, in order.
    pub async fn receive(&self, selectors: &[Selector], timeout: Option<Duration>) -> Option<Incoming> {
        // Boxed, and made once per receive: a timer is large, and inline it would enlarge
        // every pending receive, with or without a timeout.
        let mut timer = timeout.map(|t| Box::pin(tokio::time::sleep_until(Instant::now() + t)));
        let mut scanned = 0;
        loop {
            if let Some(entry) = self.take_match(selectors, &mut scanned) {
                return Some(entry);
            }
            match &mut timer {
                None => self.ready.notified().await,
                Some(timer) => tokio::select! {
                    // A push that races the deadline is still taken.
                    biased;
                    () = self.ready.notified() => {}
                    () = timer.as_mut() => return self.take_match(selectors, &mut scanned),
                },
            }
        }
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
        self.take_match(selectors, &mut 0)
    }
}
