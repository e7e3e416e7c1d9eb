//! Frames from a peer, applied to this node: messages into mailboxes, signals to processes,
//! tools' queries answered. A frame that breaks the protocol is an error that closes the
//! connection it came on, and nothing else.

use std::sync::Arc;

use bytes::Bytes;

use super::spawning::RemoteSpawn;
use super::{NodeInner, SpawnOpts};
use crate::dist::Peer;
use crate::process::entry::ProcessKind;
use crate::process::{ExitReason, GroupEvent, Incoming, Message, NodeId, Pid};
use crate::proto::{Frame, ProcessRow, Query, QueryReply, SpawnHeader};

impl NodeInner {
    /// Applies one frame from `peer`; `Err` names a protocol violation.
    pub(crate) fn handle_frame(
        self: &Arc<Self>,
        peer: &Arc<Peer>,
        frame: Frame,
        payload: Bytes,
    ) -> Result<(), String> {
        let theirs = |pid: &Pid| -> Result<(), String> {
            if pid.node == peer.id { Ok(()) } else { Err(format!("pid {pid:?} is not of the sending node")) }
        };
        let ours = |pid: &Pid| -> Result<(), String> {
            if pid.node == self.id { Ok(()) } else { Err(format!("pid {pid:?} is not of this node")) }
        };
        match frame {
            Frame::Hello(_) => return Err("a second hello".into()),
            Frame::Send { from, to, tag } => {
                theirs(&from)?;
                ours(&to)?;
                self.deliver_or_end_receiver(from, to, tag, payload);
            }
            Frame::SendNamed { from, name, tag } => {
                theirs(&from)?;
                match self.table.whereis(&name) {
                    Some(to) => self.deliver_or_end_receiver(from, to, tag, payload),
                    None => tracing::debug!(%from, name, "message to an unregistered name dropped"),
                }
            }
            Frame::Link { from, to } => {
                theirs(&from)?;
                ours(&to)?;
                let linked = self.table.get(&to).is_some_and(|t| {
                    let mut s = t.signals.lock();
                    s.alive && s.links.insert(from) | true
                });
                if !linked {
                    peer.signal(Frame::Exit {
                        from: to,
                        to: from,
                        reason: ExitReason::Noproc,
                        kill: false,
                        link: true,
                    });
                }
            }
            Frame::Unlink { from, to } => {
                theirs(&from)?;
                ours(&to)?;
                if let Some(t) = self.table.get(&to) {
                    t.signals.lock().links.remove(&from);
                }
            }
            Frame::Exit { from, to, reason, kill, link } => {
                theirs(&from)?;
                ours(&to)?;
                if let Some(t) = self.table.get(&to) {
                    // A link's exit signal counts only while the link exists.
                    if !link || t.signals.lock().links.remove(&from) {
                        self.apply_exit_signal(&t, from, reason.bounded(), kill);
                    }
                }
            }
            Frame::Monitor { watcher, target, monitor } => {
                theirs(&watcher)?;
                ours(&target)?;
                // A reference already in use stays with its watcher: the peer gets a down
                // notice for its own instead.
                let watching = self.table.get(&target).is_some_and(|t| {
                    let mut s = t.signals.lock();
                    let free = s.alive && !s.monitored_by.contains_key(&monitor);
                    if free {
                        s.monitored_by.insert(monitor, watcher);
                    }
                    free
                });
                if !watching {
                    peer.signal(Frame::Down { watcher, pid: target, monitor, reason: ExitReason::Noproc });
                }
            }
            Frame::Demonitor { target, monitor } => {
                ours(&target)?;
                if let Some(t) = self.table.get(&target) {
                    // Only a monitor of the sending node's processes.
                    let mut s = t.signals.lock();
                    if s.monitored_by.get(&monitor).is_some_and(|w| w.node == peer.id) {
                        s.monitored_by.remove(&monitor);
                    }
                }
            }
            Frame::Down { watcher, pid, monitor, reason } => {
                ours(&watcher)?;
                theirs(&pid)?;
                if let Some(w) = self.table.get(&watcher) {
                    // Under the watcher's lock, so that a demonitor finds it (signals.rs).
                    // Only the monitor of that pid: a peer cannot end others' monitors.
                    let mut s = w.signals.lock();
                    if s.monitoring.get(&monitor) == Some(&pid) {
                        s.monitoring.remove(&monitor);
                        let _ = w.mailbox.push(Incoming::Down { monitor, pid, reason: reason.bounded() });
                    }
                }
            }
            Frame::Peers { names } => {
                if names.len() > crate::proto::MAX_PEERS_PER_FRAME {
                    return Err("too many peers in one frame".into());
                }
                if let Some(dist) = &self.dist {
                    dist.mesh(self, names);
                }
            }
            Frame::Query { reference, query } => {
                let reply = match query {
                    Query::Nodes => {
                        QueryReply::Nodes(self.dist.as_ref().map(|d| d.nodes()).unwrap_or_default())
                    }
                    Query::Processes => QueryReply::Processes(self.process_rows()),
                };
                peer.signal(Frame::QueryReply { reference, reply });
            }
            Frame::QueryReply { reference, reply } => {
                if let Some(dist) = &self.dist {
                    dist.answer(reference, reply);
                }
            }
            Frame::Output { leader, from, stream, seq } => {
                ours(&leader)?;
                theirs(&from)?;
                self.group_event(leader, GroupEvent::Output { from, stream, bytes: payload });
                if seq > 0 {
                    peer.signal(Frame::OutputAck { writer: from, seq });
                }
            }
            Frame::OutputAck { writer, seq } => {
                ours(&writer)?;
                if let Some(acks) = self.output_acks.get(&writer) {
                    acks.1.ack(seq);
                }
            }
            Frame::SpawnRequest(header) => {
                let SpawnHeader {
                    reference,
                    module,
                    entry,
                    parent,
                    leader,
                    leader_node,
                    link,
                    monitor,
                    memory_limit,
                    mailbox_limit,
                    fuel,
                    clock,
                    code_bytes,
                } = *header;
                theirs(&parent)?;
                if NodeId::of(&leader_node) != leader.node
                    || !crate::proto::handshake::valid_node_name(&leader_node)
                {
                    return Err(format!("group leader {leader:?} is not of node {leader_node}"));
                }
                self.remember_node(leader.node, &leader_node);
                let opts = SpawnOpts {
                    link,
                    monitor: monitor.is_some(),
                    memory_limit,
                    mailbox_limit: mailbox_limit.map(|n| n as usize),
                    fuel,
                };
                let mut args = payload;
                let code_bytes = code_bytes as usize;
                if code_bytes > args.len() {
                    return Err(format!(
                        "a spawn request of {} bytes claims {code_bytes} of code",
                        args.len()
                    ));
                }
                let code = (code_bytes > 0).then(|| args.split_off(args.len() - code_bytes));
                let request = RemoteSpawn {
                    reference,
                    module,
                    entry,
                    args,
                    code,
                    parent,
                    leader,
                    monitor,
                    opts,
                    clock,
                };
                self.serve_spawn(peer, request);
            }
            Frame::SpawnNeed { reference, module } => {
                if let Some(dist) = &self.dist {
                    dist.ship(peer, reference, module)?;
                }
            }
            Frame::SpawnReply { reference, result } => {
                self.spawn_replied(peer, reference, result)?;
            }
            Frame::GroupJoined { leader, member, member_node } => {
                ours(&leader)?;
                if NodeId::of(&member_node) != member.node
                    || !crate::proto::handshake::valid_node_name(&member_node)
                {
                    return Err(format!("member {member:?} is not of node {member_node}"));
                }
                self.remember_node(member.node, &member_node);
                self.group_event(leader, GroupEvent::Joined(member));
            }
            Frame::GroupEnded { leader, member, reason } => {
                ours(&leader)?;
                theirs(&member)?;
                self.group_event(leader, GroupEvent::Ended(member, reason.bounded()));
            }
        }
        Ok(())
    }

