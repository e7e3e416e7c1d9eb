//! `spore:process/timer`: sleep, send-after, cancel.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;

use super::spore::process::timer::{self as wit, Host};
use crate::node::PendingTimer;
use crate::process::Pid;
use crate::process::entry::{RUNNING, SLEEPING};
use crate::process::state::ProcState;

/// Longest timer or sleep, about 49 days (Erlang's limit for timers is similar): keeps
/// deadline arithmetic far from overflow.
const MAX_TIMER_MS: u64 = u32::MAX as u64;

impl Host for ProcState {
    async fn sleep(&mut self, ms: u64) -> wasmtime::Result<()> {
        self.me.state.store(SLEEPING, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(ms.min(MAX_TIMER_MS))).await;
        self.me.state.store(RUNNING, Ordering::Relaxed);
        Ok(())
    }

    fn send_after(
        &mut self,
        ms: u64,
        to: wit::Pid,
        tag: u64,
        payload: Vec<u8>,
    ) -> wasmtime::Result<Result<u64, wit::SendError>> {
        let payload = Bytes::from(payload);
        if let Err(e) = self.node.check_size(&payload) {
            return Ok(Err(e.into()));
        }
        let r = self.node.table.make_ref();
        let from = self.me.pid;
        let to: Pid = to.into();
        // A timer for a process of this node belongs to that process and ends with it, as
        // Erlang's does (one for a process that is not alive does nothing). A timer for
        // another node's process belongs to its setter, whose end this node sees.
        let owner = if to.node == self.node.id {
            match self.node.table.get(&to) {
                Some(entry) => entry,
                None => return Ok(Ok(r)),
            }
        } else {
            Arc::clone(&self.me)
        };
        // Dropping the sender (a cancel) ends the task at once.
        let (cancel, cancelled) = tokio::sync::oneshot::channel::<()>();
        {
            let mut signals = owner.signals.lock();
            if !signals.alive {
                return Ok(Ok(r));
            }
            let (count_limit, byte_limit) = owner.mailbox.limits();
            let timers = signals.timers.get_or_insert_with(Box::default);
            if timers.refs.len() >= count_limit || timers.bytes.saturating_add(payload.len()) > byte_limit {
                return Ok(Err(wit::SendError::MailboxFull));
            }
            timers.refs.insert(r);
            timers.bytes += payload.len();
            // Under the owner's lock, so that its end finds the timer.
            self.node.timers.insert(r, PendingTimer::new(from, cancel, &owner, r, payload.len()));
        }
        let node = Arc::clone(&self.node);
        self.node.runtime.spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(ms.min(MAX_TIMER_MS))) => {}
                _ = cancelled => return,
            }
            // Taken before the message goes, so that a cancel that comes later finds the
            // timer gone and reports that it fired.
            if node.timers.remove(&r).is_none() {
                return;
            }
            if to.node == node.id {
                node.deliver_or_end_receiver(from, to, tag, payload);
            } else if let Err(e) = node.send(from, to, tag, payload).await {
                // As any send to a node that cannot be reached: dropped.
                tracing::debug!(%from, "timer message not delivered: {e}");
            }
        });
        Ok(Ok(r))
    }

    fn now_ms(&mut self) -> wasmtime::Result<u64> {
        Ok(self.me.started.elapsed().as_millis() as u64)
    }

    fn cancel(&mut self, timer: u64) -> wasmtime::Result<bool> {
        let me = self.me.pid;
        Ok(self.node.timers.remove_if(&timer, |_, t| t.setter == me).is_some())
    }
}
