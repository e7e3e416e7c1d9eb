//! `spore:process/mailbox`: send, send-named, receive, receive-many, send-receive, pending.
//!
//! The three calls that hand entries to the guest, and `send`, are defined in the linker by
//! hand ([`define_by_hand`]), over the ones bindgen generates. Bindgen types a `list<u8>` as
//! `Vec<u8>`, so each received payload would be copied out of the buffer it arrived in (a
//! frame read from another node) into a `Vec` of its own before being lowered into the
//! guest; here the payload is lowered from its [`Bytes`] directly. Bindgen's `send` builds
//! the future of a send that may wait on the process's stack, on every call; here the send
//! is made first without waiting ([`try_send`](crate::node::NodeInner::try_send)), and the waiting future is built
//! only for a send that must wait. `receive`, `send-receive` and `receive-many` write messages
//! into the guest by hand, and `send` and `send-receive` read their arguments by hand ([`abi`]). The stack a process touches is resident for its whole
//! life: an idle process's deepest call was `send`, 5.4 KB, two pages.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;
use wasmtime::StoreContextMut;
use wasmtime::component::{ComponentType, Linker, Lower};

use super::spore::process::mailbox::{self as wit, Host};

use crate::error::SendError;
use crate::node::TrySend;
use crate::process::entry::{RUNNING, WAITING};
use crate::process::mailbox::{Queue, deadline_after};
use crate::process::state::ProcState;
use crate::process::{Incoming, Message, Pid, Selector};

mod abi;

use abi::{ReceiveManyResult, ReceiveResult, SendArgs, SendReceiveArgs, SendReceiveResult};

/// Most selectors one receive may have.
const MAX_SELECTORS: usize = 256;
/// Most entries one `receive-many` returns, whatever the guest asks for: the call lowers
/// them all into the guest before it returns.
const MAX_MANY: usize = 1024;
/// Most message payload bytes one `receive-many` returns after its first entry: it bounds
/// what a batch needs of the guest's memory beyond one entry, for guests near their limit.
const MANY_BYTES: usize = 16 << 10;

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

/// The WIT instance whose functions [`define_by_hand`] replaces.
const INSTANCE: &str = "spore:process/mailbox@0.1.0";

/// WIT's `message`, with the payload lowered from the buffer it arrived in.
#[derive(ComponentType, Lower)]
#[component(record)]
struct GuestMessage {
    sender: wit::Pid,
    tag: u64,
    payload: Bytes,
}

/// WIT's `incoming`, with a message as a [`GuestMessage`].
#[derive(ComponentType, Lower)]
#[component(variant)]
enum GuestIncoming {
    #[component(name = "message")]
    Message(GuestMessage),
    #[component(name = "exit")]
    Exit(wit::ExitSignal),
    #[component(name = "down")]
    Down(wit::Down),
    #[component(name = "node")]
    Node(wit::NodeEvent),
}

/// The guest-visible form of a mailbox entry; group events never reach guests. Out of line,
/// so that its locals stay out of the frame of a receive's wait.
#[inline(never)]
fn to_wit(entry: Incoming) -> Option<GuestIncoming> {
    Some(match entry {
        Incoming::Message(m) => {
            GuestIncoming::Message(GuestMessage { sender: m.sender.into(), tag: m.tag, payload: m.payload })
        }
        Incoming::Exit { from, reason } => {
            GuestIncoming::Exit(wit::ExitSignal { sender: from.into(), reason: reason.into() })
        }
        Incoming::Down { monitor, pid, reason } => {
            GuestIncoming::Down(wit::Down { monitor, pid: pid.into(), reason: reason.into() })
        }
        Incoming::Node { name, up, reason } => GuestIncoming::Node(wit::NodeEvent { node: name, up, reason }),
        Incoming::Group(_) => return None,
    })
}

