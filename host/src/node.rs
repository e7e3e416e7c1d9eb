//! [`Node`]: one Spore node. It owns the wasm engine, the linker, the code cache, the
//! process table and the runtimes; [`NodeInner`] holds what processes share and routes
//! messages and signals between them.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use dashmap::DashMap;
use tokio::runtime::Runtime;
use wasmtime::Engine;
use wasmtime::component::Linker;

use crate::cache::{CodeCache, LoadedModule, ModuleId};
use crate::config::NodeConfig;
use crate::engine::{self, EpochTicker};
use crate::error::{LoadError, RegisterError, SendError, SpawnError, StartError};
use crate::group::GroupLeader;
use crate::process::entry::{ProcessEntry, ProcessKind};
use crate::process::host::HostProcess;
use crate::process::spawn::{self, Launch};
use crate::process::state::{Grants, ProcState};
use crate::process::table::ProcessTable;
use crate::process::{ExitReason, GroupEvent, Incoming, Message, NodeId, Pid, Ref, Stream};

/// How to start a process.
#[derive(Clone, Debug)]
pub struct SpawnRequest {
    /// The module (loaded on this node).
    pub module: ModuleId,
    /// The entry to run.
    pub entry: String,
    /// The encoded arguments (the SDK's CBOR; see wit/MESSAGES.md).
    pub args: Bytes,
    /// Where its output goes; usually a [`GroupLeader`]'s pid.
    pub group_leader: Option<Pid>,
    /// Memory limit in bytes (default: the node's).
    pub memory_limit: Option<u64>,
    /// Mailbox bound (default: the node's).
    pub mailbox_limit: Option<usize>,
    /// Fuel budget (nodes with fuel metering only).
    pub fuel: Option<u64>,
    /// Capabilities granted.
    pub grants: Grants,
}

impl SpawnRequest {
    /// Runs `entry` of `module` with no arguments, no grants and default limits.
    pub fn new(module: ModuleId, entry: impl Into<String>) -> Self {
        Self {
            module,
            entry: entry.into(),
            args: Bytes::new(),
            group_leader: None,
            memory_limit: None,
            mailbox_limit: None,
            fuel: None,
            grants: Grants::default(),
        }
    }

    /// Sets the encoded arguments.
    pub fn args(mut self, args: impl Into<Bytes>) -> Self {
        self.args = args.into();
        self
    }

    /// Sends output (and membership) to `leader`.
    pub fn group_leader(mut self, leader: Pid) -> Self {
        self.group_leader = Some(leader);
        self
    }
}

/// Options of a spawn made by a process.
#[derive(Clone, Debug, Default)]
pub(crate) struct SpawnOpts {
    pub link: bool,
    pub monitor: bool,
    pub memory_limit: Option<u64>,
    pub mailbox_limit: Option<usize>,
    pub fuel: Option<u64>,
}

/// A snapshot of one process, for `spore ps` and embedders.
#[derive(Clone, Debug)]
pub struct ProcessInfo {
    /// Its pid.
    pub pid: Pid,
    /// Its registered name.
    pub name: Option<String>,
    /// What it runs.
    pub kind: ProcessKind,
    /// Linear memory in bytes.
    pub memory: u64,
    /// Entries waiting in its mailbox.
    pub mailbox_len: usize,
    /// Processes linked to it.
    pub links: Vec<Pid>,
}

/// A running node.
///
/// Processes run on the node's own multi-thread runtime; every method can be called from
/// any thread or runtime. Dropping the node shuts it down (processes end with reason
/// `shutdown`).
pub struct Node {
    inner: Arc<NodeInner>,
    runtime: Option<Runtime>,
    _ticker: EpochTicker,
}

