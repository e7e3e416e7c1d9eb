//! Group leaders: where the output of a group of processes arrives, and how a caller knows
//! that every process of the group has ended and all their output has arrived.
//!
//! A process spawned by another joins its spawner's group. The spawner's node announces the
//! new member ([`GroupEvent::Joined`]) before the spawner can end, and each member's node
//! sends its output and then its end ([`GroupEvent::Ended`]) in order, so the group is
//! complete exactly when every announced member has ended.
//!
//! The leader watches the nodes its members run on: when the connection to one goes, its
//! members there will send nothing more, and they end here with reason `noconnection`, as
//! their links would fire (Erlang's group leader sees the same through its links).

use std::collections::{HashSet, VecDeque};
use std::io::Write;
use std::time::Duration;

use crate::process::host::HostProcess;
use crate::process::{ExitReason, GroupEvent, Incoming, NodeId, Pid, Stream};

/// A host process acting as group leader, tracking the group's members.
pub struct GroupLeader {
    process: HostProcess,
    live: HashSet<Pid>,
    /// Members whose end arrived before their announcement (they ran on another node).
    ended_early: HashSet<Pid>,
    joined_any: bool,
    /// Other nodes that members run on, watched for their connection's loss.
    watched: HashSet<NodeId>,
    /// Ends of members whose node was lost, to be handed out.
    lost: VecDeque<GroupEvent>,
}

impl GroupLeader {
    pub(crate) fn new(process: HostProcess) -> Self {
        process.lead_group();
        Self {
            process,
            live: HashSet::new(),
            ended_early: HashSet::new(),
            joined_any: false,
            watched: HashSet::new(),
            lost: VecDeque::new(),
        }
    }

    /// Its pid: pass it as the group leader of spawns.
    pub fn pid(&self) -> Pid {
        self.process.pid()
    }

    /// The host process behind it (to send or link from it).
    pub fn process(&self) -> &HostProcess {
        &self.process
    }

    /// The members that have not ended yet.
    pub fn members(&self) -> Vec<Pid> {
        self.live.iter().copied().collect()
    }

    /// True once at least one member joined and every member has ended.
    pub fn is_done(&self) -> bool {
        self.joined_any && self.live.is_empty()
    }

    /// The next event of the group, or `None` once the group is done.
    pub async fn next(&mut self) -> Option<GroupEvent> {
        loop {
            if let Some(event) = self.lost.pop_front() {
                return Some(event);
            }
            if self.is_done() {
                return None;
            }
            let event = match self.process.receive(&[], None).await {
                Some(Incoming::Group(event)) => event,
                Some(Incoming::Node { name, up: false, .. }) => {
                    self.node_lost(NodeId::of(&name));
                    continue;
                }
                _ => continue,
            };
            match &event {
                GroupEvent::Joined(pid) => {
                    self.joined_any = true;
                    if !self.ended_early.remove(pid) {
                        self.live.insert(*pid);
                        self.watch_node_of(*pid);
                    }
                }
                GroupEvent::Ended(pid, _) => {
                    if !self.live.remove(pid) {
                        self.ended_early.insert(*pid);
                    }
                }
                GroupEvent::Output { .. } => {}
            }
            return Some(event);
        }
    }

    /// Watches the node of member `pid` for its loss, once per node; a node whose name is
    /// not known yet is tried again at its next member.
    fn watch_node_of(&mut self, pid: Pid) {
        if pid.node == self.process.pid().node || self.watched.contains(&pid.node) {
            return;
        }
        if self.process.monitor_node_of(pid) {
            self.watched.insert(pid.node);
        }
    }

    /// The connection to `node` is gone: its members end with `noconnection`.
    fn node_lost(&mut self, node: NodeId) {
        self.watched.remove(&node);
        let lost: Vec<Pid> = self.live.iter().copied().filter(|p| p.node == node).collect();
        for pid in lost {
            self.live.remove(&pid);
            self.lost.push_back(GroupEvent::Ended(pid, ExitReason::Noconnection));
        }
    }

    /// Prints the group's output to `out` and `err` (whole lines, as Erlang's shell shows
    /// them) until every member has ended; returns how `first` ended.
    pub async fn print_until_done(
        &mut self,
        first: Pid,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> ExitReason {
        let mut lines = LineAssembler::default();
        let mut first_reason = ExitReason::Normal;
        while let Some(event) = self.next().await {
            if let GroupEvent::Ended(pid, reason) = &event
                && *pid == first
            {
                first_reason = reason.clone();
            }
            lines.print(event, out, err);
        }
        let _ = out.flush();
        let _ = err.flush();
        first_reason
    }

    /// Kills every member, and each one that joins meanwhile (a member's spawn may be on
    /// its way), then prints the group's output until every member's end has come home, as
    /// [`GroupLeader::print_until_done`] does: once it returns, no member is left running,
    /// wherever it ran. Gives up after `within`, returning the members whose end did not
    /// come (their node may be unreachable).
    pub async fn kill_all(&mut self, out: &mut dyn Write, err: &mut dyn Write, within: Duration) -> Vec<Pid> {
        for member in self.members() {
            self.process.kill(member);
        }
        let mut lines = LineAssembler::default();
        let drained = tokio::time::timeout(within, async {
            while let Some(event) = self.next().await {
                if let GroupEvent::Joined(pid) = &event {
                    self.process.kill(*pid);
                }
                lines.print(event, out, err);
            }
        })
        .await;
        let _ = out.flush();
        let _ = err.flush();
        if drained.is_ok() { Vec::new() } else { self.members() }
    }
}

/// Keeps each process's partial last line until its newline arrives, so that lines of
/// different processes never interleave mid-line.
#[derive(Default)]
struct LineAssembler {
    partial: std::collections::HashMap<(Pid, Stream), Vec<u8>>,
}

impl LineAssembler {
    /// Prints what `event` brings: output as whole lines, an end as its process's last line.
    fn print(&mut self, event: GroupEvent, out: &mut dyn Write, err: &mut dyn Write) {
        match event {
            GroupEvent::Output { from, stream, bytes } => {
                let sink: &mut dyn Write = if stream == Stream::Stdout { out } else { err };
                self.write(from, stream, &bytes, sink);
            }
            GroupEvent::Ended(pid, _) => self.flush(pid, out, err),
            GroupEvent::Joined(_) => {}
        }
    }

    fn write(&mut self, from: Pid, stream: Stream, bytes: &[u8], sink: &mut dyn Write) {
        let buf = self.partial.entry((from, stream)).or_default();
        buf.extend_from_slice(bytes);
        if let Some(last_nl) = buf.iter().rposition(|&b| b == b'\n') {
            let _ = sink.write_all(&buf[..=last_nl]);
            let _ = sink.flush();
            buf.drain(..=last_nl);
        }
    }

    fn flush(&mut self, pid: Pid, out: &mut dyn Write, err: &mut dyn Write) {
        for stream in [Stream::Stdout, Stream::Stderr] {
            if let Some(rest) = self.partial.remove(&(pid, stream))
                && !rest.is_empty()
            {
                let sink: &mut dyn Write = if stream == Stream::Stdout { out } else { err };
                let _ = sink.write_all(&rest);
                let _ = sink.write_all(b"\n");
            }
        }
    }
}
