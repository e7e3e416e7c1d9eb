//! The wire vocabulary between nodes, without I/O: frames, the handshake, the codec.
//!
//! A connection carries one bidirectional QUIC stream of frames, opened by the dialer. Each
//! frame is `u32 length (LE)` + a postcard-encoded [`Frame`] header + the raw payload bytes
//! of the frames that carry one ([`Frame::Send`], [`Frame::SendNamed`], [`Frame::Output`]),
//! so payloads are never copied through serde. Module bytes travel on unidirectional
//! streams of their own ([`ModuleHeader`]), so small messages never wait behind them. Both sides send a [`Hello`] first; nothing
//! else is accepted before it.
//!
//! # Layout
//! - [`codec`]: encoding into a buffer, decoding from one ([`DecodeError`]); incomplete input
//!   is `Ok(None)`, not an error.
//! - [`handshake`]: the hello exchange as a state machine.

pub mod codec;
pub mod handshake;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

pub use codec::{
    DecodeError, FrameSplitter, MAX_HEADER_BYTES, decode, decode_shared, encode, encode_head, missing,
};
pub use handshake::{Handshake, HandshakeError, Role, valid_node_name};

use crate::cache::ModuleId;
use crate::error::SpawnError;
use crate::process::{ExitReason, Pid, Ref, Stream};

/// The header of a module stream (a unidirectional stream opened by the shipping node
/// after a [`Frame::SpawnNeed`]): `u32 length (LE)` + this, postcard-encoded, then exactly
/// `size` bytes of the component.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleHeader {
    /// The module's id; the receiver checks the bytes hash to it.
    pub module: ModuleId,
    /// Its size in bytes.
    pub size: u64,
}

/// Version of the frame protocol; both hellos must carry the same.
pub const PROTOCOL_VERSION: u16 = 3;

/// The ALPN protocol name of Spore connections.
pub const ALPN: &[u8] = b"spore/1";

/// Longest node name a peer may claim, in bytes.
pub const MAX_NODE_NAME_BYTES: usize = 255;

/// Most node names in one [`Frame::Peers`] (a cluster larger than this is not meshed by
/// gossip alone).
pub const MAX_PEERS_PER_FRAME: usize = 4096;

/// The first frame each side sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// [`PROTOCOL_VERSION`] of the sender.
    pub version: u16,
    /// The sender's node name, which its certificate must name.
    pub name: String,
    /// The sender's incarnation.
    pub incarnation: u32,
    /// A hidden node (a tool) does not join the mesh.
    pub hidden: bool,
}

/// What a tool asks a node ([`Frame::Query`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Query {
    /// The nodes it is connected to (hidden ones excluded).
    Nodes,
    /// Its processes.
    Processes,
}

/// One process, as [`Query::Processes`] reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRow {
    /// The pid.
    pub pid: Pid,
    /// Registered name.
    pub name: Option<String>,
    /// Module id (hex) and entry, or `None` for host processes.
    pub module: Option<(String, String)>,
    /// Linear memory in bytes.
    pub memory: u64,
    /// Entries waiting in its mailbox.
    pub mailbox_len: u64,
    /// `running`, `waiting` (in receive), `sleeping`, or `host`.
    pub status: String,
}

/// The answer to a [`Query`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueryReply {
    /// Connected node names.
    Nodes(Vec<String>),
    /// Live processes.
    Processes(Vec<ProcessRow>),
}