    /// Puts a message from another node (or a timer) in a local mailbox. A full mailbox
    /// cannot refuse it the way a local send is refused: the sender's send returned long
    /// ago. Dropping it
    /// would lose an accepted message with nobody the wiser, so the receiver ends instead,
    /// with a limit reason its links and monitors see (as Erlang ends a process that
    /// exceeds its `max_heap_size`). Only guests have a bound; host processes never fill.
    pub(crate) fn deliver_or_end_receiver(&self, from: Pid, to: Pid, tag: u64, payload: Bytes) {
        self.table.with(&to, |target| {
            if let Err(full) = target.mailbox.push(Incoming::Message(Message { sender: from, tag, payload })) {
                tracing::warn!(%from, %to, "{full}: a message its sender cannot be told about ends the receiver");
                target.kill(ExitReason::Limit(format!("{full}, a message from {from} could not be delivered")));
            }
        });
    }

    /// Live processes, as a tool sees them.
    pub(crate) fn process_rows(&self) -> Vec<ProcessRow> {
        self.table
            .all()
            .into_iter()
            .map(|e| ProcessRow {
                pid: e.pid,
                name: e.name(),
                module: match &e.kind {
                    ProcessKind::Guest { module, entry } => Some((module.to_string(), entry.clone())),
                    ProcessKind::Host => None,
                },
                memory: e.memory.load(std::sync::atomic::Ordering::Relaxed),
                mailbox_len: e.mailbox.len() as u64,
                status: e.status().to_owned(),
            })
            .collect()
    }
}
