//! Sending and receiving: typed messages, selective receive over a save queue, signals.
//!
//! `receive::<T>()` takes the oldest message that decodes as `T`; messages of other shapes
//! stay queued, in order, for later receives (Erlang's selective receive). Exit signals
//! (while trapping exits), down notices and node events are [`Signal`]s.

use crate::prelude::*;

use alloc::collections::VecDeque;
use core::cell::RefCell;
use core::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::bindings::spore::process::mailbox as wit;
use crate::codec::{self, CodecError};
use crate::pid::{Pid, Ref};
use crate::reason::ExitReason;

/// Why a send failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// The message is larger than the node's limit (bytes).
    TooLarge(u64),
    /// The receiver's mailbox is full.
    MailboxFull,
    /// No process has that name on that node.
    NotRegistered(String),
    /// The node cannot be reached.
    Unreachable(String),
    /// The message could not be encoded.
    Encode(CodecError),
}

impl core::fmt::Display for SendError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::TooLarge(limit) => write!(f, "message over the limit of {limit} bytes"),
            Self::MailboxFull => f.write_str("mailbox full"),
            Self::NotRegistered(n) => write!(f, "no process registered as `{n}`"),
            Self::Unreachable(n) => write!(f, "node unreachable: {n}"),
            Self::Encode(e) => write!(f, "cannot encode message: {e}"),
        }
    }
}

impl core::error::Error for SendError {}

impl From<wit::SendError> for SendError {
    fn from(e: wit::SendError) -> Self {
        match e {
            wit::SendError::TooLarge(n) => Self::TooLarge(n),
            wit::SendError::MailboxFull => Self::MailboxFull,
            wit::SendError::NotRegistered(n) => Self::NotRegistered(n),
            wit::SendError::Unreachable(n) => Self::Unreachable(n),
        }
    }
}

/// A message as it arrived: sender, tag and undecoded payload.
#[derive(Clone, Debug)]
pub struct Envelope {
    /// Who sent it.
    pub sender: Pid,
    /// The tag it was sent with (0 for ordinary messages).
    pub tag: u64,
    /// The encoded body.
    pub payload: Vec<u8>,
}

impl Envelope {
    /// Decodes the body as a `T`, which may borrow from it (a `&str`, say): a receiver
    /// that only looks at a text tag allocates nothing for it.
    pub fn decode<'a, T: Deserialize<'a>>(&'a self) -> Result<T, CodecError> {
        codec::decode(&self.payload)
    }
}

/// What the runtime tells a process about other processes and nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signal {
    /// A linked process ended (delivered only while trapping exits).
    Exit {
        /// The process.
        from: Pid,
        /// Why.
        reason: ExitReason,
    },
    /// A monitored process ended.
    Down {
        /// The monitor's reference.
        monitor: Ref,
        /// The process.
        pid: Pid,
        /// Why.
        reason: ExitReason,
    },
    /// A node connected.
    NodeUp(String),
    /// A node disconnected, and why.
    NodeDown(String, String),
}

/// One mailbox entry.
#[derive(Clone, Debug)]
pub enum Received {
    /// A message.
    Message(Envelope),
    /// A signal.
    Signal(Signal),
}

impl Received {
    fn from_wit(entry: wit::Incoming) -> Self {
        match entry {
            wit::Incoming::Message(m) => {
                Self::Message(Envelope { sender: Pid::from_wit(m.sender), tag: m.tag, payload: m.payload })
            }
            wit::Incoming::Exit(e) => Self::Signal(Signal::Exit {
                from: Pid::from_wit(e.sender),
                reason: ExitReason::from_wit(e.reason),
            }),
            wit::Incoming::Down(d) => Self::Signal(Signal::Down {
                monitor: d.monitor,
                pid: Pid::from_wit(d.pid),
                reason: ExitReason::from_wit(d.reason),
            }),
            wit::Incoming::Node(n) if n.up => Self::Signal(Signal::NodeUp(n.node)),
            wit::Incoming::Node(n) => Self::Signal(Signal::NodeDown(n.node, n.reason)),
        }
    }
}

process_local! {
    /// Entries taken from the host mailbox that no receive has matched yet, oldest first.
    static SAVED: RefCell<VecDeque<Received>> = RefCell::new(VecDeque::new());
}

/// Sends `msg` to `to`. Panics if the message cannot be sent (too large, mailbox full, name
/// not registered): use [`try_send`] to handle those.
pub fn send<T: Serialize + ?Sized>(to: Pid, msg: &T) {
    if let Err(e) = try_send(to, msg) {
        panic!("send to {to} failed: {e}");
    }
}

