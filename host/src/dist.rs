//! Distribution: the peers of a node, connections made on first use, frames routed to
//! local processes, and what a lost connection means for links and monitors.
//!
//! One [`Peer`] per remote node name. Its queue outlives connection attempts, so messages
//! sent while connecting go out once the handshake completes. Ordinary messages take send
//! credit (bytes) before they are queued, so a fast sender waits instead of growing memory;
//! signals (links, exits, monitors) never wait, and share the queue so that, per pair of
//! processes, everything arrives in the order sent.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{Semaphore, SemaphorePermit, TryAcquireError, mpsc, oneshot, watch};

use std::sync::atomic::{AtomicU64, Ordering};

use crate::cache::{LoadedModule, ModuleId};
use crate::error::{SpawnError, StartError};
use crate::mapper::{self, FirstRegistration, Mapper};
use crate::node::NodeInner;
use crate::process::{NodeId, Pid, Ref};
use crate::proto::{Frame, Hello, ModuleHeader, PROTOCOL_VERSION, Query, QueryReply};
use crate::transport::peer::{self, Established, Outgoing};
use crate::transport::tls::{Claim, ClusterIdentity};
use crate::transport::{BindError, ConnectError, Transport, close};

/// Bytes of ordinary messages queued per peer before senders wait.
pub const SEND_CREDIT_BYTES: usize = 8 << 20;
/// Credit a message costs beyond its payload (its header and bookkeeping).
const MESSAGE_OVERHEAD: usize = 64;
/// Free send credit below which [`Peer::pace`] waits.
const PACE_BYTES: usize = 64 << 10;

/// The send credit a signal frame costs: its encoded size, about.
fn signal_cost(frame: &Frame) -> u32 {
    let body = match frame {
        Frame::Exit { reason, .. } | Frame::Down { reason, .. } | Frame::GroupEnded { reason, .. } => {
            reason.text().map_or(0, str::len)
        }
        Frame::QueryReply { reply: QueryReply::Nodes(names), .. } => names.iter().map(|n| n.len() + 2).sum(),
        Frame::QueryReply { reply: QueryReply::Processes(rows), .. } => rows
            .iter()
            .map(|r| {
                let module = r.module.as_ref().map_or(0, |(id, entry)| id.len() + entry.len());
                MESSAGE_OVERHEAD + r.name.as_ref().map_or(0, String::len) + module + r.status.len()
            })
            .sum(),
        _ => 0,
    };
    (MESSAGE_OVERHEAD + body).min(SEND_CREDIT_BYTES) as u32
}
/// How long after a failed connection attempt sends to that node are dropped without a new
/// attempt.
const REDIAL_AFTER: Duration = Duration::from_millis(500);
/// How long a stopping node waits for its peers to acknowledge what it sent them.
const DRAIN_WAIT: Duration = Duration::from_millis(500);
/// How long a reader that saw its peer finish the stream waits for the connection's close,
/// whose reason (a shutdown) is the node's down reason.
const FINISH_GRACE: Duration = Duration::from_millis(500);
/// How long a starting node waits to be registered with the port mapper.
const MAPPER_REGISTRATION_WAIT: Duration = Duration::from_secs(2);
/// How long a tool's query may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// The distribution ticks a node accepts: a peer's silence is noticed within a tick, so a
/// shorter one would call peers down on a busy machine, and zero would turn the check off
/// (QUIC reads an idle timeout of zero as none).
pub const TICKS: std::ops::RangeInclusive<Duration> =
    Duration::from_millis(100)..=Duration::from_secs(86_400);

/// How a node joins a cluster.
#[derive(Clone, Debug)]
pub struct DistConfig {
    /// The cluster's shared secret.
    pub cookie: String,
    /// Interface to listen on.
    pub listen_ip: IpAddr,
    /// UDP port range to listen in (Erlang's `inet_dist_listen_min/max`); `(0, 0)` for any.
    pub ports: (u16, u16),
    /// Liveness knob, Erlang's `net_ticktime`: a silent peer is down after this long
    /// (within [`TICKS`]: 100 ms to a day).
    pub tick: Duration,
    /// A hidden node (a tool) connects without joining the mesh.
    pub hidden: bool,
    /// The port mapper's port; `None` to neither register nor look up through it.
    pub mapper_port: Option<u16>,
    /// Addresses of nodes known without the mapper.
    pub addresses: HashMap<String, SocketAddr>,
    /// Bytes each connection may have in flight, unacknowledged
    /// ([`DEFAULT_SEND_WINDOW`](crate::transport::DEFAULT_SEND_WINDOW)): it bounds the queue
    /// a fast sender builds at a slow receiver. Raise it for paths with a large bandwidth
    /// times round-trip time, which a small window cannot fill.
    pub send_window: u64,
}

impl DistConfig {
    /// Why these settings cannot run a node, if they cannot.
    pub(crate) fn check(&self) -> Result<(), String> {
        if !TICKS.contains(&self.tick) {
            return Err(format!(
                "a distribution tick of {:?} is outside {:?} to {:?}",
                self.tick,
                TICKS.start(),
                TICKS.end()
            ));
        }
        if self.mapper_port == Some(0) {
            return Err("the port mapper's port cannot be 0: nodes find the mapper at a port they \
                        all know (None runs without one)"
                .into());
        }
        Ok(())
    }