/// What the processes of a node share.
pub(crate) struct NodeInner {
    pub name: String,
    pub id: NodeId,
    pub incarnation: u32,
    pub config: NodeConfig,
    pub engine: Engine,
    pub linker: Linker<ProcState>,
    pub cache: CodeCache,
    pub table: ProcessTable,
    /// Names of the nodes whose ids this node has seen.
    pub node_names: DashMap<NodeId, String>,
    pub runtime: tokio::runtime::Handle,
}

impl Node {
    /// Starts a node with `config`.
    pub fn start(config: NodeConfig) -> Result<Node, StartError> {
        let Some((short, host)) = config.name.split_once('@') else {
            return Err(StartError::BadName(config.name.clone()));
        };
        if short.is_empty() || host.is_empty() || host.contains('@') {
            return Err(StartError::BadName(config.name.clone()));
        }
        let engine = engine::build(&config)?;
        let linker = crate::api::linker(&engine).map_err(|e| StartError::Engine(format!("{e:#}")))?;
        let workers =
            config.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers.max(1))
            .thread_name("spore-proc")
            // Poll the timer and I/O driver often even while guests keep workers busy
            // (TECH-NOTES pitfall 3).
            .event_interval(8)
            .enable_all()
            .build()?;
        let ticker = EpochTicker::start(engine.clone(), config.epoch_tick)?;
        let id = NodeId::of(&config.name);
        let incarnation = fresh_incarnation();
        let node_names = DashMap::new();
        node_names.insert(id, config.name.clone());
        let inner = Arc::new(NodeInner {
            name: config.name.clone(),
            id,
            incarnation,
            cache: CodeCache::new(&config, &engine),
            table: ProcessTable::new(id, incarnation),
            engine,
            linker,
            node_names,
            runtime: runtime.handle().clone(),
            config,
        });
        tracing::debug!(node = %inner.name, incarnation, "node started");
        Ok(Node { inner, runtime: Some(runtime), _ticker: ticker })
    }

    /// Its name, `name@host`.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Its id.
    pub fn id(&self) -> NodeId {
        self.inner.id
    }

    /// Its incarnation (changes at every start).
    pub fn incarnation(&self) -> u32 {
        self.inner.incarnation
    }

    /// Loads (validates, compiles or fetches from the disk cache) a component.
    pub async fn load(&self, bytes: impl Into<Bytes>) -> Result<ModuleId, LoadError> {
        Ok(self.inner.load(bytes.into()).await?.id)
    }

    /// Loads a component from a file.
    pub async fn load_file(&self, path: impl AsRef<std::path::Path>) -> Result<ModuleId, LoadError> {
        let path = path.as_ref();
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|source| LoadError::Read { path: path.display().to_string(), source })?;
        self.load(bytes).await
    }

    /// The entries a loaded module exports.
    pub fn entries(&self, module: &ModuleId) -> Option<Vec<String>> {
        self.inner.cache.get(module).map(|m| m.entries.clone())
    }

    /// Spawns a process on this node.
    pub fn spawn(&self, request: SpawnRequest) -> Result<Pid, SpawnError> {
        self.inner.spawn_request(request, None, false, false).map(|(pid, _)| pid)
    }

    /// A new host process: a pid and a mailbox driven by the caller.
    pub fn host_process(&self) -> HostProcess {
        self.inner.host_process()
    }

    /// A new group leader to collect the output of the processes spawned into its group.
    pub fn group_leader(&self) -> GroupLeader {
        GroupLeader::new(self.inner.host_process())
    }

    /// The process registered as `name`.
    pub fn whereis(&self, name: &str) -> Option<Pid> {
        self.inner.table.whereis(name)
    }

    /// Registers `pid` as `name`.
    pub fn register(&self, name: &str, pid: Pid) -> Result<(), RegisterError> {
        self.inner.table.register(name, pid)
    }

    /// Kills `pid` (untrappable); its links see `killed`.
    pub fn kill(&self, pid: Pid) {
        self.inner.exit_signal(pid, pid, ExitReason::Killed, true);
    }

    /// The name of a node id this node has seen.
    pub fn node_name(&self, node: NodeId) -> Option<String> {
        self.inner.node_names.get(&node).map(|n| n.value().clone())
    }

    /// Remembers the name of a node id (pids of that node become printable and reachable).
    pub fn remember_node(&self, node: NodeId, name: &str) {
        self.inner.node_names.entry(node).or_insert_with(|| name.to_owned());
    }

    /// Live processes of this node.
    pub fn processes(&self) -> Vec<ProcessInfo> {
        self.inner
            .table
            .all()
            .into_iter()
            .map(|e| ProcessInfo {
                pid: e.pid,
                name: e.name(),
                kind: e.kind.clone(),
                memory: e.memory.load(Ordering::Relaxed),
                mailbox_len: e.mailbox.len(),
                links: e.links(),
            })
            .collect()
    }

    /// Number of live processes (guest and host).
    pub fn process_count(&self) -> usize {
        self.inner.table.len()
    }

    /// Ends every process with reason `shutdown` and stops the runtimes.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        for entry in self.inner.table.all() {
            entry.kill(ExitReason::Shutdown);
        }
        if let Some(rt) = self.runtime.take() {
            // Callable from async code: dropping the runtime's tasks drops the processes'
            // stores, which is all the cleanup an ending node needs.
            rt.shutdown_background();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

fn fresh_incarnation() -> u32 {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 4];
    // The OS random source failing leaves the time as the only variation, which still
    // differs between two starts of a node.
    if ring::rand::SystemRandom::new().fill(&mut b).is_err() {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        b = (t.as_nanos() as u32).to_le_bytes();
    }
    u32::from_le_bytes(b).max(1)
}

