//! Processes driven by Rust code: an embedding application or the CLI talks to guests
//! through a [`HostProcess`], which has a pid and a mailbox like any process.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;

use super::entry::ProcessEntry;
use super::{ExitReason, Incoming, Pid, Ref, Selector};
use crate::error::{SendError, SpawnError};
use crate::node::NodeInner;
use crate::node::{Parent, SpawnRequest};
use crate::transport::ConnectError;

/// A process whose code is the caller's Rust code.
///
/// It traps exits: exit signals from linked processes arrive as [`Incoming::Exit`] instead
/// of ending it. Dropping it ends the process with reason normal.
pub struct HostProcess {
    node: Arc<NodeInner>,
    entry: Arc<ProcessEntry>,
}

impl HostProcess {
    pub(crate) fn new(node: Arc<NodeInner>, entry: Arc<ProcessEntry>) -> Self {
        entry.trap_exit.store(true, Ordering::Release);
        Self { node, entry }
    }

    /// Its pid.
    pub fn pid(&self) -> Pid {
        self.entry.pid
    }

    /// Sends `payload` with `tag` to `to`, on this node or another. Waits only when the
    /// connection to `to`'s node has too much queued (back-pressure).
    pub async fn send(&self, to: Pid, tag: u64, payload: impl Into<Bytes>) -> Result<(), SendError> {
        self.node.send(self.entry.pid, to, tag, payload.into()).await
    }

    /// Sends to the process registered as `name` on `node` (this node when `None`).
    pub async fn send_named(
        &self,
        name: &str,
        node: Option<&str>,
        tag: u64,
        payload: impl Into<Bytes>,
    ) -> Result<(), SendError> {
        self.node.send_named(self.entry.pid, name, node, tag, payload.into()).await
    }

    /// Connects to node `name` (Erlang's `net_kernel:connect_node` from a process) and waits
    /// until the link is up. Awaited in a task on the node's runtime ([`Node::handle`]), it
    /// crosses no thread; from another runtime, as [`Node::connect`] does, it pays two
    /// wake-ups across threads (handing the dial over, and being told it is up).
    ///
    /// [`Node::handle`]: crate::Node::handle
    /// [`Node::connect`]: crate::Node::connect
    pub async fn connect(&self, name: &str) -> Result<(), ConnectError> {
        self.node.connect(name).await
    }

    /// Closes the connection to `name` (Erlang's `disconnect_node`); false if there was none.
    pub fn disconnect(&self, name: &str) -> bool {
        self.node.disconnect(name)
    }

    /// Subscribes to nodeup and nodedown events ([`Incoming::Node`]).
    pub fn monitor_nodes(&self, on: bool) {
        self.entry.signals.lock().monitors_nodes = on;
    }

    /// Watches node `name`: a nodedown arrives when its connection goes.
    pub fn monitor_node(&self, name: &str, on: bool) {
        self.node.monitor_node(&self.entry, name, on);
    }

    /// Watches the node of `pid` (see [`HostProcess::monitor_node`]), if this node knows its
    /// name (it does for any pid that came over a connection); false if it does not.
    pub(crate) fn monitor_node_of(&self, pid: Pid) -> bool {
        self.node.node_name(pid.node).inspect(|name| self.monitor_node(name, true)).is_some()
    }

    /// Waits for the oldest entry matching `selectors` (anything if empty), at most
    /// `timeout`. A process receives in one place at a time, as in Erlang (hence `&mut`): a
    /// mailbox wakes one waiter per message, and a second receive waiting with other
    /// selectors could miss its message and wait forever.
    pub async fn receive(&mut self, selectors: &[Selector], timeout: Option<Duration>) -> Option<Incoming> {
        self.entry.mailbox.receive(selectors, super::mailbox::deadline_after(timeout)).await
    }

    /// Spawns a process linked to this one, atomically (its end arrives as
    /// [`Incoming::Exit`]).
    pub fn spawn_link(&self, request: SpawnRequest) -> Result<Pid, SpawnError> {
        self.spawn_with(request, true, false).map(|(pid, _)| pid)
    }

    /// Spawns a process monitored by this one, atomically; returns its pid and the monitor's
    /// reference.
    pub fn spawn_monitor(&self, request: SpawnRequest) -> Result<(Pid, Ref), SpawnError> {
        let (pid, monitor) = self.spawn_with(request, false, true)?;
        Ok((pid, monitor.unwrap_or_default()))
    }

    fn spawn_with(
        &self,
        request: SpawnRequest,
        link: bool,
        monitor: bool,
    ) -> Result<(Pid, Option<Ref>), SpawnError> {
        self.node.spawn_request(request, Parent::Local(&self.entry), link, monitor)
    }

    /// Spawns on node `node`, shipping the module if that node lacks it. The child joins
    /// this process's group: its output comes here (a [`GroupLeader`](crate::GroupLeader)'s
    /// process collects it); the request's own group leader is not used.
    pub async fn spawn_on(&self, node: &str, request: SpawnRequest) -> Result<Pid, SpawnError> {
        self.spawn_on_with(node, request, false, false).await.map(|(pid, _)| pid)
    }

    /// [`HostProcess::spawn_on`], linked atomically.
    pub async fn spawn_link_on(&self, node: &str, request: SpawnRequest) -> Result<Pid, SpawnError> {
        self.spawn_on_with(node, request, true, false).await.map(|(pid, _)| pid)
    }

    /// [`HostProcess::spawn_on`], monitored atomically; returns the monitor's reference too.
    pub async fn spawn_monitor_on(
        &self,
        node: &str,
        request: SpawnRequest,
    ) -> Result<(Pid, Ref), SpawnError> {
        let (pid, monitor) = self.spawn_on_with(node, request, false, true).await?;
        Ok((pid, monitor.unwrap_or_default()))
    }

    async fn spawn_on_with(
        &self,
        node: &str,
        request: SpawnRequest,
        link: bool,
        monitor: bool,
    ) -> Result<(Pid, Option<Ref>), SpawnError> {
        if node == self.node.name {
            let request = SpawnRequest { group_leader: Some(self.entry.group_leader), ..request };
            return self.spawn_with(request, link, monitor);
        }
        let opts = request.opts(link, monitor);
        let clock = request.grants.clock;
        let node_name = node;
        self.node
            .spawn_remote(
                node_name,
                request.module,
                request.code,
                request.entry,
                request.args,
                opts,
                &self.entry,
                clock,
            )
            .await
    }

    /// Links to `pid`.
    pub fn link(&self, pid: Pid) {
        self.node.link(&self.entry, pid);
    }

    /// Monitors `pid`; a [`Incoming::Down`] with the returned reference arrives when it ends.
    pub fn monitor(&self, pid: Pid) -> Ref {
        self.node.monitor(&self.entry, pid)
    }

    /// Sends an exit signal to `pid`.
    pub fn exit(&self, pid: Pid, reason: ExitReason) {
        self.node.exit_signal(self.entry.pid, pid, reason, false);
    }

    /// Kills `pid` (untrappable).
    pub fn kill(&self, pid: Pid) {
        self.node.exit_signal(self.entry.pid, pid, ExitReason::Killed, true);
    }

    /// Makes it receive its group's events (see [`GroupLeader`](crate::GroupLeader)).
    pub(crate) fn lead_group(&self) {
        self.entry.leads_group.store(true, Ordering::Release);
    }

    /// Entries waiting in the mailbox.
    pub fn pending(&self) -> usize {
        self.entry.mailbox.len()
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        self.node.process_ended(&self.entry, ExitReason::Normal);
    }
}