    /// A configuration with `cookie` and defaults: loopback, any port, a 15 s tick, the
    /// mapper on its default port.
    pub fn new(cookie: impl Into<String>) -> Self {
        Self {
            cookie: cookie.into(),
            listen_ip: IpAddr::from([127, 0, 0, 1]),
            ports: (0, 0),
            tick: Duration::from_secs(15),
            hidden: false,
            mapper_port: Some(mapper::DEFAULT_MAPPER_PORT),
            addresses: HashMap::new(),
            send_window: crate::transport::DEFAULT_SEND_WINDOW,
        }
    }
}

/// Where a connection to a peer stands.
enum Link {
    /// Dialing (`dialing`), or waiting for a connection from the peer that this node has
    /// admitted; frames queue up.
    Connecting { queue: Option<mpsc::UnboundedReceiver<Outgoing>>, dialing: bool },
    /// Handshake done; `drain` asks its writer to finish the stream ([`peer::run_writer`]),
    /// once.
    Up {
        incarnation: u32,
        hidden: bool,
        conn: quinn::Connection,
        drain: Option<oneshot::Sender<peer::Drain>>,
    },
    /// Gone; a new peer replaces it on next use.
    Down,
}

/// What a waiter for a connection learns.
#[derive(Clone, Debug)]
enum Status {
    Pending,
    Up,
    Failed(ConnectError),
}

/// One remote node.
pub(crate) struct Peer {
    pub name: String,
    pub id: NodeId,
    queue: mpsc::UnboundedSender<Outgoing>,
    credit: Arc<Semaphore>,
    link: Mutex<Link>,
    status: watch::Sender<Status>,
    /// Modules whose bytes a spawn request brought to the node (at most
    /// [`MAX_OFFERED`], then forgotten).
    offered: Mutex<HashSet<ModuleId>>,
}

/// Modules a peer remembers having brought to a node.
const MAX_OFFERED: usize = 4096;

impl Peer {
    fn new(name: &str, dialing: bool) -> Arc<Self> {
        let (queue, rx) = mpsc::unbounded_channel();
        Arc::new(Self {
            name: name.to_owned(),
            id: NodeId::of(name),
            queue,
            credit: Arc::new(Semaphore::new(SEND_CREDIT_BYTES)),
            link: Mutex::new(Link::Connecting { queue: Some(rx), dialing }),
            status: watch::channel(Status::Pending).0,
            offered: Mutex::new(HashSet::new()),
        })
    }

    /// Why messages to this peer are refused: its connection attempt's failure (a node
    /// that just failed is not dialed again for [`REDIAL_AFTER`], and its failure stands for
    /// that long), or "connection lost".
    pub fn gone_reason(&self) -> String {
        match &*self.status.borrow() {
            Status::Failed(e) => e.to_string(),
            _ => "connection lost".to_owned(),
        }
    }

    /// Whether `module` is brought to this node for the first time (remembering it).
    pub fn first_offer(&self, module: ModuleId) -> bool {
        let mut offered = self.offered.lock();
        if offered.len() >= MAX_OFFERED {
            offered.clear();
        }
        offered.insert(module)
    }

    /// The peer's incarnation once connected.
    pub fn incarnation(&self) -> Option<u32> {
        match &*self.link.lock() {
            Link::Up { incarnation, .. } => Some(*incarnation),
            _ => None,
        }
    }

    /// The QUIC connection, while up.
    pub fn connection(&self) -> Option<quinn::Connection> {
        match &*self.link.lock() {
            Link::Up { conn, .. } => Some(conn.clone()),
            _ => None,
        }
    }

    fn is_up(&self) -> bool {
        matches!(&*self.link.lock(), Link::Up { .. })
    }

    /// Whether this peer waited for a connection from its node and now starts dialing.
    fn start_dialing(&self) -> bool {
        match &mut *self.link.lock() {
            Link::Connecting { dialing: dialing @ false, .. } => {
                *dialing = true;
                true
            }
            _ => false,
        }
    }

    fn is_visible_up(&self) -> bool {
        matches!(&*self.link.lock(), Link::Up { hidden: false, .. })
    }

    /// Queues a signal frame; false if the peer is gone. Signals never wait (many are sent
    /// where nothing can), but hold the send credit they cost, or what is left of it, so that
    /// a backlog of them makes [`Peer::pace`] wait.
    pub fn signal(&self, frame: Frame) -> bool {
        let cost = signal_cost(&frame).min(self.credit.available_permits() as u32);
        let credit = match self.credit.try_acquire_many(cost) {
            Ok(permit) => {
                // The writer returns it once the frame is written.
                permit.forget();
                cost
            }
            Err(_) => 0,
        };
        self.queue.send(Outgoing { frame, payload: Bytes::new(), credit }).is_ok()
    }

    /// Waits while the frames queued for this peer hold nearly all its send credit: a guest
    /// that keeps sending signals to a slow or stalled peer waits here, after each, instead
    /// of growing the queue without bound.
    pub async fn pace(&self) {
        if self.credit.available_permits() >= PACE_BYTES {
            return;
        }
        // Taken and given back at once: only the wait matters.
        let _ = self.credit.acquire_many(PACE_BYTES as u32).await;
    }

    /// Queues process output: never waits (WASI writes are synchronous) and never dropped
    /// while the peer lives.
    pub fn output(&self, frame: Frame, bytes: Bytes) -> bool {
        self.queue.send(Outgoing { frame, payload: bytes, credit: 0 }).is_ok()
    }

    /// Queues a message, waiting for send credit; false if the peer is gone.
    pub async fn message(&self, frame: Frame, payload: Bytes) -> bool {
        let cost = message_cost(&payload);
        let Ok(permit) = self.credit.acquire_many(cost).await else { return false };
        self.queue_with(permit, Outgoing { frame, payload, credit: cost })
    }