/// Defines `send`, `receive`, `receive-many` and `send-receive` in `linker` over bindgen's
/// (see the module doc).
pub(super) fn define_by_hand(linker: &mut Linker<ProcState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut mailbox = linker.instance(INSTANCE)?;
    mailbox.func_wrap_async(
        "send",
        |mut store: StoreContextMut<'_, ProcState>, SendArgs { to, tag, payload }| {
            let to: Pid = to.into();
            match store.data_mut().try_send(to, tag, payload) {
                TrySend::Done(sent) => Box::new(std::future::ready(Ok((sent.map_err(Into::into),)))),
                TrySend::Wait(payload) => send_waiting(store, to, tag, payload),
            }
        },
    )?;
    mailbox.func_wrap_async(
        "receive",
        |mut store: StoreContextMut<'_, ProcState>,
         (selectors, timeout_ms): (Vec<wit::Selector>, Option<u64>)| {
            // Checked and converted before the future: what it holds while the process
            // waits is every waiting process's (W4b).
            let selectors = match selectors_of(selectors) {
                Ok(selectors) => selectors,
                Err(e) => return Box::new(async { Err(e) }),
            };
            // What waits already is taken here, with no wait's future built or polled.
            let mut scanned = 0;
            if let Some(entry) = take_entry(&mut store.data().me.mailbox.queue(), &selectors, &mut scanned) {
                return Box::new(std::future::ready(Ok((ReceiveResult(Some(entry)),))));
            }
            let deadline = deadline_of(timeout_ms);
            Box::new(async move {
                Ok((ReceiveResult(store.data_mut().receive_entry(&selectors, deadline, scanned).await),))
            })
        },
    )?;
    mailbox.func_wrap_async(
        "receive-many",
        |mut store: StoreContextMut<'_, ProcState>, (max, timeout_ms): (u32, Option<u64>)| {
            let deadline = deadline_of(timeout_ms);
            Box::new(
                async move { Ok((ReceiveManyResult(store.data_mut().receive_many(max, deadline).await),)) },
            )
        },
    )?;
    mailbox.func_wrap_async(
        "send-receive",
        |mut store: StoreContextMut<'_, ProcState>,
         SendReceiveArgs { to, tag, payload, selectors, timeout_ms }| {
            // Checked before the send: a receive that would trap must not have sent.
            let selectors = match selectors_of(selectors) {
                Ok(selectors) => selectors,
                Err(e) => return Box::new(async { Err(e) }),
            };
            // Sent here when no wait is needed (the common case), so that the boxed future,
            // made and moved into its box at every call, holds only the receive: with the
            // send in it (and the send's wait for credit), it was 720 bytes.
            let to: Pid = to.into();
            match store.data_mut().try_send(to, tag, payload) {
                TrySend::Done(Ok(())) => {}
                TrySend::Done(Err(e)) => {
                    return Box::new(std::future::ready(Ok((SendReceiveResult(Err(e.into())),))));
                }
                TrySend::Wait(payload) => {
                    return send_waiting_then_receive(store, to, tag, payload, selectors, timeout_ms);
                }
            }
            // The receive's time starts after the send, as when the guest makes the two
            // calls. No look before the wait, whose first poll looks: the request's reply
            // is rarely there yet, and each look takes the mailbox's lock.
            let deadline = deadline_of(timeout_ms);
            Box::new(async move {
                Ok((SendReceiveResult(Ok(store.data_mut().receive_entry(&selectors, deadline, 0).await)),))
            })
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// The future of a guest's `send` that waits for send credit; out of line, so that the
/// common send's frame does not hold it.
#[inline(never)]
fn send_waiting(
    mut store: StoreContextMut<'_, ProcState>,
    to: Pid,
    tag: u64,
    payload: Bytes,
) -> Box<dyn Future<Output = wasmtime::Result<(Result<(), wit::SendError>,)>> + Send + '_> {
    Box::new(async move {
        let state = store.data_mut();
        Ok((state.node.send_remote(state.me.pid, to, tag, payload).await.map_err(Into::into),))
    })
}

/// The future of a guest's `send-receive` whose send waits for credit; out of line, as
/// [`send_waiting`].
#[inline(never)]
fn send_waiting_then_receive(
    mut store: StoreContextMut<'_, ProcState>,
    to: Pid,
    tag: u64,
    payload: Bytes,
    selectors: Vec<Selector>,
    timeout_ms: Option<u64>,
) -> Box<dyn Future<Output = wasmtime::Result<(SendReceiveResult,)>> + Send + '_> {
    Box::new(async move {
        let state = store.data_mut();
        if let Err(e) = state.node.send_remote(state.me.pid, to, tag, payload).await {
            return Ok((SendReceiveResult(Err(e.into())),));
        }
        let deadline = deadline_of(timeout_ms);
        Ok((SendReceiveResult(Ok(state.receive_entry(&selectors, deadline, 0).await)),))
    })
}

/// The error of bindgen's `send` and receives, which [`define_by_hand`] replaces in every
/// linker of a node: reaching one means the replacement was not made, and the call traps
/// rather than run more slowly unnoticed.
fn not_replaced(name: &str) -> wasmtime::Error {
    wasmtime::format_err!("`{INSTANCE}` `{name}` was not replaced in the linker")
}

