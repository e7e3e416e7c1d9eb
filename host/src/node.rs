//! [`Node`]: one Spore node. It owns the wasm engine, the linker, the code cache, the
//! process table, the distribution layer and the runtime they share; [`NodeInner`] holds what
//! processes share and routes messages between them.
//!
//! # Layout
//! - [`signals`]: links, monitors, exit signals, the end of a process, nodes going up and
//!   down.
//! - [`route`]: frames from peers, delivered to local processes.
//! - [`spawning`]: spawning here and on other nodes, and shipping modules.

mod route;
mod signals;
mod spawning;

pub(crate) use spawning::Parent;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use bytes::Bytes;
use dashmap::DashMap;
use tokio::runtime::Runtime;
use wasmtime::Engine;
use wasmtime::component::Linker;

use crate::busy_wait::BusyWait;
use crate::cache::{CodeCache, LoadedModule, ModuleId};
use crate::config::NodeConfig;
use crate::dist::{Dist, Peer};
use crate::engine::{self, fn_cache::FnCache};
use crate::epoch::{EpochTicker, GuestActivity};
use crate::error::{LoadError, RegisterError, SendError, SpawnError, StartError};
use crate::group::GroupLeader;
use crate::process::entry::{ProcessEntry, ProcessKind};
use crate::process::host::HostProcess;
use crate::process::state::{Grants, ProcState};
use crate::process::table::ProcessTable;
use crate::process::{ExitReason, GroupEvent, Incoming, Message, NodeId, Pid, Ref, Stream};
use crate::proto::{Frame, Query, QueryReply};
use crate::transport::ConnectError;

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
    /// Capabilities granted (on another node, only the clock).
    pub grants: Grants,
    /// The module's bytes, for a spawn on a node that may lack it when this node has not
    /// loaded the module itself (see [`SpawnRequest::from_bytes`]).
    pub code: Option<Bytes>,
}