    /// Queues a message if its send credit is there now (false if the peer is gone); gives
    /// the payload back when the message must wait for credit ([`Peer::message`]).
    pub fn try_message(&self, frame: Frame, payload: Bytes) -> Result<bool, Bytes> {
        let cost = message_cost(&payload);
        match self.credit.try_acquire_many(cost) {
            Ok(permit) => Ok(self.queue_with(permit, Outgoing { frame, payload, credit: cost })),
            Err(TryAcquireError::Closed) => Ok(false),
            Err(TryAcquireError::NoPermits) => Err(payload),
        }
    }

    /// Queues a message whose send credit `permit` holds; false if the peer is gone.
    fn queue_with(&self, permit: SemaphorePermit<'_>, outgoing: Outgoing) -> bool {
        // The writer returns the credit once the frame is written.
        permit.forget();
        self.queue.send(outgoing).is_ok()
    }
}

/// The send credit a message of `payload` takes.
fn message_cost(payload: &Bytes) -> u32 {
    (payload.len() + MESSAGE_OVERHEAD).min(SEND_CREDIT_BYTES) as u32
}

/// A spawn this node asked of another, waiting for its reply.
pub(crate) struct PendingSpawn {
    /// The node asked.
    pub peer: String,
    /// The module's bytes, if this node has them (to ship on `SpawnNeed`).
    pub code: Option<Bytes>,
    /// The spawning process.
    pub parent: Pid,
    /// Its group leader.
    pub leader: Pid,
    /// Link parent and child.
    pub link: bool,
    /// The monitor's reference.
    pub monitor: Option<Ref>,
    /// Wakes the parent.
    pub reply: oneshot::Sender<Result<Pid, SpawnError>>,
}

/// Waiters for a module being shipped to this node.
type ModuleWaiters = Vec<oneshot::Sender<Result<Arc<LoadedModule>, SpawnError>>>;

/// Longest module stream header.
const MAX_MODULE_HEADER_BYTES: usize = 1024;

/// The distribution layer of a node.
pub(crate) struct Dist {
    pub config: DistConfig,
    transport: Transport,
    /// By node id: every send to a remote pid looks its peer up here.
    peers: Mutex<HashMap<NodeId, Arc<Peer>>>,
    queries: Mutex<HashMap<u64, oneshot::Sender<QueryReply>>>,
    /// Nodes whose last connection attempt failed, and when.
    failed: Mutex<HashMap<String, (std::time::Instant, Arc<Peer>)>>,
    /// Connections this node admitted and whose handshake is still running, by the node
    /// they claim to come from: this node waits for them instead of dialing that node too.
    /// Locked inside `peers`.
    inbound: Mutex<HashMap<NodeId, u32>>,
    /// Spawns asked of other nodes, by reference.
    pub pending_spawns: Mutex<HashMap<u64, PendingSpawn>>,
    /// Modules asked from other nodes, with the spawns waiting for them.
    pub wanted_modules: Mutex<HashMap<ModuleId, ModuleWaiters>>,
    /// Module shipments sent.
    pub shipped: AtomicU64,
    /// Module shipments received.
    pub received: AtomicU64,
    net: tokio::runtime::Handle,
    max_frame: usize,
    mapper: Option<Mapper>,
}

impl Dist {
    /// The raw descriptor of the node's UDP socket.
    #[cfg(unix)]
    pub(crate) fn socket_fd(&self) -> std::os::fd::RawFd {
        self.transport.socket_fd()
    }

    /// Binds the endpoint and registers with the port mapper. Must run inside `net`.
    pub fn bind(
        config: DistConfig,
        name: &str,
        incarnation: u32,
        net: tokio::runtime::Handle,
        max_message: usize,
    ) -> Result<Self, StartError> {
        let listen = |e: BindError| StartError::Listen(e.to_string());
        let identity =
            ClusterIdentity::from_cookie(config.cookie.as_bytes(), name).map_err(|e| listen(e.into()))?;
        let claim = Claim { node: NodeId::of(name), incarnation };
        let transport = Transport::bind_with(
            &identity,
            claim,
            config.listen_ip,
            config.ports,
            config.tick,
            config.send_window,
        )
        .map_err(listen)?;
        // Hidden nodes register too (as in Erlang): the nodes running processes that a tool
        // spawned send their output back to it.
        let mapper = config.mapper_port.map(|port| {
            let short = name.split_once('@').map_or(name, |(s, _)| s).to_owned();
            let (first, wait) = std::sync::mpsc::channel();
            let mapper = Mapper::start(config.listen_ip, port, short, transport.local_addr().port(), first);
            // Others can find this node once it is registered: wait for that, briefly.
            match wait.recv_timeout(MAPPER_REGISTRATION_WAIT) {
                Ok(FirstRegistration::Registered) => {}
                Ok(FirstRegistration::Taken) => {
                    return Err(StartError::NameTaken { name: name.to_owned(), mapper_port: port });
                }
                Err(_) => tracing::warn!("not registered with the port mapper on port {port} yet"),
            }
            Ok(mapper)
        });
        let mapper = mapper.transpose()?;
        Ok(Self {
            config,
            transport,
            peers: Mutex::new(HashMap::new()),
            queries: Mutex::new(HashMap::new()),
            failed: Mutex::new(HashMap::new()),
            inbound: Mutex::new(HashMap::new()),
            pending_spawns: Mutex::new(HashMap::new()),
            wanted_modules: Mutex::new(HashMap::new()),
            shipped: AtomicU64::new(0),
            received: AtomicU64::new(0),
            net,
            max_frame: max_message + crate::proto::MAX_HEADER_BYTES,
            mapper,
        })
    }