/// Sends `msg` to `to`, reporting failures.
pub fn try_send<T: Serialize + ?Sized>(to: Pid, msg: &T) -> Result<(), SendError> {
    send_tagged(to, 0, msg)
}

/// Sends `msg` with `tag`, which the receiver can select on without decoding.
pub fn send_tagged<T: Serialize + ?Sized>(to: Pid, tag: u64, msg: &T) -> Result<(), SendError> {
    codec::with_encoded(msg, |bytes| send_raw(to, tag, bytes)).map_err(SendError::Encode)?
}

/// Sends already-encoded bytes.
pub fn send_raw(to: Pid, tag: u64, payload: &[u8]) -> Result<(), SendError> {
    wit::send(to.to_wit(), tag, payload).map_err(Into::into)
}

/// Sends `msg` to the process registered as `name` on `node` (this node when `None`),
/// Erlang's `{Name, Node} ! Msg`. Panics on failure, like [`send`].
pub fn send_named<T: Serialize + ?Sized>(name: &str, node: Option<&str>, msg: &T) {
    if let Err(e) = try_send_named(name, node, msg) {
        panic!("send to {name} failed: {e}");
    }
}

/// [`send_named`], reporting failures.
pub fn try_send_named<T: Serialize + ?Sized>(
    name: &str,
    node: Option<&str>,
    msg: &T,
) -> Result<(), SendError> {
    codec::with_encoded(msg, |bytes| wit::send_named(name, node, 0, bytes))
        .map_err(SendError::Encode)?
        .map_err(Into::into)
}

/// Waits for the oldest message that decodes as `T`.
pub fn receive<T: DeserializeOwned>() -> T {
    // A one-arm `Select` without its allocations: this is every request/reply's hot path.
    let decode = |entry: &Received| match entry {
        Received::Message(m) => m.decode::<T>().ok(),
        Received::Signal(_) => None,
    };
    if let Some(t) = take_saved(decode) {
        return t;
    }
    loop {
        let entry = Received::from_wit(wit::receive(&[], None).expect("a receive without timeout returns"));
        if let Some(t) = decode(&entry) {
            return t;
        }
        SAVED.with(|s| s.borrow_mut().push_back(entry));
    }
}

/// Sends `msg` to `to`, then waits for the oldest message that decodes as `T`: [`send`] and
/// [`receive`] in one host call, for a request and its reply. Panics if the send fails, like
/// [`send`].
pub fn send_receive<T: DeserializeOwned>(to: Pid, msg: &(impl Serialize + ?Sized)) -> T {
    let Some(entry) = send_then_receive(to, msg, None) else {
        return receive();
    };
    if let Received::Message(m) = &entry
        && let Ok(t) = m.decode::<T>()
    {
        return t;
    }
    SAVED.with(|s| s.borrow_mut().push_back(entry));
    receive()
}

/// Sends `msg` to `to`, then waits at most `timeout` (forever when none) for the oldest
/// entry of any kind: [`send`] and [`receive_any`] in one host call, for a server that
/// answers one request and waits for the next. Panics if the send fails, like [`send`].
pub fn send_receive_any(
    to: Pid,
    msg: &(impl Serialize + ?Sized),
    timeout: Option<Duration>,
) -> Option<Received> {
    let deadline = timeout.map(crate::timer::Deadline::after);
    if let Some(entry) = send_then_receive(to, msg, deadline.as_ref().map(|d| d.remaining_ms())) {
        return Some(entry);
    }
    match deadline {
        None => receive_any(None),
        Some(d) => match d.remaining_ms() {
            0 => None,
            left => receive_any(Some(Duration::from_millis(left))),
        },
    }
}

/// Sends, and takes the host's oldest entry in the same call when the save queue is empty
/// (a saved entry is older than anything in the host's mailbox); `None` when it was not
/// empty (only sent) or nothing came within `timeout_ms`.
fn send_then_receive<M: Serialize + ?Sized>(to: Pid, msg: &M, timeout_ms: Option<u64>) -> Option<Received> {
    if SAVED.with(|s| !s.borrow().is_empty()) {
        send(to, msg);
        return None;
    }
    let sent = codec::with_encoded(msg, |bytes| wit::send_receive(to.to_wit(), 0, bytes, &[], timeout_ms))
        .map_err(SendError::Encode)
        .and_then(|r| r.map_err(SendError::from));
    match sent {
        Ok(entry) => entry.map(Received::from_wit),
        Err(e) => panic!("send to {to} failed: {e}"),
    }
}