impl NodeInner {
    /// Loads a component, or returns it from the cache.
    pub async fn load(self: &Arc<Self>, bytes: Bytes) -> Result<Arc<LoadedModule>, LoadError> {
        self.cache.load(self, bytes).await
    }

    /// A new host process.
    pub fn host_process(self: &Arc<Self>) -> HostProcess {
        let pid = self.table.new_pid();
        let entry = Arc::new(ProcessEntry::new(pid, pid, ProcessKind::Host, usize::MAX));
        self.table.insert(Arc::clone(&entry));
        HostProcess::new(Arc::clone(self), entry)
    }

    /// Spawns a host-made request, linked to or monitored by `parent` when asked.
    pub fn spawn_request(
        self: &Arc<Self>,
        request: SpawnRequest,
        parent: Option<&Arc<ProcessEntry>>,
        link: bool,
        monitor: bool,
    ) -> Result<(Pid, Option<Ref>), SpawnError> {
        let module = self
            .cache
            .get(&request.module)
            .ok_or_else(|| SpawnError::InvalidModule(format!("module {} is not loaded", request.module)))?;
        let opts = SpawnOpts {
            link,
            monitor,
            memory_limit: request.memory_limit,
            mailbox_limit: request.mailbox_limit,
            fuel: request.fuel,
        };
        self.spawn_local(
            module,
            request.entry,
            request.args,
            opts,
            parent,
            request.group_leader,
            request.grants,
        )
    }