    /// The UDP address this node listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.transport.local_addr()
    }

    /// Starts accepting connections.
    pub fn start(node: &Arc<NodeInner>) {
        let Some(dist) = &node.dist else { return };
        let weak = Arc::downgrade(node);
        dist.net.spawn(accept_loop(weak));
    }

    /// The peer `name`, created (and dialed) if there is none.
    pub fn peer(&self, node: &Arc<NodeInner>, name: &str) -> Arc<Peer> {
        self.peer_named(node, NodeId::of(name), name)
    }

    /// [`Dist::peer`] of `name`, whose id `id` the caller has.
    fn peer_named(&self, node: &Arc<NodeInner>, id: NodeId, name: &str) -> Arc<Peer> {
        let mut peers = self.peers.lock();
        if let Some(p) = peers.get(&id) {
            return Arc::clone(p);
        }
        // A node that just failed to connect is not dialed again at once: sends to it are
        // dropped (and links to it fire) without hammering its host's port mapper.
        if let Some((at, failed)) = self.failed.lock().get(name)
            && at.elapsed() < REDIAL_AFTER
        {
            return Arc::clone(failed);
        }
        // A node whose connection to this one is being accepted is not dialed: the peer
        // waits for that connection (and dials if it fails).
        let dialing = !self.inbound.lock().contains_key(&id);
        let p = Peer::new(name, dialing);
        peers.insert(id, Arc::clone(&p));
        drop(peers);
        node.remember_node(p.id, name);
        if dialing {
            self.net.spawn(dial(Arc::downgrade(node), Arc::clone(&p)));
        }
        p
    }

    /// The peer for node id `id`, if its name is known.
    pub fn peer_by_id(&self, node: &Arc<NodeInner>, id: NodeId) -> Option<Arc<Peer>> {
        if let Some(p) = self.peers.lock().get(&id) {
            return Some(Arc::clone(p));
        }
        let name = node.node_name(id)?;
        Some(self.peer_named(node, id, &name))
    }

    /// Connects to `name` (if not connected) and waits until the link is up.
    pub async fn connect(&self, node: &Arc<NodeInner>, name: &str) -> Result<(), ConnectError> {
        if name == node.name {
            return Err(ConnectError::ToSelf);
        }
        // An explicit connect always dials.
        self.failed.lock().remove(name);
        let peer = self.peer(node, name);
        let mut status = peer.status.subscribe();
        let outcome = status.wait_for(|s| !matches!(s, Status::Pending)).await.map(|s| s.clone());
        match outcome {
            Ok(Status::Up) => Ok(()),
            Ok(Status::Failed(e)) => Err(e),
            Ok(Status::Pending) | Err(_) => Err(ConnectError::NotDistributed),
        }
    }

    /// Closes the connection to `name`; false if there was none.
    pub fn disconnect(&self, name: &str) -> bool {
        let peer = self.peers.lock().get(&NodeId::of(name)).cloned();
        let Some(peer) = peer else { return false };
        let conn = match &*peer.link.lock() {
            Link::Up { conn, .. } => conn.clone(),
            _ => return false,
        };
        conn.close(close::DISCONNECT, b"disconnect");
        true
    }

    /// Visible nodes this node is connected to.
    pub fn nodes(&self) -> Vec<String> {
        let mut names: Vec<String> =
            self.peers.lock().values().filter(|p| p.is_visible_up()).map(|p| p.name.clone()).collect();
        names.sort();
        names
    }

    /// Asks node `name` a tool's question.
    pub async fn query(
        &self,
        node: &Arc<NodeInner>,
        name: &str,
        query: Query,
    ) -> Result<QueryReply, ConnectError> {
        self.connect(node, name).await?;
        let reference = node.table.make_ref();
        let (tx, rx) = oneshot::channel();
        self.queries.lock().insert(reference, tx);
        let peer = self.peer(node, name);
        let lost = || ConnectError::Transport { node: name.to_owned(), reason: "connection lost".into() };
        if !peer.signal(Frame::Query { reference, query }) {
            self.queries.lock().remove(&reference);
            return Err(lost());
        }
        let reply = tokio::time::timeout(QUERY_TIMEOUT, rx).await;
        self.queries.lock().remove(&reference);
        match reply {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) => Err(lost()),
            Err(_) => Err(ConnectError::Transport { node: name.to_owned(), reason: "no answer".into() }),
        }
    }

    /// Closes every connection, telling peers this node shuts down, and gives up its name at
    /// the port mapper.
    pub async fn shutdown(&self) {
        // What was sent before is delivered first: each link's writer writes what is queued,
        // finishes its stream and answers once the peer has acknowledged it all (at most
        // DRAIN_WAIT in all; an unresponsive peer loses what it had not acknowledged).
        let peers: Vec<Arc<Peer>> = self.peers.lock().values().cloned().collect();
        let drained: Vec<oneshot::Receiver<()>> = peers
            .iter()
            .filter_map(|p| {
                let (done, drained) = oneshot::channel();
                let asked = match &mut *p.link.lock() {
                    Link::Up { drain, .. } => drain.take(),
                    _ => None,
                };
                asked?.send(done).ok()?;
                Some(drained)
            })
            .collect();
        let _ = tokio::time::timeout(DRAIN_WAIT, async {
            for d in drained {
                let _ = d.await;
            }
        })
        .await;
        self.transport.close(close::SHUTDOWN, b"shutdown").await;
        // The name is free for a node started under it next.
        if let Some(mapper) = &self.mapper {
            mapper.stop().await;
        }
    }

    fn hello(&self, node: &NodeInner) -> Hello {
        Hello {
            version: PROTOCOL_VERSION,
            name: node.name.clone(),
            incarnation: node.incarnation,
            hidden: self.config.hidden,
        }
    }

    /// The address of `name`: configured, or from the mapper on its host.
    async fn resolve(&self, name: &str) -> Result<SocketAddr, ConnectError> {
        if let Some(addr) = self.config.addresses.get(name) {
            return Ok(*addr);
        }
        let Some(port) = self.config.mapper_port else {
            return Err(ConnectError::Resolve {
                node: name.to_owned(),
                reason: "no address and no port mapper".into(),
            });
        };
        let here = match &self.mapper {
            Some(mapper) => mapper.lookup_here(name).await,
            None => None,
        };
        let found = match here {
            Some(found) => found,
            None => mapper::lookup(name, port).await,
        };
        found.map_err(|e| ConnectError::Resolve { node: name.to_owned(), reason: e.to_string() })
    }

    /// Whether to take a connection from the node `claim` names, decided as its ClientHello
    /// arrives. While it is taken and its handshake runs, this node does not dial that node.
    fn admit(&self, node: &Arc<NodeInner>, claim: Claim) -> Result<Inbound, String> {
        if claim.node == node.id {
            return Err("a node cannot connect to itself".into());
        }
        let peers = self.peers.lock();
        let existing = peers.get(&claim.node).cloned();
        if let Some(existing) = existing {
            match &*existing.link.lock() {
                // A restarted node replaces its previous incarnation.
                Link::Up { incarnation, .. } if *incarnation != claim.incarnation => {}
                Link::Up { .. } => return Err(peer::DUPLICATE.into()),
                // Both dial at once: the connection dialed by the smaller name wins. The
                // other node decides the same, since it is dialing too (it waits for an
                // admitted connection instead of dialing).
                Link::Connecting { dialing: true, .. } if node.name < existing.name => {
                    return Err(peer::DUPLICATE.into());
                }
                _ => {}
            }
        }
        *self.inbound.lock().entry(claim.node).or_insert(0) += 1;
        Ok(Inbound { node: Arc::downgrade(node), id: claim.node })
    }
}

