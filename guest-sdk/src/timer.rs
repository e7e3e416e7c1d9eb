//! Sleeping, delayed messages, and timeouts (without needing the clock grant).

use core::time::Duration;

use serde::Serialize;

use crate::bindings::spore::process::timer as wit;
use crate::codec;
use crate::mailbox::SendError;
use crate::pid::{Pid, Ref};

fn millis(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

/// Suspends this process for `d` (other processes keep running).
pub fn sleep(d: Duration) {
    wit::sleep(millis(d));
}

/// Sends `msg` to `to` after `d`, even if this process has ended by then (as Erlang's
/// `send_after`); returns a reference for [`cancel_timer`]. A timer for a process of this
/// node ends with that process (one for a process that is not alive does nothing); a timer
/// for another node's process ends with this one. A message over the node's size limit
/// fails at once ([`SendError::TooLarge`]), and so does a timer that would take the pending
/// timers of the process it ends with past that process's mailbox limits
/// ([`SendError::MailboxFull`]: their messages wait in the node). A local receiver whose
/// mailbox is full when the timer fires ends with a limit reason (the sender cannot be told).
pub fn send_after<T: Serialize + ?Sized>(d: Duration, to: Pid, msg: &T) -> Result<Ref, SendError> {
    codec::with_encoded(msg, |bytes| wit::send_after(millis(d), to.to_wit(), 0, bytes))
        .map_err(SendError::Encode)?
        .map_err(SendError::from)
}

/// Cancels a timer; false if it already fired.
pub fn cancel_timer(timer: Ref) -> bool {
    wit::cancel(timer)
}

/// A point in time on the host's coarse millisecond counter.
pub(crate) struct Deadline(u64);

impl Deadline {
    pub fn after(d: Duration) -> Self {
        Self(wit::now_ms().saturating_add(millis(d)))
    }

    pub fn remaining_ms(&self) -> u64 {
        self.0.saturating_sub(wit::now_ms())
    }
}
