//! `spore:process/mailbox`: send, send-named, receive, pending.

use std::time::Duration;

use bytes::Bytes;

use super::spore::process::mailbox::{self as wit, Host};
use std::sync::atomic::Ordering;

use crate::error::SendError;
use crate::process::entry::{RUNNING, WAITING};
use crate::process::state::ProcState;
use crate::process::{Incoming, Pid, Selector};

/// Most selectors one receive may have.
const MAX_SELECTORS: usize = 256;

impl From<SendError> for wit::SendError {
    fn from(e: SendError) -> Self {
        match e {
            SendError::TooLarge { limit, .. } => Self::TooLarge(limit as u64),
            SendError::MailboxFull(_) => Self::MailboxFull,
            SendError::NotRegistered(n) => Self::NotRegistered(n),
            SendError::Unreachable(n) => Self::Unreachable(n),
        }
    }
}

impl From<wit::Selector> for Selector {
    fn from(s: wit::Selector) -> Self {
        match s {
            wit::Selector::Any => Self::Any,
            wit::Selector::Tag(t) => Self::Tag(t),
            wit::Selector::Sender(p) => Self::Sender(p.into()),
            wit::Selector::Signals => Self::Signals,
        }
    }
}

/// The guest-visible form of a mailbox entry; group events never reach guests.
fn to_wit(entry: Incoming) -> Option<wit::Incoming> {
    Some(match entry {
        Incoming::Message(m) => wit::Incoming::Message(wit::Message {
            sender: m.sender.into(),
            tag: m.tag,
            payload: m.payload.into(),
        }),
        Incoming::Exit { from, reason } => {
            wit::Incoming::Exit(wit::ExitSignal { sender: from.into(), reason: reason.into() })
        }
        Incoming::Down { monitor, pid, reason } => {
            wit::Incoming::Down(wit::Down { monitor, pid: pid.into(), reason: reason.into() })
        }
        Incoming::Node { name, up, reason } => wit::Incoming::Node(wit::NodeEvent { node: name, up, reason }),
        Incoming::Group(_) => return None,
    })
}

impl Host for ProcState {
    async fn send(
        &mut self,
        to: wit::Pid,
        tag: u64,
        payload: Vec<u8>,
    ) -> wasmtime::Result<Result<(), wit::SendError>> {
        let to: Pid = to.into();
        if to.node != self.node.id {
            self.me.talks_remote.store(true, Ordering::Relaxed);
        }
        Ok(self.node.send(self.me.pid, to, tag, Bytes::from(payload)).await.map_err(Into::into))
    }

    async fn send_named(
        &mut self,
        name: String,
        node: Option<String>,
        tag: u64,
        payload: Vec<u8>,
    ) -> wasmtime::Result<Result<(), wit::SendError>> {
        if node.as_deref().is_some_and(|n| n != self.node.name) {
            self.me.talks_remote.store(true, Ordering::Relaxed);
        }
        let sent = self.node.send_named(self.me.pid, &name, node.as_deref(), tag, Bytes::from(payload));
        Ok(sent.await.map_err(Into::into))
    }

    async fn receive(
        &mut self,
        selectors: Vec<wit::Selector>,
        timeout_ms: Option<u64>,
    ) -> wasmtime::Result<Option<wit::Incoming>> {
        check_selectors(&selectors)?;
        self.receive_entry(selectors, timeout_ms).await
    }

    async fn send_receive(
        &mut self,
        to: wit::Pid,
        tag: u64,
        payload: Vec<u8>,
        selectors: Vec<wit::Selector>,
        timeout_ms: Option<u64>,
    ) -> wasmtime::Result<Result<Option<wit::Incoming>, wit::SendError>> {
        // Checked before the send: a receive that would trap must not have sent.
        check_selectors(&selectors)?;
        if let Err(e) = self.send(to, tag, payload).await? {
            return Ok(Err(e));
        }
        Ok(Ok(self.receive_entry(selectors, timeout_ms).await?))
    }

    fn pending(&mut self) -> wasmtime::Result<u32> {
        Ok(u32::try_from(self.me.mailbox.len()).unwrap_or(u32::MAX))
    }
}

/// Traps a receive with more selectors than one may have: each waiting entry is matched
/// against every selector under the mailbox's lock, which senders on other workers wait
/// for, so the list is bounded.
fn check_selectors(selectors: &[wit::Selector]) -> wasmtime::Result<()> {
    if selectors.len() > MAX_SELECTORS {
        return Err(wasmtime::format_err!(
            "a receive with {} selectors, over the {MAX_SELECTORS} one may have",
            selectors.len()
        ));
    }
    Ok(())
}

impl ProcState {
    /// `receive`'s body, shared with `send-receive`; the caller has checked the selectors.
    async fn receive_entry(
        &mut self,
        selectors: Vec<wit::Selector>,
        timeout_ms: Option<u64>,
    ) -> wasmtime::Result<Option<wit::Incoming>> {
        let selectors: Vec<Selector> = selectors.into_iter().map(Into::into).collect();
        let timeout = timeout_ms.map(Duration::from_millis);
        self.me.state.store(WAITING, Ordering::Relaxed);
        let entry = loop {
            let Some(entry) = self.me.mailbox.receive(&selectors, timeout).await else {
                break None;
            };
            if let Some(entry) = to_wit(entry) {
                break Some(entry);
            }
        };
        self.me.state.store(RUNNING, Ordering::Relaxed);
        Ok(entry)
    }
}