/// A connection this node admitted, until its handshake ends (see [`Dist::admit`]).
struct Inbound {
    node: Weak<NodeInner>,
    id: NodeId,
}

impl Drop for Inbound {
    /// A peer that waited for this connection, which was not installed, dials instead.
    fn drop(&mut self) {
        let Some(node) = self.node.upgrade() else { return };
        let Some(dist) = &node.dist else { return };
        let waiting = {
            let peers = dist.peers.lock();
            let mut inbound = dist.inbound.lock();
            match inbound.get_mut(&self.id) {
                Some(count) if *count > 1 => {
                    *count -= 1;
                    return;
                }
                _ => inbound.remove(&self.id),
            };
            peers.get(&self.id).cloned().filter(|p| p.start_dialing())
        };
        if let Some(peer) = waiting {
            dist.net.spawn(dial(Arc::downgrade(&node), peer));
        }
    }
}

/// Accepts connections until the endpoint closes.
async fn accept_loop(node: Weak<NodeInner>) {
    loop {
        let incoming = {
            let Some(n) = node.upgrade() else { return };
            let Some(dist) = &n.dist else { return };
            // The endpoint outlives this borrow only while the node does.
            let accept = dist.transport.accept();
            match accept.await {
                Some(i) => i,
                None => return,
            }
        };
        tokio::spawn(accept_one(node.clone(), incoming));
    }
}

async fn accept_one(node: Weak<NodeInner>, incoming: quinn::Incoming) {
    let _handshake = node.upgrade().map(|n| n.busy_wait.handshake_started());
    let remote = incoming.remote_address();
    let arriving = match peer::Arriving::new(incoming).await {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(%remote, "refused a connection ({e})");
            return;
        }
    };
    let Some(n) = node.upgrade() else { return };
    let Some(dist) = &n.dist else { return };
    let admitted = match arriving.claim {
        Some(claim) => dist.admit(&n, claim),
        None => Err(peer::NO_CLAIM.to_owned()),
    };
    let inbound = match admitted {
        Ok(inbound) => inbound,
        Err(reason) => {
            let code = if reason == peer::DUPLICATE { close::DUPLICATE } else { close::REFUSED };
            if code == close::REFUSED {
                tracing::warn!(%remote, "refused a peer: {reason}");
            }
            drop(n);
            arriving.refuse(code, &reason).await;
            return;
        }
    };
    match arriving.accept(dist.hello(&n), dist.max_frame).await {
        Ok((conn, est)) => install(&n, conn, est, None),
        Err(reason) => tracing::warn!(%remote, "refused a peer: {reason}"),
    }
    drop(inbound);
}