/// The first saved entry `matches` takes (`Some`), removed from the save queue: one scan
/// and one removal. `matches` runs while the queue is borrowed, so it must only look at
/// the entry (decode it, test it); what a receive then does with it runs afterwards.
fn take_saved<R>(mut matches: impl FnMut(&Received) -> Option<R>) -> Option<R> {
    SAVED.with(|s| {
        let mut saved = s.borrow_mut();
        let (i, r) = saved.iter().enumerate().find_map(|(i, entry)| matches(entry).map(|r| (i, r)))?;
        saved.remove(i);
        Some(r)
    })
}

/// Waits at most `timeout` for a message that decodes as `T`.
pub fn receive_timeout<T: DeserializeOwned>(timeout: Duration) -> Option<T> {
    Select::new().on(|t: T| Some(t)).after(timeout, || None).wait()
}

/// Waits for the next signal (exit, down, node event), leaving messages queued.
pub fn receive_signal(timeout: Option<Duration>) -> Option<Signal> {
    let select = Select::new().on_signal(Some);
    match timeout {
        Some(t) => select.after(t, || None).wait(),
        None => select.wait(),
    }
}

/// Waits for the oldest entry of any kind.
///
/// When the save queue is empty it takes, in one host call, up to 64 entries that wait:
/// the first is returned, the rest saved in order for the next receives. A process that
/// receives everything in turn pays one host call per batch instead of one per entry.
pub fn receive_any(timeout: Option<Duration>) -> Option<Received> {
    // Not a `Select`: its arm would clone the entry, payload and all, and box two closures.
    if let Some(entry) = SAVED.with(|s| s.borrow_mut().pop_front()) {
        return Some(entry);
    }
    let deadline = timeout.map(crate::timer::Deadline::after);
    loop {
        let mut batch =
            wit::receive_many(RECEIVE_MANY, deadline.as_ref().map(|d| d.remaining_ms())).into_iter();
        if let Some(first) = batch.next() {
            SAVED.with(|s| s.borrow_mut().extend(batch.map(Received::from_wit)));
            return Some(Received::from_wit(first));
        }
        if deadline.as_ref().is_none_or(|d| d.remaining_ms() == 0) {
            return None;
        }
    }
}

/// Most entries [`receive_any`] takes from the host in one call.
const RECEIVE_MANY: u32 = 64;

/// Waits for a message with `tag` that decodes as `T`, letting the host skip everything
/// else (cheap even with a long mailbox: replies to a request use a fresh reference as tag).
pub fn receive_tagged<T: DeserializeOwned>(
    tag: u64,
    timeout: Option<Duration>,
) -> Option<Result<T, CodecError>> {
    let pos =
        SAVED.with(|s| s.borrow().iter().position(|e| matches!(e, Received::Message(m) if m.tag == tag)));
    if let Some(i) = pos
        && let Some(Received::Message(m)) = SAVED.with(|s| s.borrow_mut().remove(i))
    {
        return Some(m.decode());
    }
    let selector = [wit::Selector::Tag(tag)];
    let timeout = timeout.map(|t| t.as_millis().min(u64::MAX as u128) as u64);
    match wit::receive(&selector, timeout).map(Received::from_wit) {
        Some(Received::Message(m)) => Some(m.decode()),
        Some(other) => {
            SAVED.with(|s| s.borrow_mut().push_back(other));
            None
        }
        None => None,
    }
}

/// Drops the saved down notice of `monitor`, if there is one.
pub(crate) fn forget_down(monitor: Ref) {
    SAVED.with(|s| {
        s.borrow_mut()
            .retain(|e| !matches!(e, Received::Signal(Signal::Down { monitor: m, .. }) if *m == monitor))
    });
}

/// Entries waiting (in the host mailbox and in this process's save queue).
pub fn pending() -> usize {
    wit::pending() as usize + SAVED.with(|s| s.borrow().len())
}

/// An arm of a [`Select`]: it looks at an entry and, when it takes it, returns its handler,
/// which runs once the entry has left the save queue (so a handler may receive again).
type Arm<'a, R> = Box<dyn FnMut(&Received) -> Option<Handler<'a, R>> + 'a>;

/// What a matching arm runs.
type Handler<'a, R> = Box<dyn FnOnce() -> R + 'a>;

/// A selective receive with several arms, the first matching one wins, and an optional
/// timeout, like Erlang's `receive ... after`.
///
/// ```no_run
/// # use spore_guest::{Select, Signal};
/// # use core::time::Duration;
/// #[derive(serde::Deserialize)]
/// struct Pong;
/// let got_pong = Select::new()
///     .on(|Pong| true)
///     .on_signal(|_s: Signal| false)
///     .after(Duration::from_secs(1), || false)
///     .wait();
/// ```
pub struct Select<'a, R> {
    arms: Vec<Arm<'a, R>>,
    after: Option<(Duration, Box<dyn FnOnce() -> R + 'a>)>,
}