impl SpawnRequest {
    /// Runs `entry` of the component `bytes`, which need not be loaded here: for spawns on
    /// other nodes, which receive the bytes only if they lack them.
    pub fn from_bytes(bytes: impl Into<Bytes>, entry: impl Into<String>) -> Self {
        let bytes = bytes.into();
        Self { code: Some(bytes.clone()), ..Self::new(ModuleId::of(&bytes), entry) }
    }

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
            code: None,
        }
    }

    /// Sets the encoded arguments.
    pub fn args(mut self, args: impl Into<Bytes>) -> Self {
        self.args = args.into();
        self
    }

    /// The spawn options of this request, linked or monitored as asked.
    pub(crate) fn opts(&self, link: bool, monitor: bool) -> SpawnOpts {
        SpawnOpts {
            link,
            monitor,
            memory_limit: self.memory_limit,
            mailbox_limit: self.mailbox_limit,
            fuel: self.fuel,
        }
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

/// Counters of a node's code cache and module shipping.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Modules this node compiled.
    pub modules_compiled: u64,
    /// Modules whose compiled artifact came from the disk cache.
    pub modules_from_disk: u64,
    /// Module shipments this node sent to others.
    pub modules_shipped: u64,
    /// Module shipments this node received.
    pub modules_received: u64,
    /// Functions Cranelift compiled (and cached) for this node's modules.
    pub functions_compiled: u64,
    /// Functions of this node's modules found compiled already, in the function cache
    /// (identical code in another module, or in an earlier version of the same module).
    pub functions_reused: u64,
    /// `send-after` timers waiting to fire.
    pub pending_timers: u64,
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
/// Processes and connections run on the node's own multi-thread runtime; every method can be called from
/// any thread or runtime. Dropping the node shuts it down (processes end with reason
/// `shutdown`).
pub struct Node {
    inner: Arc<NodeInner>,
    runtime: Option<Runtime>,
    _ticker: EpochTicker,
}

/// What [`NodeInner::try_send`] did with a message.
pub(crate) enum TrySend {
    /// Delivered, queued for another node, or refused: nothing left to wait for.
    Done(Result<(), SendError>),
    /// For a node whose connection's send credit is spent: the payload back, for
    /// [`NodeInner::send_remote`] to wait with.
    Wait(Bytes),
}

/// A pending `send-after` timer. Dropped when it leaves [`NodeInner::timers`] (it fired, was
/// cancelled, or its owner ended): that ends its task and gives its room back to its owner.
pub(crate) struct PendingTimer {
    /// The process that set it, the only one that may cancel it.
    pub setter: Pid,
    /// Dropped to cancel it: its task then ends at once.
    _cancel: tokio::sync::oneshot::Sender<()>,
    /// The process whose [`OwnedTimers`](crate::process::entry::OwnedTimers) count it.
    owner: Weak<ProcessEntry>,
    /// Its key in [`NodeInner::timers`].
    reference: Ref,
    /// Its message's payload bytes.
    bytes: usize,
}

impl PendingTimer {
    /// A timer set by `setter` and counted by `owner` as `reference` with `bytes` of payload,
    /// cancelled by dropping `cancel`.
    pub fn new(
        setter: Pid,
        cancel: tokio::sync::oneshot::Sender<()>,
        owner: &Arc<ProcessEntry>,
        reference: Ref,
        bytes: usize,
    ) -> Self {
        Self { setter, _cancel: cancel, owner: Arc::downgrade(owner), reference, bytes }
    }
}

impl Drop for PendingTimer {
    fn drop(&mut self) {
        let Some(owner) = self.owner.upgrade() else { return };
        let mut signals = owner.signals.lock();
        if let Some(timers) = signals.timers.as_mut()
            && timers.refs.remove(&self.reference)
        {
            timers.bytes -= self.bytes;
        }
    }
}

/// What the processes of a node share.
pub(crate) struct NodeInner {
    pub name: String,
    pub id: NodeId,
    pub incarnation: u32,
    pub config: NodeConfig,
    pub engine: Engine,
    /// Cranelift's per-function compile cache (none with Winch).
    pub fn_cache: Option<Arc<FnCache>>,
    pub linker: Linker<ProcState>,
    pub cache: CodeCache,
    pub table: ProcessTable,
    /// Names of the nodes whose ids this node has seen.
    pub node_names: DashMap<NodeId, String>,
    /// The workers' spin before they sleep; connection handshakes lengthen it.
    pub busy_wait: Arc<BusyWait>,
    /// Pending `send-after` timers by reference. A timer ends with its owner (see
    /// `OwnedTimers`), not with its setter. Never hold one of its locks while locking a
    /// process's `signals`: dropping a timer locks its owner's.
    pub timers: DashMap<Ref, PendingTimer>,
    /// The process runtime.
    pub runtime: tokio::runtime::Handle,
    /// Marked by every poll of a guest, so that the epoch ticker runs only while guests do.
    pub activity: Arc<GuestActivity>,
    /// The distribution layer, when the node has a cookie.
    pub dist: Option<Dist>,
    /// Output acknowledgements of processes whose group leader is on another node.
    pub output_acks: DashMap<Pid, (NodeId, Arc<crate::process::stdio::OutputAcks>)>,
}

impl Node {
    /// Starts a node with `config`.
    pub fn start(config: NodeConfig) -> Result<Node, StartError> {
        // The rule peers check a hello's name against: a node under another name (with a
        // space, say) would start and then be refused by every peer.
        if !crate::proto::valid_node_name(&config.name) {
            return Err(StartError::BadName(config.name.clone()));
        }
        if let Some(dist) = &config.dist {
            dist.check().map_err(StartError::BadConfig)?;
        }
        let (engine, fn_cache) = engine::build(&config)?;
        let linker = crate::api::linker(&engine).map_err(|e| StartError::Engine(format!("{e:#}")))?;
        let workers =
            config.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let busy_wait = Arc::new(BusyWait::new(config.busy_wait));
        let ticker = EpochTicker::start(engine.clone(), config.epoch_tick)?;
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        if busy_wait.enabled() {
            let busy_wait = Arc::clone(&busy_wait);
            builder.on_thread_park(move || busy_wait.before_park());
        }
        #[cfg(target_os = "linux")]
        let epolls_before = busy_wait.enabled().then(crate::busy_wait::epoll_instances);
        let runtime = builder
            .worker_threads(workers.max(1))
            .thread_name("spore-node")
            // Every 61 tasks a busy worker polls the timer and I/O driver (tokio's default).
            // Guests that spin do not make it wait that long (TECH-NOTES pitfall 3): their
            // epoch yields let the driver run first ([`crate::epoch::yield_at_deadlines`]).
            .event_interval(61)
            // Processes and the network share the workers: a message crosses no thread
            // between a guest's send and the socket, nor between the socket and the
            // receiving guest (a separate network thread cost two wake-ups per message: a
            // remote round trip on one CPU took 43 µs with it, 28 µs without).
            .enable_time()
            .enable_io()
            .build()?;
        // The runtime's own epoll instance, for the busy-wait to watch: the one that its
        // build added (if another thread built a runtime meanwhile, which is which is not
        // known, and the spin watches only the node's socket and queue).
        #[cfg(target_os = "linux")]
        if let Some(before) = epolls_before
            && let [epoll] =
                crate::busy_wait::epoll_instances().difference(&before).copied().collect::<Vec<_>>()[..]
        {
            busy_wait.watch_epoll(epoll);
        }
        let id = NodeId::of(&config.name);
        let incarnation = fresh_incarnation();
        let node_names = DashMap::new();
        node_names.insert(id, config.name.clone());
        let dist = match &config.dist {
            None => None,
            Some(dist_config) => {
                let bound = {
                    let _guard = runtime.enter();
                    Dist::bind(
                        dist_config.clone(),
                        &config.name,
                        incarnation,
                        runtime.handle().clone(),
                        config.max_message_bytes,
                    )
                };
                let dist = match bound {
                    Ok(dist) => dist,
                    Err(e) => {
                        // Not dropped: the caller may be in an async context, where dropping
                        // a runtime panics.
                        runtime.shutdown_background();
                        return Err(e);
                    }
                };
                #[cfg(unix)]
                busy_wait.watch(dist.socket_fd());
                Some(dist)
            }
        };
        let inner = Arc::new(NodeInner {
            name: config.name.clone(),
            id,
            incarnation,
            cache: CodeCache::new(&config, &engine),
            table: ProcessTable::new(id, incarnation),
            engine,
            fn_cache,
            linker,
            node_names,
            runtime: runtime.handle().clone(),
            activity: ticker.activity(),
            dist,
            output_acks: DashMap::new(),
            busy_wait,
            timers: DashMap::new(),
            config,
        });
        Dist::start(&inner);
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

    /// The node's runtime, where its processes and connections run. A task spawned on it
    /// calls the node without crossing threads: from another runtime, a call such as
    /// [`connect`](Self::connect) hands its work to one of the node's workers and is woken
    /// back from it, two wake-ups across threads.
    pub fn handle(&self) -> tokio::runtime::Handle {
        self.inner.runtime.clone()
    }

    /// The node's wasmtime engine: its compiler, instance pool and epoch settings. For an
    /// embedder that compiles or instantiates components with the node's own settings
    /// outside its processes (the bench measures wasmtime's share of a spawn with it).
    pub fn engine(&self) -> &wasmtime::Engine {
        &self.inner.engine
    }

    /// Loads (validates, compiles or fetches from the disk cache) a component.
    pub async fn load(&self, bytes: impl Into<Bytes>) -> Result<ModuleId, LoadError> {
        Ok(self.inner.load(bytes.into()).await?.id)
    }

    /// Loads a component from a file.
    pub async fn load_file(&self, path: impl AsRef<std::path::Path>) -> Result<ModuleId, LoadError> {
        let path = path.as_ref().to_owned();
        let shown = path.display().to_string();
        let max = self.inner.config.max_module_bytes;
        let bytes = tokio::task::spawn_blocking(move || crate::cache::read_module(&path, max))
            .await
            .map_err(|e| LoadError::Read { path: shown, error: std::io::Error::other(e) })??;
        self.load(bytes).await
    }

    /// The entries a loaded module exports.
    pub fn entries(&self, module: &ModuleId) -> Option<Vec<String>> {
        self.inner.cache.get(module).map(|m| m.entries.clone())
    }

    /// Spawns a process on this node.
    pub fn spawn(&self, request: SpawnRequest) -> Result<Pid, SpawnError> {
        self.inner.spawn_request(request, Parent::None, false, false).map(|(pid, _)| pid)
    }

    /// Spawns a process on node `node` (this node if it is this node's name), shipping the
    /// module if that node lacks it.
    pub async fn spawn_on(&self, node: &str, request: SpawnRequest) -> Result<Pid, SpawnError> {
        let parent = self.inner.host_process();
        parent.spawn_on(node, request).await
    }

    /// Counters of the code cache and of module shipping.
    pub fn stats(&self) -> NodeStats {
        let dist = self.inner.dist.as_ref();
        let fns = self.inner.fn_cache.as_deref();
        NodeStats {
            modules_compiled: self.inner.cache.compiled.load(Ordering::Relaxed),
            modules_from_disk: self.inner.cache.from_disk.load(Ordering::Relaxed),
            modules_shipped: dist.map_or(0, |d| d.shipped.load(Ordering::Relaxed)),
            modules_received: dist.map_or(0, |d| d.received.load(Ordering::Relaxed)),
            functions_compiled: fns.map_or(0, |c| c.inserts.load(Ordering::Relaxed)),
            functions_reused: fns.map_or(0, |c| c.hits.load(Ordering::Relaxed)),
            pending_timers: self.inner.timers.len() as u64,
        }
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
        self.inner.node_name(node)
    }

    /// Remembers the name of a node id (pids of that node become printable and reachable).
    /// A malformed name (see [`crate::proto::valid_node_name`]) is not remembered.
    pub fn remember_node(&self, node: NodeId, name: &str) {
        self.inner.remember_node(node, name);
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

    /// The UDP address the node listens on, when distributed.
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.inner.dist.as_ref().map(Dist::local_addr)
    }

    /// Connects to node `name` (Erlang's `net_kernel:connect_node`) and waits until the link
    /// is up.
    pub async fn connect(&self, name: &str) -> Result<(), ConnectError> {
        self.inner.connect(name).await
    }

    /// Closes the connection to `name` (Erlang's `disconnect_node`); false if there was none.
    pub fn disconnect(&self, name: &str) -> bool {
        self.inner.disconnect(name)
    }

    /// The visible nodes this node is connected to (Erlang's `nodes()`).
    pub fn nodes(&self) -> Vec<String> {
        self.inner.dist.as_ref().map(Dist::nodes).unwrap_or_default()
    }

    /// Asks node `name` a tool's question (its nodes, its processes).
    pub async fn query(&self, name: &str, query: Query) -> Result<QueryReply, ConnectError> {
        let dist = self.inner.dist.as_ref().ok_or(ConnectError::NotDistributed)?;
        dist.query(&self.inner, name, query).await
    }

    /// Ends every process with reason `shutdown`, tells the peers, and stops the runtimes.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let (Some(rt), Some(_)) = (&self.runtime, &self.inner.dist) {
            // Close the connections first: peers see nodedown with reason shutdown and their
            // links to this node's processes fire with noconnection, as for any lost node
            // (the processes' own ends, below, can no longer race ahead of the close).
            let (done, wait) = std::sync::mpsc::channel();
            let inner = Arc::clone(&self.inner);
            rt.spawn(async move {
                if let Some(d) = &inner.dist {
                    d.shutdown().await;
                }
                let _ = done.send(());
            });
            // Bounded by its own waits: the peers' acknowledgements, then their close.
            let _ = wait.recv_timeout(std::time::Duration::from_secs(2));
        }
        for entry in self.inner.table.all() {
            entry.kill(ExitReason::Shutdown);
        }
        if let Some(rt) = self.runtime.take() {
            // Callable from async code: dropping the runtime's tasks drops the processes'
            // stores, which is all the cleanup an ending node needs.
            rt.shutdown_background();
        }
        // The disk cache is written in the background: wait for its last files, so that a
        // restarted node finds what this one compiled.
        if !self.inner.cache.flush(CACHE_FLUSH_TIMEOUT) {
            tracing::warn!("the code cache's last writes did not finish in time");
        }
    }
}