/// Dials `peer` and installs the connection, or fails the peer.
async fn dial(node: Weak<NodeInner>, peer: Arc<Peer>) {
    let Some(n) = node.upgrade() else { return };
    let Some(dist) = &n.dist else { return };
    let handshake = n.busy_wait.handshake_started();
    let attempt = async {
        let addr = dist.resolve(&peer.name).await?;
        let hello = dist.hello(&n);
        let conn = dist.transport.connect(addr, &peer.name, Claim::of(&hello)).await?;
        let est = peer::dial(&conn, hello, &peer.name, dist.max_frame).await?;
        Ok::<_, ConnectError>((conn, est))
    };
    let attempt = attempt.await;
    drop(handshake);
    match attempt {
        Ok((conn, est)) => install(&n, conn, est, Some(&peer)),
        Err(ConnectError::Duplicate { node: name }) => {
            // The peer's connection to us wins and the accept side installs it; if it never
            // comes, this attempt failed after all.
            let mut status = peer.status.subscribe();
            let up = status.wait_for(|s| matches!(s, Status::Up));
            if tokio::time::timeout(peer::HANDSHAKE_TIMEOUT, up).await.is_err() {
                failed(&n, &peer, ConnectError::Duplicate { node: name });
            }
        }
        Err(e) => {
            tracing::debug!(peer = %peer.name, "connect failed: {e}");
            failed(&n, &peer, e);
        }
    }
}

/// Makes an established connection the peer's link and starts its reader and writer.
fn install(node: &Arc<NodeInner>, conn: quinn::Connection, est: Established, dialed: Option<&Arc<Peer>>) {
    let Some(dist) = &node.dist else { return };
    let Established { peer: hello, send, reader } = est;
    let (peer, replaced) = {
        let id = NodeId::of(&hello.name);
        let mut peers = dist.peers.lock();
        let current = peers.get(&id).cloned();
        match (current, dialed) {
            (Some(c), Some(d)) if Arc::ptr_eq(&c, d) => (c, None),
            // A stale incarnation or a finished attempt: a fresh peer takes its place.
            (Some(c), _) if c.is_up() => {
                let fresh = Peer::new(&hello.name, false);
                peers.insert(id, Arc::clone(&fresh));
                (fresh, Some(c))
            }
            (Some(c), _) => (c, None),
            (None, _) => {
                let fresh = Peer::new(&hello.name, false);
                peers.insert(id, Arc::clone(&fresh));
                (fresh, None)
            }
        }
    };
    if let Some(old) = replaced {
        lost(node, &old, "replaced by a new incarnation");
    }
    let (queue, drained) = {
        let mut link = peer.link.lock();
        let queue = match &mut *link {
            Link::Connecting { queue, .. } => queue.take(),
            _ => None,
        };
        // A link that is up already keeps its connection (and its writer its drain).
        let Some(queue) = queue else {
            drop(link);
            conn.close(close::DUPLICATE, peer::DUPLICATE.as_bytes());
            return;
        };
        let (drain, drained) = oneshot::channel();
        *link = Link::Up {
            incarnation: hello.incarnation,
            hidden: hello.hidden,
            conn: conn.clone(),
            drain: Some(drain),
        };
        (queue, drained)
    };
    node.remember_node(peer.id, &peer.name);
    tracing::debug!(peer = %peer.name, incarnation = hello.incarnation, "node up");
    dist.net.spawn(peer::run_writer(send, queue, Arc::clone(&peer.credit), drained));
    dist.net.spawn(read_loop(Arc::downgrade(node), Arc::clone(&peer), conn.clone(), reader));
    dist.net.spawn(accept_modules(Arc::downgrade(node), conn));
    peer.status.send_replace(Status::Up);
    if !hello.hidden {
        node.node_up(&peer.name);
        if !dist.config.hidden {
            let names: Vec<String> = dist.nodes().into_iter().filter(|n| *n != peer.name).collect();
            peer.signal(Frame::Peers { names });
        }
    }
}

/// Reads frames until the connection ends, then tells the node.
async fn read_loop(
    node: Weak<NodeInner>,
    peer: Arc<Peer>,
    conn: quinn::Connection,
    mut reader: peer::FrameReader,
) {
    let reason = loop {
        match reader.next().await {
            Ok(Some((frame, payload))) => {
                let Some(n) = node.upgrade() else { return };
                let query = matches!(frame, Frame::Query { .. });
                if let Err(violation) = n.handle_frame(&peer, frame, payload) {
                    tracing::warn!(peer = %peer.name, "closing the connection: {violation}");
                    conn.close(close::PROTOCOL, violation.as_bytes());
                    break format!("protocol error: {violation}");
                }
                drop(n);
                // A peer that asks and does not read its answers stops being read, instead of
                // growing their queue here. Only queries (a tool's): pacing the frames that
                // both sides send would let two busy nodes wait on each other.
                if query {
                    peer.pace().await;
                }
            }
            // A stopping peer finishes its stream, then closes the connection with its reason.
            Ok(None) => match tokio::time::timeout(FINISH_GRACE, conn.closed()).await {
                Ok(reason) => break crate::transport::down_reason(&reason),
                Err(_) => break "stream closed".to_owned(),
            },
            Err(peer::ReadError::Decode(e)) => {
                tracing::warn!(peer = %peer.name, "closing the connection: {e}");
                conn.close(close::PROTOCOL, e.to_string().as_bytes());
                break format!("protocol error: {e}");
            }
            Err(peer::ReadError::Truncated) => {
                tracing::warn!(peer = %peer.name, "closing the connection: stream ended inside a frame");
                conn.close(close::PROTOCOL, b"stream ended inside a frame");
                break "protocol error: stream ended inside a frame".to_owned();
            }
            Err(peer::ReadError::Stream(e)) => match conn.close_reason() {
                Some(reason) => break crate::transport::down_reason(&reason),
                None => {
                    conn.close(close::PROTOCOL, b"stream failed");
                    break format!("stream failed: {e}");
                }
            },
        }
    };
    if let Some(n) = node.upgrade() {
        lost(&n, &peer, &reason);
    }
}