/// A frame header. Pids in frames belong to one of the two nodes of the connection, so
/// their node ids resolve on both sides.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    /// The handshake.
    Hello(Hello),
    /// An ordinary message to a pid of the receiving node; the payload follows.
    Send {
        /// The sender (on the sending node).
        from: Pid,
        /// The receiver.
        to: Pid,
        /// The message tag.
        tag: u64,
    },
    /// A message to a name registered on the receiving node; the payload follows.
    SendNamed {
        /// The sender.
        from: Pid,
        /// The registered name.
        name: String,
        /// The message tag.
        tag: u64,
    },
    /// `from` links to `to`.
    Link {
        /// The linking process (sending node).
        from: Pid,
        /// The linked process (receiving node).
        to: Pid,
    },
    /// `from` removes its link to `to`.
    Unlink {
        /// The unlinking process.
        from: Pid,
        /// The other end.
        to: Pid,
    },
    /// An exit signal.
    Exit {
        /// The process that ended or sent it.
        from: Pid,
        /// The receiver.
        to: Pid,
        /// Why.
        reason: ExitReason,
        /// An untrappable kill.
        kill: bool,
        /// The signal comes from a link (which the receiver removes).
        link: bool,
    },
    /// `watcher` monitors `target`.
    Monitor {
        /// The watcher (sending node).
        watcher: Pid,
        /// The watched process (receiving node).
        target: Pid,
        /// The monitor's reference (made by the watcher's node).
        monitor: Ref,
    },
    /// Removes a monitor on `target`.
    Demonitor {
        /// The watched process (receiving node).
        target: Pid,
        /// The monitor's reference.
        monitor: Ref,
    },
    /// A monitored process ended.
    Down {
        /// The watcher (receiving node).
        watcher: Pid,
        /// The process that ended (sending node).
        pid: Pid,
        /// The monitor's reference.
        monitor: Ref,
        /// Why it ended.
        reason: ExitReason,
    },
    /// The visible nodes the sender is connected to, so that the cluster becomes a mesh.
    Peers {
        /// Their names.
        names: Vec<String>,
    },
    /// A tool's question.
    Query {
        /// Echoed in the reply.
        reference: u64,
        /// The question.
        query: Query,
    },
    /// The answer to a [`Frame::Query`].
    QueryReply {
        /// The question's reference.
        reference: u64,
        /// The answer.
        reply: QueryReply,
    },
    /// Output of a process for its group leader on the receiving node; the bytes follow.
    Output {
        /// The group leader.
        leader: Pid,
        /// The writer.
        from: Pid,
        /// Which stream.
        stream: Stream,
        /// The writer's count of output frames, acknowledged with [`Frame::OutputAck`].
        seq: u64,
    },
    /// The group leader's node has delivered `writer`'s output up to `seq`. Writers wait for
    /// it, so output keeps the causal order of the program, as Erlang's io does.
    OutputAck {
        /// The writer (receiving node).
        writer: Pid,
        /// The last delivered frame.
        seq: u64,
    },
    /// Spawn `entry` of `module` on the receiving node; the arguments follow, then the
    /// module's bytes if `code_bytes` is not 0 (the sender's first spawn of a small module
    /// on that node: no round trip to ask for it). The receiver answers
    /// [`Frame::SpawnNeed`] if it lacks the module and got no bytes, then
    /// [`Frame::SpawnReply`].
    ///
    /// Boxed: it is the largest frame, and unboxed it would make every frame (each message
    /// queued for a connection's writer) as large as itself.
    SpawnRequest(Box<SpawnHeader>),
    /// The receiver does not have `module`: send its bytes on a stream of their own.
    SpawnNeed {
        /// The spawn request's reference.
        reference: u64,
        /// The module wanted.
        module: ModuleId,
    },
    /// The outcome of a spawn request.
    SpawnReply {
        /// The spawn request's reference.
        reference: u64,
        /// The new pid, or why not.
        result: Result<Pid, SpawnError>,
    },
    /// A process joined the group of `leader`.
    GroupJoined {
        /// The group leader (receiving node).
        leader: Pid,
        /// The new member, on any node.
        member: Pid,
        /// The member's node name, which the leader's node may not know yet.
        member_node: String,
    },
    /// A member of the group of `leader` ended (after all its output).
    GroupEnded {
        /// The group leader (receiving node).
        leader: Pid,
        /// The member (sending node).
        member: Pid,
        /// Why it ended.
        reason: ExitReason,
    },
}

/// The header of a [`Frame::SpawnRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpawnHeader {
    /// Echoed in the answers.
    pub reference: u64,
    /// The module.
    pub module: ModuleId,
    /// The entry.
    pub entry: String,
    /// The spawning process (sending node).
    pub parent: Pid,
    /// The group leader the new process joins (any node).
    pub leader: Pid,
    /// The group leader's node name.
    pub leader_node: String,
    /// Link parent and child.
    pub link: bool,
    /// Monitor the child with this reference (made by the parent's node).
    pub monitor: Option<Ref>,
    /// Memory limit in bytes.
    pub memory_limit: Option<u64>,
    /// Mailbox bound.
    pub mailbox_limit: Option<u32>,
    /// Fuel budget.
    pub fuel: Option<u64>,
    /// Grant real clocks (environment and files never cross nodes).
    pub clock: bool,
    /// Bytes of the module at the end of the payload, after the arguments (0: none).
    pub code_bytes: u32,
}

impl Frame {
    /// Whether a payload follows this header.
    pub fn has_payload(&self) -> bool {
        matches!(
            self,
            Frame::Send { .. } | Frame::SendNamed { .. } | Frame::Output { .. } | Frame::SpawnRequest(_)
        )
    }
}
