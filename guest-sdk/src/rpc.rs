//! Remote procedure calls, Erlang's `erpc`: run an entry on a node, in a process spawned
//! for the call (as `erpc` does), and get back what it returns.
//!
//! ```no_run
//! use core::time::Duration;
//! use spore_guest::{Module, Reply, rpc};
//!
//! fn double(n: u32) -> Reply<u32> {
//!     Reply(2 * n)
//! }
//!
//! fn main() {
//!     let timeout = Duration::from_secs(5);
//!     let four: u32 = rpc::call("b@localhost", Module::This, "double", &(2u32,), timeout).unwrap();
//!     assert_eq!(four, 4);
//! }
//!
//! spore_guest::entries!(main, double);
//! ```
//!
//! A call spawns `entry` on `node`, monitored, with its arguments wrapped as tag
//! [`CALL_TAG`] over `[caller, reference, args]` (wit/MESSAGES.md). When the entry returns,
//! its process sends the value to the caller as a message tagged with `reference`: an entry
//! returning `()` or `Ok(())` answers null, one returning [`Reply`] answers its value. An
//! entry that fails, panics or traps answers nothing, and the caller gets its exit reason.

use crate::prelude::*;

use core::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Serialize, Serializer};

use crate::codec::{CALL_MARKER, CodecError};
use crate::mailbox::{Received, Select, Signal};
use crate::pid::{Pid, Ref};
use crate::process::{Module, Spawn, SpawnError, demonitor, kill, make_ref};
use crate::reason::ExitReason;

/// CBOR tag of a call's arguments: the ASCII bytes "SCAL".
pub const CALL_TAG: u64 = 0x5343_414c;

/// What an entry answers to a call: return `Reply(value)` from an entry to have `value`
/// sent to the caller (the entry's process ends normally afterwards).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply<T>(pub T);

/// Why a call failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallError {
    /// The process could not be spawned.
    Spawn(SpawnError),
    /// The process ended without answering, for this reason.
    Exited(ExitReason),
    /// No answer came within the timeout; the process was killed.
    Timeout,
    /// The answer did not decode as the expected type.
    Decode(CodecError),
}

impl core::fmt::Display for CallError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Spawn(e) => write!(f, "call not started: {e}"),
            Self::Exited(reason) => write!(f, "the call's process exited: {reason}"),
            Self::Timeout => f.write_str("no answer within the timeout"),
            Self::Decode(e) => write!(f, "bad answer: {e}"),
        }
    }
}

impl core::error::Error for CallError {}

/// A call under way (Erlang's `erpc:send_request`); [`PendingCall::wait`] takes its answer.
#[derive(Debug)]
#[must_use = "a pending call's answer and down notice wait in the mailbox until it is waited for"]
pub struct PendingCall {
    pid: Pid,
    pub(crate) reference: Ref,
    monitor: Ref,
}

/// Calls `entry` of `module` on `node` with `args` (a tuple) and waits at most `timeout`
/// for its answer (Erlang's `erpc:call`).
pub fn call<R: DeserializeOwned>(
    node: &str,
    module: Module,
    entry: &str,
    args: &(impl Serialize + ?Sized),
    timeout: Duration,
) -> Result<R, CallError> {
    start(node, module, entry, args)?.wait(Some(timeout))
}

/// Calls `entry` on every node of `nodes` at once and waits for all answers, in the order
/// of `nodes`, within one `timeout` (Erlang's `erpc:multicall`).
pub fn multicall<R: DeserializeOwned>(
    nodes: &[&str],
    module: Module,
    entry: &str,
    args: &(impl Serialize + ?Sized),
    timeout: Duration,
) -> Vec<Result<R, CallError>> {
    let deadline = crate::timer::Deadline::after(timeout);
    let pending: Vec<Result<PendingCall, CallError>> =
        nodes.iter().map(|node| start(node, module.clone(), entry, args)).collect();
    pending.into_iter().map(|call| call?.wait(Some(Duration::from_millis(deadline.remaining_ms())))).collect()
}

