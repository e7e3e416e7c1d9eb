//! The process vocabulary: pids, exit reasons, mailbox entries, and the shared handle of a
//! live process.
//!
//! # Layout
//! - [`mailbox`]: the bounded mailbox with selective receive.
//! - [`entry`]: [`ProcessEntry`](entry::ProcessEntry), what the node knows of a live process
//!   (mailbox, links, monitors, kill switch).
//! - [`table`]: the node's process table, name registry and signal delivery (links, monitors,
//!   exit propagation).
//! - [`state`]: the wasmtime `Store` data of a guest process and its limiter.
//! - [`spawn`]: instantiating a module and driving its `start` export as a tokio task.
//! - [`stdio`]: stdout and stderr forwarded to the group leader.
//! - [`host`]: processes driven by Rust code instead of wasm (embedding, the CLI console).

pub mod entry;
pub mod host;
pub mod mailbox;
pub(crate) mod spawn;
pub(crate) mod state;
pub(crate) mod stdio;
pub(crate) mod table;

use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A node, as the first 8 bytes of the SHA-256 of its name: every node computes the same id
/// for the same name, so pids stay fixed-size and meaningful everywhere.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NodeId(pub u64);

impl NodeId {
    /// The id of the node called `name`.
    pub fn of(name: &str) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, name.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest.as_ref()[..8]);
        Self(u64::from_le_bytes(first))
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// A process identifier: its node, the node's incarnation when it was spawned, and its
/// number on that node.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Pid {
    /// The node the process runs on.
    pub node: NodeId,
    /// The node's incarnation (changes at every start of the node).
    pub incarnation: u32,
    /// The process's number on its node, never reused within one incarnation.
    pub index: u64,
}

impl fmt::Debug for Pid {
    /// Everything: `<node.index.incarnation>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{:04x}.{}.{}>", self.node.0 >> 48, self.index, self.incarnation)
    }
}

impl fmt::Display for Pid {
    /// Erlang-like: `<node.index>`, the node as the first hex digits of its id.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{:04x}.{}>", self.node.0 >> 48, self.index)
    }
}

/// A number unique on its node: monitor references and reply tags.
pub type Ref = u64;

/// Why a process ended; links and monitors carry it to other processes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExitReason {
    /// The entry function returned.
    Normal,
    /// Killed by an untrappable kill signal.
    Killed,
    /// The node shut down or a supervisor stopped it.
    Shutdown,
    /// The process did not exist.
    Noproc,
    /// The connection to the process's node was lost.
    Noconnection,
    /// The guest trapped.
    Trap(String),
    /// The guest panicked.
    Panic(String),
    /// The process exceeded one of its limits.
    Limit(String),
    /// Any other reason.
    Error(String),
}

/// Longest exit-reason text a guest or a peer can give: reasons travel in every link's exit
/// signal and monitor's down notice, to any node.
const MAX_REASON_BYTES: usize = 4096;

impl ExitReason {
    /// True for [`ExitReason::Normal`].
    pub fn is_normal(&self) -> bool {
        matches!(self, Self::Normal)
    }

    /// The text a trap, panic, limit or error reason carries.
    pub(crate) fn text(&self) -> Option<&str> {
        match self {
            Self::Trap(t) | Self::Panic(t) | Self::Limit(t) | Self::Error(t) => Some(t),
            _ => None,
        }
    }

    /// The reason with its text cut to 4 KiB at a character boundary.
    pub(crate) fn bounded(mut self) -> Self {
        if let Self::Trap(text) | Self::Panic(text) | Self::Limit(text) | Self::Error(text) = &mut self
            && text.len() > MAX_REASON_BYTES
        {
            let mut end = MAX_REASON_BYTES;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        self
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Normal => f.write_str("normal"),
            Self::Killed => f.write_str("killed"),
            Self::Shutdown => f.write_str("shutdown"),
            Self::Noproc => f.write_str("noproc"),
            Self::Noconnection => f.write_str("noconnection"),
            Self::Trap(m) => write!(f, "trap: {m}"),
            Self::Panic(m) => write!(f, "panic: {m}"),
            Self::Limit(m) => write!(f, "limit: {m}"),
            Self::Error(m) => write!(f, "{m}"),
        }
    }
}

/// An ordinary message.
#[derive(Clone, Debug)]
pub struct Message {
    /// The sending process.
    pub sender: Pid,
    /// A number receivers can select on without decoding the payload.
    pub tag: u64,
    /// The bytes, never interpreted by the host.
    pub payload: Bytes,
}

/// Which output stream of a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Stream {
    /// WASI stdout.
    Stdout,
    /// WASI stderr.
    Stderr,
}

/// What a group leader hears about the processes of its group.
#[derive(Clone, Debug)]
pub enum GroupEvent {
    /// A process of the group wrote output.
    Output {
        /// The writer.
        from: Pid,
        /// Which stream.
        stream: Stream,
        /// The bytes, in write order.
        bytes: Bytes,
    },
    /// A process joined the group (announced by its spawner before the spawner can end).
    Joined(Pid),
    /// A process of the group ended; all its output was delivered before this.
    Ended(Pid, ExitReason),
}

/// One entry of a mailbox.
#[derive(Clone, Debug)]
pub enum Incoming {
    /// An ordinary message.
    Message(Message),
    /// An exit signal, delivered as a message because the receiver traps exits.
    Exit {
        /// The process that ended or sent the signal.
        from: Pid,
        /// Why.
        reason: ExitReason,
    },
    /// A monitored process ended.
    Down {
        /// The monitor's reference.
        monitor: Ref,
        /// The monitored process.
        pid: Pid,
        /// Why it ended.
        reason: ExitReason,
    },
    /// A node went up or down (monitor-nodes subscribers).
    Node {
        /// The node's name.
        name: String,
        /// Up (true) or down (false).
        up: bool,
        /// Why it went down.
        reason: String,
    },
    /// Output and membership of a group this process leads (host processes only).
    Group(GroupEvent),
}

/// What a receive accepts; an empty list of selectors accepts anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    /// Anything.
    Any,
    /// Messages with this tag, and down notices of the monitor with this reference.
    Tag(u64),
    /// Messages from this sender.
    Sender(Pid),
    /// Exit signals, down notices and node events.
    Signals,
}

impl Selector {
    /// Whether `entry` satisfies this selector.
    pub fn matches(&self, entry: &Incoming) -> bool {
        match (self, entry) {
            (Self::Any, _) => true,
            (Self::Tag(t), Incoming::Message(m)) => m.tag == *t,
            (Self::Tag(t), Incoming::Down { monitor, .. }) => monitor == t,
            (Self::Sender(p), Incoming::Message(m)) => m.sender == *p,
            (Self::Signals, Incoming::Exit { .. } | Incoming::Down { .. } | Incoming::Node { .. }) => true,
            _ => false,
        }
    }

    /// Whether `entry` satisfies any of `selectors` (all entries if there are none).
    pub fn any_matches(selectors: &[Selector], entry: &Incoming) -> bool {
        selectors.is_empty() || selectors.iter().any(|s| s.matches(entry))
    }
}