impl Host for ProcState {
    /// Replaced by [`define_by_hand`].
    async fn send(
        &mut self,
        _to: wit::Pid,
        _tag: u64,
        _payload: Vec<u8>,
    ) -> wasmtime::Result<Result<(), wit::SendError>> {
        Err(not_replaced("send"))
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

    /// Replaced by [`define_by_hand`].
    async fn receive(
        &mut self,
        _selectors: Vec<wit::Selector>,
        _timeout_ms: Option<u64>,
    ) -> wasmtime::Result<Option<wit::Incoming>> {
        Err(not_replaced("receive"))
    }

    /// Replaced by [`define_by_hand`].
    async fn receive_many(
        &mut self,
        _max: u32,
        _timeout_ms: Option<u64>,
    ) -> wasmtime::Result<Vec<wit::Incoming>> {
        Err(not_replaced("receive-many"))
    }

    /// Replaced by [`define_by_hand`].
    async fn send_receive(
        &mut self,
        _to: wit::Pid,
        _tag: u64,
        _payload: Vec<u8>,
        _selectors: Vec<wit::Selector>,
        _timeout_ms: Option<u64>,
    ) -> wasmtime::Result<Result<Option<wit::Incoming>, wit::SendError>> {
        Err(not_replaced("send-receive"))
    }

    fn pending(&mut self) -> wasmtime::Result<u32> {
        Ok(u32::try_from(self.me.mailbox.len()).unwrap_or(u32::MAX))
    }
}

/// The host's selectors of a receive; traps one with more selectors than one may have: each
/// waiting entry is matched against every selector under the mailbox's lock, which senders
/// on other workers wait for, so the list is bounded.
fn selectors_of(selectors: Vec<wit::Selector>) -> wasmtime::Result<Vec<Selector>> {
    if selectors.len() > MAX_SELECTORS {
        return Err(wasmtime::format_err!(
            "a receive with {} selectors, over the {MAX_SELECTORS} one may have",
            selectors.len()
        ));
    }
    Ok(selectors.into_iter().map(Into::into).collect())
}

/// When a receive given `timeout_ms` from now gives up ([`deadline_after`]).
fn deadline_of(timeout_ms: Option<u64>) -> Option<Instant> {
    deadline_after(timeout_ms.map(Duration::from_millis))
}

impl ProcState {
    /// A guest's send, made without waiting if it can be ([`try_send`](crate::node::NodeInner::try_send)).
    fn try_send(&mut self, to: Pid, tag: u64, payload: Vec<u8>) -> TrySend {
        if to.node == self.node.id {
            return TrySend::Done(self.send_local(to, tag, Bytes::from(payload)));
        }
        self.me.talks_remote.store(true, Ordering::Relaxed);
        self.node.try_send(self.me.pid, to, tag, Bytes::from(payload))
    }

    /// A send to a process of this node. The process sent to last is kept
    /// ([`ProcState::last_receiver`]): a server answering one client, or two processes
    /// talking, push to it without looking it up in the process table, whose read lock is two
    /// atomic operations on a line every sender shares. A process that has ended closes its
    /// mailbox, so a kept one takes nothing more (its messages are dropped, as a dead pid's
    /// are).
    fn send_local(&mut self, to: Pid, tag: u64, payload: Bytes) -> Result<(), SendError> {
        self.node.check_size(&payload)?;
        let target = match &self.last_receiver {
            Some(target) if target.pid == to => target,
            _ => match self.node.table.get(&to) {
                Some(target) => self.last_receiver.insert(target),
                // A dead process, or an earlier incarnation's: dropped, as in Erlang.
                None => return Ok(()),
            },
        };
        let message = Incoming::Message(Message { sender: self.me.pid, tag, payload });
        target.mailbox.push(message).map_err(|_| SendError::MailboxFull(to))
    }

    /// `receive-many`'s body.
    async fn receive_many(&mut self, max: u32, deadline: Option<Instant>) -> Vec<GuestIncoming> {
        let max = (max as usize).clamp(1, MAX_MANY);
        self.me.state.store(WAITING, Ordering::Relaxed);
        let mut taken = Vec::new();
        let entries = loop {
            self.me.mailbox.receive_many(max, MANY_BYTES, deadline, &mut taken).await;
            let timed_out = taken.is_empty();
            let entries: Vec<GuestIncoming> = taken.drain(..).filter_map(to_wit).collect();
            // Group events never reach the guest: a batch of nothing else is no answer yet.
            if timed_out || !entries.is_empty() {
                break entries;
            }
        };
        self.me.state.store(RUNNING, Ordering::Relaxed);
        entries
    }

    /// `receive`'s wait, shared with `send-receive`: the caller has checked the selectors and
    /// found no match in the first `scanned` entries (0: it has not looked). Entries are
    /// taken under the mailbox's lock at each wake-up ([`take_entry`], out of line: see
    /// [`Mailbox::wait_for`](crate::process::mailbox::Mailbox::wait_for)).
    async fn receive_entry(
        &mut self,
        selectors: &[Selector],
        deadline: Option<Instant>,
        mut scanned: usize,
    ) -> Option<GuestIncoming> {
        self.me.state.store(WAITING, Ordering::Relaxed);
        let mailbox = &self.me.mailbox;
        let entry = mailbox.wait_for(deadline, |q| take_entry(q, selectors, &mut scanned)).await;
        self.me.state.store(RUNNING, Ordering::Relaxed);
        entry
    }
}

/// Takes the oldest entry matching `selectors` after the first `scanned` from the locked
/// `queue`, in its guest form; group events, which never reach guests, are dropped on the way.
#[inline(never)]
fn take_entry(queue: &mut Queue, selectors: &[Selector], scanned: &mut usize) -> Option<GuestIncoming> {
    loop {
        if let Some(entry) = to_wit(queue.take_match(selectors, scanned)?) {
            return Some(entry);
        }
    }
}