/// How long a stopping node waits for the disk cache's pending writes.
const CACHE_FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

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
    /// Connects to node `name` and waits until the link is up (every caller's connect).
    pub async fn connect(self: &Arc<Self>, name: &str) -> Result<(), ConnectError> {
        let dist = self.dist.as_ref().ok_or(ConnectError::NotDistributed)?;
        dist.connect(self, name).await
    }

    /// Closes the connection to `name`; false if there was none.
    pub fn disconnect(&self, name: &str) -> bool {
        self.dist.as_ref().is_some_and(|d| d.disconnect(name))
    }

    /// Loads a component, or returns it from the cache.
    pub async fn load(self: &Arc<Self>, bytes: Bytes) -> Result<Arc<LoadedModule>, LoadError> {
        self.cache.load(self, bytes).await
    }

    /// A new host process.
    pub fn host_process(self: &Arc<Self>) -> HostProcess {
        let pid = self.table.new_pid();
        let entry = Arc::new(ProcessEntry::new(pid, pid, ProcessKind::Host, usize::MAX, usize::MAX));
        self.table.insert(Arc::clone(&entry));
        HostProcess::new(Arc::clone(self), entry)
    }

    /// Sends an ordinary message, to a local process or over the network. Waits only when
    /// the connection's send credit is spent (back-pressure).
    pub async fn send(
        self: &Arc<Self>,
        from: Pid,
        to: Pid,
        tag: u64,
        payload: Bytes,
    ) -> Result<(), SendError> {
        match self.try_send(from, to, tag, payload) {
            TrySend::Done(sent) => sent,
            TrySend::Wait(payload) => self.send_remote(from, to, tag, payload).await,
        }
    }

    /// [`NodeInner::send`] without the wait: what needs none is done (delivered, queued for
    /// another node, or refused); a message for a node whose send credit is spent comes
    /// back. The guest's `send` takes this path first, so that its common case builds no
    /// future on the process's stack.
    pub(crate) fn try_send(self: &Arc<Self>, from: Pid, to: Pid, tag: u64, payload: Bytes) -> TrySend {
        if let Err(e) = self.check_size(&payload) {
            return TrySend::Done(Err(e));
        }
        if to.node == self.id {
            return TrySend::Done(self.deliver(from, to, tag, payload));
        }
        let peer = match self.remote_peer(to) {
            Ok(Some(peer)) => peer,
            Ok(None) => return TrySend::Done(Ok(())),
            Err(e) => return TrySend::Done(Err(e)),
        };
        match peer.try_message(Frame::Send { from, to, tag }, payload) {
            // A lost connection drops the message, as in Erlang: links and monitors tell.
            Ok(_) => TrySend::Done(Ok(())),
            Err(payload) => TrySend::Wait(payload),
        }
    }

    /// Refuses a payload over the node's message size limit.
    pub(crate) fn check_size(&self, payload: &Bytes) -> Result<(), SendError> {
        let limit = self.config.max_message_bytes;
        if payload.len() > limit {
            return Err(SendError::TooLarge { size: payload.len(), limit });
        }
        Ok(())
    }

    /// Puts a message in a local mailbox. A pid of a dead process or of an earlier
    /// incarnation: dropped, as in Erlang.
    pub(crate) fn deliver(&self, from: Pid, to: Pid, tag: u64, payload: Bytes) -> Result<(), SendError> {
        let pushed = self.table.with(&to, |target| {
            target.mailbox.push(Incoming::Message(Message { sender: from, tag, payload }))
        });
        match pushed {
            Some(Err(_)) => Err(SendError::MailboxFull(to)),
            Some(Ok(())) | None => Ok(()),
        }
    }

    /// The connection a message to the remote pid `to` goes by; none for a pid of the node's
    /// previous incarnation, whose messages are dropped.
    fn remote_peer(self: &Arc<Self>, to: Pid) -> Result<Option<Arc<Peer>>, SendError> {
        let dist = self.dist.as_ref().ok_or_else(|| SendError::Unreachable(self.node_label(to.node)))?;
        let peer =
            dist.peer_by_id(self, to.node).ok_or_else(|| SendError::Unreachable(self.node_label(to.node)))?;
        Ok(peer.incarnation().is_none_or(|i| i == to.incarnation).then_some(peer))
    }

    /// A message to another node, waiting for send credit (after [`NodeInner::try_send`] gave
    /// it back).
    pub(crate) async fn send_remote(
        self: &Arc<Self>,
        from: Pid,
        to: Pid,
        tag: u64,
        payload: Bytes,
    ) -> Result<(), SendError> {
        let Some(peer) = self.remote_peer(to)? else {
            return Ok(());
        };
        // A lost connection drops the message, as in Erlang: links and monitors tell.
        peer.message(Frame::Send { from, to, tag }, payload).await;
        Ok(())
    }

    /// Sends to `name` on `node` (this node when none).
    pub async fn send_named(
        self: &Arc<Self>,
        from: Pid,
        name: &str,
        node: Option<&str>,
        tag: u64,
        payload: Bytes,
    ) -> Result<(), SendError> {
        if name.len() > crate::process::table::MAX_NAME_BYTES {
            return Err(SendError::NotRegistered(name.chars().take(64).collect()));
        }
        if let Some(node) = node
            && node != self.name
        {
            self.check_size(&payload)?;
            if !crate::proto::handshake::valid_node_name(node) {
                return Err(SendError::Unreachable(node.to_owned()));
            }
            let dist = self.dist.as_ref().ok_or_else(|| SendError::Unreachable(node.to_owned()))?;
            let peer = dist.peer(self, node);
            peer.message(Frame::SendNamed { from, name: name.to_owned(), tag }, payload).await;
            return Ok(());
        }
        let to = self.table.whereis(name).ok_or_else(|| SendError::NotRegistered(name.to_owned()))?;
        self.send(from, to, tag, payload).await
    }

    /// A readable name for a node id.
    pub(crate) fn node_label(&self, node: NodeId) -> String {
        self.node_names.get(&node).map_or_else(|| format!("{node:?}"), |n| n.value().clone())
    }

    /// The name of node `node`, if this node has learned it.
    pub(crate) fn node_name(&self, node: NodeId) -> Option<String> {
        self.node_names.get(&node).map(|n| n.value().clone())
    }

    /// Remembers the name of a node id, if it is a well-formed node name: only remembered
    /// names are ever dialed or looked up in a port mapper (whose protocol is line-based).
    pub(crate) fn remember_node(&self, node: NodeId, name: &str) {
        if !self.node_names.contains_key(&node) && crate::proto::valid_node_name(name) {
            self.node_names.insert(node, name.to_owned());
        }
    }

    /// Delivers a group event to the group leader `leader`. A process that leads its own
    /// group (spawned without a leader) writes to the node's own stdout and stderr, as
    /// Erlang's `user` does, and so does one whose leader is gone (its output is not lost);
    /// other events for a leader that does not collect them are dropped.
    pub fn group_event(self: &Arc<Self>, leader: Pid, event: GroupEvent) {
        if leader.node != self.id {
            self.group_event_remote(leader, event);
            return;
        }
        let target = self.table.get(&leader);
        if let Some(target) = &target
            && target.leads_group.load(Ordering::Acquire)
        {
            // Group events are signals: never refused by the mailbox bound.
            let _ = target.mailbox.push(Incoming::Group(event));
            return;
        }
        // No group leader collects it (the process leads its own group, or a plain host
        // process spawned it): output goes to the node's own stdout and stderr.
        if let GroupEvent::Output { stream, bytes, .. } = &event {
            use std::io::Write;
            let _ = match stream {
                Stream::Stdout => std::io::stdout().write_all(bytes),
                Stream::Stderr => std::io::stderr().write_all(bytes),
            };
        }
    }

    /// The output acknowledgements of process `pid`, whose leader is on another node.
    pub(crate) fn output_acks_for(&self, pid: Pid, leader: Pid) -> Arc<crate::process::stdio::OutputAcks> {
        let acks = Arc::new(crate::process::stdio::OutputAcks::new());
        self.output_acks.insert(pid, (leader.node, Arc::clone(&acks)));
        acks
    }

    /// Sends output frame `seq` of `from` to its group leader on another node.
    pub(crate) fn output_remote(
        self: &Arc<Self>,
        leader: Pid,
        from: Pid,
        stream: Stream,
        bytes: Bytes,
        seq: u64,
    ) {
        let peer = self.dist.as_ref().and_then(|d| d.peer_by_id(self, leader.node));
        let sent = peer.is_some_and(|p| p.output(Frame::Output { leader, from, stream, seq }, bytes));
        if !sent && let Some(acks) = self.output_acks.get(&from) {
            acks.1.detach();
        }
    }

    /// Sends a group event to a leader on another node.
    fn group_event_remote(self: &Arc<Self>, leader: Pid, event: GroupEvent) {
        let Some(dist) = &self.dist else { return };
        let Some(name) = self.node_name(leader.node) else { return };
        let peer = dist.peer(self, &name);
        match event {
            GroupEvent::Output { from, stream, bytes } => {
                peer.output(Frame::Output { leader, from, stream, seq: 0 }, bytes);
            }
            GroupEvent::Joined(member) => {
                let member_node = self.node_label(member.node);
                peer.signal(Frame::GroupJoined { leader, member, member_node });
            }
            GroupEvent::Ended(member, reason) => {
                peer.signal(Frame::GroupEnded { leader, member, reason });
            }
        }
    }
}
