//! Links, monitors and exit signals between processes of this node and of others; the end
//! of a process; nodes coming up and going down.

use std::sync::Arc;

use super::NodeInner;
use crate::process::entry::{ProcessEntry, ProcessKind};
use crate::process::{ExitReason, GroupEvent, Incoming, NodeId, Pid, Ref};
use crate::proto::Frame;

impl NodeInner {
    /// Sends a signal frame to the node of `pid`; false if there is no way to it.
    pub(crate) fn signal_to(self: &Arc<Self>, pid: Pid, frame: Frame) -> bool {
        let Some(dist) = &self.dist else { return false };
        dist.peer_by_id(self, pid.node).is_some_and(|p| p.signal(frame))
    }

    /// Waits while the queue to `node` (another node) holds nearly all its send credit, so
    /// that a guest signalling a slow peer in a loop waits instead of growing the queue.
    pub(crate) async fn pace_signals(self: &Arc<Self>, node: NodeId) {
        if node == self.id {
            return;
        }
        let Some(dist) = &self.dist else { return };
        if let Some(peer) = dist.peer_by_id(self, node) {
            peer.pace().await;
        }
    }

    /// Links the live process `me` to `other`.
    pub fn link(self: &Arc<Self>, me: &ProcessEntry, other: Pid) {
        if other == me.pid {
            return;
        }
        me.signals.lock().links.insert(other);
        if other.node != self.id {
            if !self.signal_to(other, Frame::Link { from: me.pid, to: other })
                && me.signals.lock().links.remove(&other)
            {
                self.apply_exit_signal(me, other, ExitReason::Noconnection, false);
            }
            return;
        }
        if let Some(target) = self.table.get(&other) {
            let mut s = target.signals.lock();
            if s.alive {
                s.links.insert(me.pid);
                return;
            }
        }
        me.signals.lock().links.remove(&other);
        self.apply_exit_signal(me, other, ExitReason::Noproc, false);
    }

    /// Removes the link between `me` and `other`.
    pub fn unlink(self: &Arc<Self>, me: &ProcessEntry, other: Pid) {
        me.signals.lock().links.remove(&other);
        if other.node != self.id {
            self.signal_to(other, Frame::Unlink { from: me.pid, to: other });
        } else if let Some(target) = self.table.get(&other) {
            target.signals.lock().links.remove(&me.pid);
        }
    }

    /// `me` monitors `target`; returns the reference of the down notice to come.
    pub fn monitor(self: &Arc<Self>, me: &ProcessEntry, target: Pid) -> Ref {
        let r = self.table.make_ref();
        if target.node != self.id {
            me.signals.lock().monitoring.insert(r, target);
            let sent = self.signal_to(target, Frame::Monitor { watcher: me.pid, target, monitor: r });
            if !sent && me.signals.lock().monitoring.remove(&r).is_some() {
                let _ = me.mailbox.push(Incoming::Down {
                    monitor: r,
                    pid: target,
                    reason: ExitReason::Noconnection,
                });
            }
            return r;
        }
        // The watcher's side first: a target that ends right after it is registered finds
        // the monitor there and sends the notice (`process_ended`).
        me.signals.lock().monitoring.insert(r, target);
        if let Some(t) = self.table.get(&target) {
            let mut s = t.signals.lock();
            if s.alive {
                s.monitored_by.insert(r, me.pid);
                return r;
            }
        }
        if me.signals.lock().monitoring.remove(&r).is_some() {
            let _ = me.mailbox.push(Incoming::Down { monitor: r, pid: target, reason: ExitReason::Noproc });
        }
        r
    }

    /// Stops the monitor `r` of `me`.
    pub fn demonitor(self: &Arc<Self>, me: &ProcessEntry, r: Ref) {
        let Some(target) = me.signals.lock().monitoring.remove(&r) else {
            // Ended already: its notice may wait in the mailbox.
            me.mailbox.remove_down(r);
            return;
        };
        if target.node != self.id {
            self.signal_to(target, Frame::Demonitor { target, monitor: r });
        } else if let Some(t) = self.table.get(&target) {
            t.signals.lock().monitored_by.remove(&r);
        }
    }

    /// Sends an exit signal from `from` to `to`; `untrappable` for kill.
    pub fn exit_signal(self: &Arc<Self>, from: Pid, to: Pid, reason: ExitReason, untrappable: bool) {
        if to.node != self.id {
            self.signal_to(to, Frame::Exit { from, to, reason, kill: untrappable, link: false });
        } else if let Some(target) = self.table.get(&to) {
            self.apply_exit_signal(&target, from, reason, untrappable);
        }
    }

    /// What an exit signal does to a live local process.
    pub(crate) fn apply_exit_signal(
        &self,
        target: &ProcessEntry,
        from: Pid,
        reason: ExitReason,
        untrappable: bool,
    ) {
        let host = matches!(target.kind, ProcessKind::Host);
        if untrappable && !host {
            target.kill(ExitReason::Killed);
        } else if target.traps_exits() {
            let _ = target.mailbox.push(Incoming::Exit { from, reason });
        } else if !reason.is_normal() {
            target.kill(reason);
        }
    }