/// Ends a peer whose connection attempt failed with `failure` (see [`end_peer`]).
fn failed(node: &Arc<NodeInner>, peer: &Arc<Peer>, failure: ConnectError) {
    let reason = failure.to_string();
    end_peer(node, peer, &reason, Some(failure));
}

/// Ends a peer that was up, whose connection ended for `reason`.
fn lost(node: &Arc<NodeInner>, peer: &Arc<Peer>, reason: &str) {
    end_peer(node, peer, reason, None);
}

/// Ends a peer: removes it, stops its queue and credit, fails the spawns waiting on it and
/// tells the node (which tells subscribers only of a peer that was up: `failure` none). A
/// failed peer leaves the table before its waiters wake, so that a retry after
/// [`REDIAL_AFTER`] dials again; until then it stands for the node, with its failure set
/// before anyone hears of it: a spawn told of the failure and retried at once is given the
/// same reason, not "connection lost".
fn end_peer(node: &Arc<NodeInner>, peer: &Arc<Peer>, reason: &str, failure: Option<ConnectError>) {
    let Some(dist) = &node.dist else { return };
    let was_up = failure.is_none();
    {
        let mut peers = dist.peers.lock();
        if peers.get(&peer.id).is_some_and(|p| Arc::ptr_eq(p, peer)) {
            peers.remove(&peer.id);
        }
    }
    if let Some(failure) = failure {
        let mut failed = dist.failed.lock();
        failed.retain(|_, (at, _)| at.elapsed() < REDIAL_AFTER);
        failed.insert(peer.name.clone(), (std::time::Instant::now(), Arc::clone(peer)));
        drop(failed);
        peer.status.send_replace(Status::Failed(failure));
    }
    let hidden = {
        let mut link = peer.link.lock();
        let hidden = match &*link {
            Link::Up { hidden, conn, .. } => {
                conn.close(close::DISCONNECT, b"gone");
                *hidden
            }
            _ => false,
        };
        *link = Link::Down;
        hidden
    };
    peer.credit.close();
    let failed: Vec<PendingSpawn> = {
        let mut pending = dist.pending_spawns.lock();
        let refs: Vec<u64> = pending.iter().filter(|(_, p)| p.peer == peer.name).map(|(r, _)| *r).collect();
        refs.iter().filter_map(|r| pending.remove(r)).collect()
    };
    for p in failed {
        let _ = p.reply.send(Err(SpawnError::Unreachable(format!("{}: {reason}", peer.name))));
    }
    tracing::debug!(peer = %peer.name, reason, "node down");
    node.node_down(peer.id, &peer.name, reason, was_up && !hidden);
}

/// Receives the module streams a peer opens, one task per stream.
async fn accept_modules(node: Weak<NodeInner>, conn: quinn::Connection) {
    while let Ok(recv) = conn.accept_uni().await {
        tokio::spawn(receive_module(node.clone(), recv));
    }
}