/// Runs `entry` on `node` without waiting for anything (Erlang's `erpc:cast`).
pub fn cast(
    node: &str,
    module: Module,
    entry: &str,
    args: &(impl Serialize + ?Sized),
) -> Result<(), SpawnError> {
    Spawn::new(entry).on(node).module(module).args(args).start().map(|_| ())
}

/// Starts a call and returns at once; its answer waits for [`PendingCall::wait`].
pub fn start(
    node: &str,
    module: Module,
    entry: &str,
    args: &(impl Serialize + ?Sized),
) -> Result<PendingCall, CallError> {
    let reference = make_ref();
    let spawned = Spawn::new(entry)
        .on(node)
        .module(module)
        .args(&CallArgs { caller: Pid::me(), reference, args })
        .monitor()
        .start()
        .map_err(CallError::Spawn)?;
    let monitor = spawned.monitor.expect("a monitored spawn returns its monitor");
    Ok(PendingCall { pid: spawned.pid, reference, monitor })
}

/// How a pending call ended.
enum Outcome<R> {
    Answer(Result<R, CodecError>),
    Down(ExitReason),
    Timeout,
}

impl PendingCall {
    /// The process running the call.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Waits at most `timeout` (forever if none) for the answer. On a timeout the call's
    /// process is killed; either way nothing of this call is left in the mailbox.
    pub fn wait<R: DeserializeOwned>(self, timeout: Option<Duration>) -> Result<R, CallError> {
        let Self { pid, reference, monitor } = self;
        let mut select = Select::new().on_match(|entry| match entry {
            Received::Message(m) if m.tag == reference && m.sender == pid => {
                Some(Outcome::Answer(m.decode()))
            }
            Received::Signal(Signal::Down { monitor: r, reason, .. }) if *r == monitor => {
                Some(Outcome::Down(reason.clone()))
            }
            _ => None,
        });
        if let Some(timeout) = timeout {
            select = select.after(timeout, || Outcome::Timeout);
        }
        match select.wait() {
            Outcome::Answer(answer) => {
                demonitor(monitor);
                answer.map_err(CallError::Decode)
            }
            Outcome::Down(reason) => Err(CallError::Exited(reason)),
            Outcome::Timeout => {
                kill(pid);
                // Its down notice comes after anything it sent, so an answer that was on its
                // way is dropped here rather than left in the mailbox. An unreachable node's
                // notice may take longer: after another `timeout`, give up on it.
                let patience = timeout.unwrap_or_default();
                loop {
                    let late = Select::new()
                        .on_match(|entry| match entry {
                            Received::Message(m) if m.tag == reference && m.sender == pid => Some(true),
                            Received::Signal(Signal::Down { monitor: r, .. }) if *r == monitor => Some(false),
                            _ => None,
                        })
                        .after(patience, || false)
                        .wait();
                    if !late {
                        break;
                    }
                }
                demonitor(monitor);
                Err(CallError::Timeout)
            }
        }
    }
}

/// A call's arguments: tag [`CALL_TAG`] over `[caller, reference, args]`.
pub(crate) struct CallArgs<'a, A: ?Sized> {
    pub(crate) caller: Pid,
    pub(crate) reference: Ref,
    pub(crate) args: &'a A,
}

impl<A: Serialize + ?Sized> Serialize for CallArgs<'_, A> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_newtype_struct(CALL_MARKER, &(self.caller, self.reference, self.args))
    }
}

/// Sends what an entry returned to the caller of a call, if its process was spawned by one.
pub(crate) fn answer<T: Serialize + ?Sized>(caller: Option<(Pid, Ref)>, value: &T) {
    if let Some((caller, reference)) = caller {
        // The caller may be gone or its node unreachable; its monitor tells it the rest.
        let _ = crate::mailbox::send_tagged(caller, reference, value);
    }
}