impl<R> Default for Select<'_, R> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a, R> Select<'a, R> {
    /// A receive with no arms yet.
    pub fn new() -> Self {
        Self { arms: Vec::new(), after: None }
    }

    /// Matches a message that decodes as `T`.
    pub fn on<T: DeserializeOwned + 'a>(mut self, f: impl FnOnce(T) -> R + 'a) -> Self {
        let mut f = Some(f);
        self.arms.push(Box::new(move |entry| {
            let Received::Message(m) = entry else { return None };
            let value = m.decode::<T>().ok()?;
            let f = f.take()?;
            Some(Box::new(move || f(value)))
        }));
        self
    }

    /// Matches a message that decodes as `T` and satisfies `guard` (which only looks).
    pub fn on_if<T: DeserializeOwned + 'a>(
        mut self,
        guard: impl Fn(&T) -> bool + 'a,
        f: impl FnOnce(T) -> R + 'a,
    ) -> Self {
        let mut f = Some(f);
        self.arms.push(Box::new(move |entry| {
            let Received::Message(m) = entry else { return None };
            let value = m.decode::<T>().ok().filter(|v| guard(v))?;
            let f = f.take()?;
            Some(Box::new(move || f(value)))
        }));
        self
    }

    /// Matches a message that decodes as `T`, with its envelope (sender, tag).
    pub fn on_envelope<T: DeserializeOwned + 'a>(mut self, f: impl FnOnce(&Envelope, T) -> R + 'a) -> Self {
        let mut f = Some(f);
        self.arms.push(Box::new(move |entry| {
            let Received::Message(m) = entry else { return None };
            let value = m.decode::<T>().ok()?;
            let (f, m) = (f.take()?, m.clone());
            Some(Box::new(move || f(&m, value)))
        }));
        self
    }

    /// Matches any signal.
    pub fn on_signal(mut self, f: impl FnOnce(Signal) -> R + 'a) -> Self {
        let mut f = Some(f);
        self.arms.push(Box::new(move |entry| {
            let Received::Signal(s) = entry else { return None };
            let (f, s) = (f.take()?, s.clone());
            Some(Box::new(move || f(s)))
        }));
        self
    }

    /// Matches what `f` takes: it returns `Some` with the result for the entries it wants
    /// and `None` for the others, which stay queued. `f` only looks at the entry: it must
    /// not receive.
    pub fn on_match(mut self, mut f: impl FnMut(&Received) -> Option<R> + 'a) -> Self
    where
        R: 'a,
    {
        self.arms.push(Box::new(move |entry| {
            let r = f(entry)?;
            Some(Box::new(move || r))
        }));
        self
    }

    /// Matches anything.
    pub fn on_received(mut self, f: impl FnOnce(Received) -> R + 'a) -> Self {
        let mut f = Some(f);
        self.arms.push(Box::new(move |entry| {
            let (f, entry) = (f.take()?, entry.clone());
            Some(Box::new(move || f(entry)))
        }));
        self
    }

    /// Gives up after `timeout`, returning what `f` returns.
    pub fn after(mut self, timeout: Duration, f: impl FnOnce() -> R + 'a) -> Self {
        self.after = Some((timeout, Box::new(f)));
        self
    }

    /// Runs the receive.
    pub fn wait(mut self) -> R {
        // Saved entries first, oldest first.
        if let Some(handler) = take_saved(|entry| self.try_arms(entry)) {
            return handler();
        }
        let deadline = self.after.as_ref().map(|(t, _)| crate::timer::Deadline::after(*t));
        loop {
            let timeout = deadline.as_ref().map(|d| d.remaining_ms());
            match wit::receive(&[], timeout) {
                Some(raw) => {
                    let entry = Received::from_wit(raw);
                    if let Some(handler) = self.try_arms(&entry) {
                        return handler();
                    }
                    SAVED.with(|s| s.borrow_mut().push_back(entry));
                }
                None => {
                    if let Some(d) = &deadline
                        && d.remaining_ms() > 0
                    {
                        continue;
                    }
                    let (_, f) = self.after.take().expect("receive without timeout returned nothing");
                    return f();
                }
            }
        }
    }

    fn try_arms(&mut self, entry: &Received) -> Option<Handler<'a, R>> {
        self.arms.iter_mut().find_map(|arm| arm(entry))
    }
}