    /// Spawns a guest process here. `parent` is the spawning process (for link/monitor),
    /// `leader` its group leader (the new process's own pid when none).
    #[allow(clippy::too_many_arguments)]
    pub fn spawn_local(
        self: &Arc<Self>,
        module: Arc<LoadedModule>,
        entry: String,
        args: Bytes,
        opts: SpawnOpts,
        parent: Option<&Arc<ProcessEntry>>,
        leader: Option<Pid>,
        grants: Grants,
    ) -> Result<(Pid, Option<Ref>), SpawnError> {
        if !module.entries.contains(&entry) {
            return Err(SpawnError::UnknownEntry { entry, available: module.entries.join(", ") });
        }
        let memory_limit = opts.memory_limit.unwrap_or(self.config.limits.memory_bytes);
        let max_memory = engine::max_memory_bytes(&self.config);
        if memory_limit > max_memory {
            return Err(SpawnError::Limits(format!(
                "memory limit of {memory_limit} bytes is over the node's maximum of {max_memory}"
            )));
        }
        if opts.fuel.is_some() && !self.config.fuel {
            return Err(SpawnError::Limits("fuel budgets need a node started with fuel metering".into()));
        }
        if args.len() > self.config.max_message_bytes {
            return Err(SpawnError::Limits(format!(
                "arguments of {} bytes are over the message limit of {}",
                args.len(),
                self.config.max_message_bytes
            )));
        }
        let max = self.config.max_processes as usize;
        if self.table.guests.fetch_add(1, Ordering::AcqRel) >= max {
            self.table.guests.fetch_sub(1, Ordering::AcqRel);
            return Err(SpawnError::Quota(format!("{max} processes are running (the node's max_processes)")));
        }
        let pid = self.table.new_pid();
        let leader = leader.unwrap_or(pid);
        let kind = ProcessKind::Guest { module: module.id.to_string(), entry: entry.clone() };
        let mailbox_limit = opts.mailbox_limit.unwrap_or(self.config.limits.mailbox_len);
        let me = Arc::new(ProcessEntry::new(pid, leader, kind, mailbox_limit));
        self.table.insert(Arc::clone(&me));
        let mut monitor = None;
        if let Some(parent) = parent {
            if opts.link {
                parent.signals.lock().links.insert(pid);
                me.signals.lock().links.insert(parent.pid);
            }
            if opts.monitor {
                let r = self.table.make_ref();
                parent.signals.lock().monitoring.insert(r, pid);
                me.signals.lock().monitored_by.insert(r, parent.pid);
                monitor = Some(r);
            }
        }
        self.group_event(leader, GroupEvent::Joined(pid));
        let launch = Launch { module, entry, args, grants, memory_limit, fuel: opts.fuel };
        self.runtime.spawn(spawn::run(Arc::clone(self), me, launch));
        Ok((pid, monitor))
    }

    /// Sends an ordinary message.
    pub fn send(&self, from: Pid, to: Pid, tag: u64, payload: Bytes) -> Result<(), SendError> {
        let limit = self.config.max_message_bytes;
        if payload.len() > limit {
            return Err(SendError::TooLarge { size: payload.len(), limit });
        }
        if to.node != self.id {
            return Err(SendError::Unreachable(self.node_label(to.node)));
        }
        // A pid of a dead process or of an earlier incarnation: dropped, as in Erlang.
        let Some(target) = self.table.get(&to) else {
            return Ok(());
        };
        target
            .mailbox
            .push(Incoming::Message(Message { sender: from, tag, payload }))
            .map_err(|_| SendError::MailboxFull(to))
    }

    /// Sends to `name` on `node` (this node when none).
    pub fn send_named(
        &self,
        from: Pid,
        name: &str,
        node: Option<&str>,
        tag: u64,
        payload: Bytes,
    ) -> Result<(), SendError> {
        if let Some(node) = node
            && node != self.name
        {
            return Err(SendError::Unreachable(node.to_owned()));
        }
        let to = self.table.whereis(name).ok_or_else(|| SendError::NotRegistered(name.to_owned()))?;
        self.send(from, to, tag, payload)
    }

    /// A readable name for a node id.
    fn node_label(&self, node: NodeId) -> String {
        self.node_names.get(&node).map_or_else(|| format!("{node:?}"), |n| n.value().clone())
    }

    /// Delivers a group event to the group leader `leader`. A process that leads its own
    /// group (spawned without a leader) writes to the node's own stdout and stderr, as
    /// Erlang's `user` does; events for a leader that is gone are dropped.
    pub fn group_event(&self, leader: Pid, event: GroupEvent) {
        if let GroupEvent::Output { from, stream, bytes } = &event
            && *from == leader
        {
            use std::io::Write;
            let _ = match stream {
                Stream::Stdout => std::io::stdout().write_all(bytes),
                Stream::Stderr => std::io::stderr().write_all(bytes),
            };
            return;
        }
        if let Some(target) = self.table.get(&leader)
            && matches!(target.kind, ProcessKind::Host)
        {
            // Group events are signals: never refused by the mailbox bound.
            let _ = target.mailbox.push(Incoming::Group(event));
        }
    }