    /// Everything that follows the end of a process: names, links, monitors, group. Runs
    /// once per process; later calls do nothing.
    pub fn process_ended(self: &Arc<Self>, me: &ProcessEntry, reason: ExitReason) {
        let (name, links, monitored_by, monitoring, timers) = {
            let mut s = me.signals.lock();
            if !s.alive {
                return;
            }
            s.alive = false;
            (
                s.name.take(),
                std::mem::take(&mut s.links),
                std::mem::take(&mut s.monitored_by),
                std::mem::take(&mut s.monitoring),
                s.timers.take(),
            )
        };
        // Its timers end with it (outside its lock: a timer's drop takes it).
        for r in timers.iter().flat_map(|t| t.refs.iter()) {
            self.timers.remove(r);
        }
        let pid = me.pid;
        if let Some(name) = name {
            self.table.unregister_if(&name, pid);
        }
        self.table.remove(&pid);
        me.mailbox.close();
        tracing::debug!(%pid, %reason, "process ended");
        for other in links {
            if other.node != self.id {
                let frame =
                    Frame::Exit { from: pid, to: other, reason: reason.clone(), kill: false, link: true };
                self.signal_to(other, frame);
            } else if let Some(target) = self.table.get(&other) {
                target.signals.lock().links.remove(&pid);
                self.apply_exit_signal(&target, pid, reason.clone(), false);
            }
        }
        for (r, watcher) in monitored_by {
            if watcher.node != self.id {
                let frame = Frame::Down { watcher, pid, monitor: r, reason: reason.clone() };
                self.signal_to(watcher, frame);
            } else if let Some(w) = self.table.get(&watcher) {
                // Under the watcher's lock: a concurrent demonitor either stops this notice
                // or finds it queued and removes it.
                let mut s = w.signals.lock();
                if s.monitoring.remove(&r).is_some() {
                    let _ = w.mailbox.push(Incoming::Down { monitor: r, pid, reason: reason.clone() });
                }
            }
        }
        for (r, target) in monitoring {
            if target.node != self.id {
                self.signal_to(target, Frame::Demonitor { target, monitor: r });
            } else if let Some(t) = self.table.get(&target) {
                t.signals.lock().monitored_by.remove(&r);
            }
        }
        if me.group_leader != pid {
            self.group_event(me.group_leader, GroupEvent::Ended(pid, reason));
        }
    }

    /// A visible node connected: tell the subscribers of node events.
    pub(crate) fn node_up(&self, name: &str) {
        for entry in self.table.all() {
            if entry.signals.lock().monitors_nodes {
                let _ = entry.mailbox.push(Incoming::Node {
                    name: name.to_owned(),
                    up: true,
                    reason: String::new(),
                });
            }
        }
    }

    /// The connection to `node` is gone (or could not be made): every link to its processes
    /// fires with `noconnection`, every monitor delivers a down notice, and, if it was a
    /// visible node that was up, node-event subscribers get a nodedown.
    pub(crate) fn node_down(&self, node: NodeId, name: &str, reason: &str, announce: bool) {
        for acks in self.output_acks.iter() {
            if acks.value().0 == node {
                acks.value().1.detach();
            }
        }
        for entry in self.table.all() {
            let (links, watched) = {
                let mut s = entry.signals.lock();
                let links: Vec<Pid> = s.links.iter().copied().filter(|p| p.node == node).collect();
                for l in &links {
                    s.links.remove(l);
                }
                let monitors: Vec<(Ref, Pid)> =
                    s.monitoring.iter().filter(|(_, p)| p.node == node).map(|(r, p)| (*r, *p)).collect();
                // Queued under the lock, as in `process_ended`, so a demonitor finds them.
                for (r, pid) in monitors {
                    s.monitoring.remove(&r);
                    let _ = entry.mailbox.push(Incoming::Down {
                        monitor: r,
                        pid,
                        reason: ExitReason::Noconnection,
                    });
                }
                s.monitored_by.retain(|_, watcher| watcher.node != node);
                let watched = s.node_monitors.contains(name);
                if watched {
                    s.node_monitors.remove(name);
                }
                (links, (announce && s.monitors_nodes) || watched)
            };
            for other in links {
                self.apply_exit_signal(&entry, other, ExitReason::Noconnection, false);
            }
            if watched {
                let _ = entry.mailbox.push(Incoming::Node {
                    name: name.to_owned(),
                    up: false,
                    reason: reason.to_owned(),
                });
            }
        }
    }

    /// `me` watches node `name` (Erlang's `monitor_node`): a nodedown arrives when the
    /// connection goes, or at once if it cannot be made.
    pub fn monitor_node(self: &Arc<Self>, me: &ProcessEntry, name: &str, on: bool) {
        if !on {
            me.signals.lock().node_monitors.remove(name);
            return;
        }
        if name == self.name {
            return;
        }
        me.signals.lock().node_monitors.insert(name.to_owned());
        match &self.dist {
            Some(dist) if crate::proto::handshake::valid_node_name(name) => {
                dist.peer(self, name);
            }
            _ => {
                me.signals.lock().node_monitors.remove(name);
                let reason = "not distributed".to_owned();
                let _ = me.mailbox.push(Incoming::Node { name: name.to_owned(), up: false, reason });
            }
        }
    }
}