/// Reads one shipped module, checks it against the id it was asked by, compiles it and
/// hands it to the spawns waiting for it.
async fn receive_module(node: Weak<NodeInner>, mut recv: quinn::RecvStream) {
    let Some(n) = node.upgrade() else { return };
    let Some(dist) = &n.dist else { return };
    let max = n.config.max_module_bytes;
    let mut len = [0u8; 4];
    if recv.read_exact(&mut len).await.is_err() {
        return;
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_MODULE_HEADER_BYTES {
        let _ = recv.stop(close::PROTOCOL);
        return;
    }
    let mut header = vec![0u8; len];
    if recv.read_exact(&mut header).await.is_err() {
        return;
    }
    let Ok(header) = postcard::from_bytes::<ModuleHeader>(&header) else {
        let _ = recv.stop(close::PROTOCOL);
        return;
    };
    // Only modules this node asked for are read: nobody can make it compile at will.
    if !dist.wanted_modules.lock().contains_key(&header.module) {
        let _ = recv.stop(close::PROTOCOL);
        return;
    }
    let result = if header.size > max {
        let _ = recv.stop(close::PROTOCOL);
        Err(SpawnError::TooLarge(max))
    } else {
        match recv.read_to_end(header.size as usize).await {
            Err(e) => Err(SpawnError::InvalidModule(format!("module transfer failed: {e}"))),
            Ok(bytes) if bytes.len() as u64 != header.size => Err(SpawnError::InvalidModule(format!(
                "module of {} bytes announced, {} sent",
                header.size,
                bytes.len()
            ))),
            Ok(bytes) => {
                dist.received.fetch_add(1, Ordering::Relaxed);
                n.load_shipped(header.module, Bytes::from(bytes)).await
            }
        }
    };
    dist.settle(&header.module, &result);
}

impl Dist {
    /// Hands the outcome of loading module `id` to the spawns waiting for it.
    pub fn settle(&self, id: &ModuleId, result: &Result<Arc<LoadedModule>, SpawnError>) {
        let waiters = self.wanted_modules.lock().remove(id).unwrap_or_default();
        for w in waiters {
            let _ = w.send(result.clone());
        }
    }

    /// Ships the bytes of the module a peer asked for with `SpawnNeed`.
    pub fn ship(&self, peer: &Arc<Peer>, reference: u64, module: ModuleId) -> Result<(), String> {
        let code = {
            let pending = self.pending_spawns.lock();
            let Some(p) = pending.get(&reference) else { return Ok(()) };
            if p.peer != peer.name {
                return Err("a module request for a spawn the peer was not asked".into());
            }
            p.code.clone()
        };
        let Some(code) = code.filter(|c| ModuleId::of(c) == module) else {
            if let Some(p) = self.pending_spawns.lock().remove(&reference) {
                let _ = p.reply.send(Err(SpawnError::InvalidModule(format!(
                    "{} does not have module {module}, and this node has no bytes of it",
                    peer.name
                ))));
            }
            return Ok(());
        };
        let Some(conn) = peer.connection() else { return Ok(()) };
        self.shipped.fetch_add(1, Ordering::Relaxed);
        self.net.spawn(async move {
            let shipped = async {
                let mut send = conn.open_uni().await.map_err(|e| e.to_string())?;
                let header = postcard::to_stdvec(&ModuleHeader { module, size: code.len() as u64 })
                    .map_err(|e| e.to_string())?;
                send.write_all(&(header.len() as u32).to_le_bytes()).await.map_err(|e| e.to_string())?;
                send.write_all(&header).await.map_err(|e| e.to_string())?;
                send.write_chunk(code).await.map_err(|e| e.to_string())?;
                send.finish().map_err(|e| e.to_string())
            };
            if let Err(e) = shipped.await {
                tracing::debug!("shipping module {module} failed: {e}");
            }
        });
        Ok(())
    }

    /// Delivers a query reply to its waiter.
    pub fn answer(&self, reference: u64, reply: QueryReply) {
        if let Some(tx) = self.queries.lock().remove(&reference) {
            let _ = tx.send(reply);
        }
    }

    /// Connects to the nodes a peer knows, so that the cluster becomes a mesh.
    pub fn mesh(&self, node: &Arc<NodeInner>, names: Vec<String>) {
        if self.config.hidden {
            return;
        }
        for name in names {
            if name != node.name && crate::proto::handshake::valid_node_name(&name) {
                self.peer(node, &name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use super::*;
    use crate::process::ExitReason;
    use crate::proto::ProcessRow;

    #[test]
    fn signals_hold_credit_and_a_backlog_of_them_makes_pace_wait() {
        let peer = Peer::new("slow@localhost", true);
        let to = Pid { node: peer.id, incarnation: 1, index: 1 };
        let from = Pid { node: NodeId::of("here@localhost"), incarnation: 1, index: 1 };
        let mut cx = Context::from_waker(Waker::noop());
        let exit = || Frame::Exit {
            from,
            to,
            reason: ExitReason::Error("x".repeat(4000)),
            kill: false,
            link: false,
        };
        let cost = signal_cost(&exit()) as usize;
        assert!(pin!(peer.pace()).poll(&mut cx).is_ready());
        // Nobody writes: the queue only grows, until its signals hold all but a few bytes.
        for _ in 0..(SEND_CREDIT_BYTES - PACE_BYTES) / cost + 1 {
            assert!(peer.signal(exit()));
        }
        assert!(pin!(peer.pace()).poll(&mut cx).is_pending());
        // A signal still goes out when no credit is left; it just holds none.
        for _ in 0..PACE_BYTES / cost + 1 {
            assert!(peer.signal(exit()));
        }
        assert_eq!(peer.credit.available_permits(), 0);
        // The writer gives credit back as it writes; then pace returns.
        peer.credit.add_permits(PACE_BYTES);
        let mut pace = pin!(peer.pace());
        assert_eq!(pace.as_mut().poll(&mut cx), Poll::Ready(()));
    }

    #[test]
    fn a_message_without_credit_comes_back_and_message_waits_for_credit() {
        let peer = Peer::new("slow@localhost", true);
        let to = Pid { node: peer.id, incarnation: 1, index: 1 };
        let from = Pid { node: NodeId::of("here@localhost"), incarnation: 1, index: 1 };
        let payload = Bytes::from(vec![7; 64 << 10]);
        let cost = message_cost(&payload) as usize;
        // Nobody writes: messages are queued while their credit lasts.
        for _ in 0..SEND_CREDIT_BYTES / cost {
            assert_eq!(peer.try_message(Frame::Send { from, to, tag: 1 }, payload.clone()), Ok(true));
        }
        assert_eq!(peer.try_message(Frame::Send { from, to, tag: 2 }, payload.clone()), Err(payload.clone()));
        // The waiting send goes out once the writer gives credit back.
        let mut cx = Context::from_waker(Waker::noop());
        let mut message = pin!(peer.message(Frame::Send { from, to, tag: 3 }, payload.clone()));
        assert!(message.as_mut().poll(&mut cx).is_pending());
        peer.credit.add_permits(cost);
        assert_eq!(message.as_mut().poll(&mut cx), Poll::Ready(true));
    }

    #[test]
    fn a_query_reply_holds_credit_for_its_size() {
        let peer = Peer::new("asker@localhost", true);
        let row = |index| ProcessRow {
            pid: Pid { node: NodeId::of("here@localhost"), incarnation: 1, index },
            name: Some("a-registered-name".into()),
            module: Some(("ab".repeat(32), "main".into())),
            memory: 65536,
            mailbox_len: 0,
            status: "waiting".into(),
        };
        let reply =
            || Frame::QueryReply { reference: 1, reply: QueryReply::Processes((0..1000).map(row).collect()) };
        let cost = signal_cost(&reply()) as usize;
        assert!(cost > 1000 * 64, "{cost}");
        // A peer that does not read: a few replies hold all the credit, and pace waits.
        for _ in 0..SEND_CREDIT_BYTES / cost + 1 {
            assert!(peer.signal(reply()));
        }
        assert_eq!(peer.credit.available_permits(), 0);
        let mut cx = Context::from_waker(Waker::noop());
        assert!(pin!(peer.pace()).poll(&mut cx).is_pending());
    }
}