    /// Links the live process `me` to `other`.
    pub fn link(&self, me: &ProcessEntry, other: Pid) {
        if other == me.pid {
            return;
        }
        me.signals.lock().links.insert(other);
        if let Some(target) = self.table.get(&other) {
            let mut s = target.signals.lock();
            if s.alive {
                s.links.insert(me.pid);
                return;
            }
        }
        me.signals.lock().links.remove(&other);
        let reason = if self.table.is_local(&other) { ExitReason::Noproc } else { ExitReason::Noconnection };
        self.apply_exit_signal(me, other, reason, false);
    }

    /// Removes the link between `me` and `other`.
    pub fn unlink(&self, me: &ProcessEntry, other: Pid) {
        me.signals.lock().links.remove(&other);
        if let Some(target) = self.table.get(&other) {
            target.signals.lock().links.remove(&me.pid);
        }
    }

    /// `me` monitors `target`; returns the reference of the down notice to come.
    pub fn monitor(&self, me: &ProcessEntry, target: Pid) -> Ref {
        let r = self.table.make_ref();
        if let Some(t) = self.table.get(&target) {
            let mut s = t.signals.lock();
            if s.alive {
                s.monitored_by.insert(r, me.pid);
                drop(s);
                me.signals.lock().monitoring.insert(r, target);
                return r;
            }
        }
        let reason = if self.table.is_local(&target) { ExitReason::Noproc } else { ExitReason::Noconnection };
        let _ = me.mailbox.push(Incoming::Down { monitor: r, pid: target, reason });
        r
    }

    /// Stops the monitor `r` of `me`.
    pub fn demonitor(&self, me: &ProcessEntry, r: Ref) {
        let Some(target) = me.signals.lock().monitoring.remove(&r) else {
            return;
        };
        if let Some(t) = self.table.get(&target) {
            t.signals.lock().monitored_by.remove(&r);
        }
    }

    /// Sends an exit signal from `from` to `to`; `untrappable` for kill.
    pub fn exit_signal(&self, from: Pid, to: Pid, reason: ExitReason, untrappable: bool) {
        if let Some(target) = self.table.get(&to) {
            self.apply_exit_signal(&target, from, reason, untrappable);
        }
    }

    /// What an exit signal does to a live local process.
    fn apply_exit_signal(&self, target: &ProcessEntry, from: Pid, reason: ExitReason, untrappable: bool) {
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
    pub fn process_ended(&self, me: &ProcessEntry, reason: ExitReason) {
        let (name, links, monitored_by, monitoring) = {
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
            )
        };
        let pid = me.pid;
        if let Some(name) = name {
            self.table.unregister_if(&name, pid);
        }
        self.table.remove(&pid);
        tracing::debug!(%pid, %reason, "process ended");
        for other in links {
            if let Some(target) = self.table.get(&other) {
                target.signals.lock().links.remove(&pid);
                self.apply_exit_signal(&target, pid, reason.clone(), false);
            }
        }
        for (r, watcher) in monitored_by {
            if let Some(w) = self.table.get(&watcher) {
                w.signals.lock().monitoring.remove(&r);
                let _ = w.mailbox.push(Incoming::Down { monitor: r, pid, reason: reason.clone() });
            }
        }
        for (r, target) in monitoring {
            if let Some(t) = self.table.get(&target) {
                t.signals.lock().monitored_by.remove(&r);
            }
        }
        if me.group_leader != pid {
            self.group_event(me.group_leader, GroupEvent::Ended(pid, reason));
        }
    }
}
