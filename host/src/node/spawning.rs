//! Spawning: here, and on other nodes by shipping the module's bytes when the target lacks
//! them. The first spawn of a small module on a node brings its bytes in the request; else
//! the target answers a spawn request with `SpawnNeed` when it does not have the module,
//! and the bytes then travel once, on a stream of their own. Either way the target checks
//! they hash to the module's id before compiling them.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};
use tokio::sync::oneshot;

use super::{NodeInner, SpawnOpts, SpawnRequest};
use crate::cache::{LoadedModule, ModuleId};
use crate::dist::{Peer, PendingSpawn};
use crate::engine;
use crate::error::SpawnError;
use crate::process::entry::{ProcessEntry, ProcessKind};
use crate::process::spawn::{self, Launch, OnReady};
use crate::process::state::Grants;
use crate::process::{GroupEvent, Pid, Ref};
use crate::proto::{Frame, SpawnHeader};

/// Longest entry name a remote spawn may carry.
const MAX_ENTRY_BYTES: usize = 255;

/// Largest module a spawn request brings along the first time it goes to a node, saving
/// the round trip of [`Frame::SpawnNeed`]; larger ones go on a stream of their own, when
/// asked, so that they do not hold up the connection's other frames.
const BRING_CODE_BYTES: usize = 256 << 10;

/// Who spawns, for an atomic link or monitor.
pub(crate) enum Parent<'a> {
    /// Nobody (host code without a process).
    None,
    /// A process of this node.
    Local(&'a Arc<ProcessEntry>),
    /// A process of another node; its node announces the child to the group leader.
    Remote {
        /// The parent.
        pid: Pid,
        /// The monitor reference its node made, when it monitors the child.
        monitor: Option<Ref>,
    },
}

/// A spawn request from another node, checked by the connection that read it.
pub(crate) struct RemoteSpawn {
    /// Echoed in the answers.
    pub reference: u64,
    /// The module.
    pub module: ModuleId,
    /// The entry.
    pub entry: String,
    /// The encoded arguments.
    pub args: Bytes,
    /// The module's bytes, when the request brought them.
    pub code: Option<Bytes>,
    /// The spawning process.
    pub parent: Pid,
    /// The group leader the child joins.
    pub leader: Pid,
    /// The parent's monitor of the child, if it asked for one.
    pub monitor: Option<Ref>,
    /// Link and limits.
    pub opts: SpawnOpts,
    /// Grant real clocks.
    pub clock: bool,
}

/// A process created but not started yet: the caller can tell others about it first.
pub(crate) struct Prepared {
    pub pid: Pid,
    pub monitor: Option<Ref>,
    me: Arc<ProcessEntry>,
    launch: Box<Launch>,
}

impl Prepared {
    /// Starts the process's task.
    pub fn start(self, node: &Arc<NodeInner>) -> (Pid, Option<Ref>) {
        node.runtime.spawn(spawn::run(Arc::clone(node), self.me, self.launch));
        (self.pid, self.monitor)
    }

    /// Starts the process's task, which runs `ready` once the process is instantiated (or
    /// is not, or was killed first), before anything the process sends or its end.
    pub fn start_then(mut self, node: &Arc<NodeInner>, ready: impl FnOnce() + Send + 'static) {
        self.launch.on_ready = OnReady::new(ready);
        self.start(node);
    }
}

impl NodeInner {
    /// Spawns a host-made request here, linked to or monitored by `parent` when asked.
    pub(crate) fn spawn_request(
        self: &Arc<Self>,
        request: SpawnRequest,
        parent: Parent<'_>,
        link: bool,
        monitor: bool,
    ) -> Result<(Pid, Option<Ref>), SpawnError> {
        let module = self
            .cache
            .get(&request.module)
            .ok_or_else(|| SpawnError::InvalidModule(format!("module {} is not loaded", request.module)))?;
        let opts = request.opts(link, monitor);
        let prepared = self.prepare(
            module,
            request.entry,
            request.args,
            opts,
            parent,
            request.group_leader,
            request.grants,
        )?;
        Ok(prepared.start(self))
    }

    /// Checks a spawn against the node's limits and creates the process, without starting
    /// it. `leader` is the group leader (the new process's own pid when none).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn prepare(
        self: &Arc<Self>,
        module: Arc<LoadedModule>,
        entry: String,
        args: Bytes,
        opts: SpawnOpts,
        parent: Parent<'_>,
        leader: Option<Pid>,
        grants: Grants,
    ) -> Result<Prepared, SpawnError> {
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
        let kind = ProcessKind::Guest { module: module.id, entry: entry.clone() };
        let mailbox_limit = opts.mailbox_limit.unwrap_or(self.config.limits.mailbox_len);
        let me =
            Arc::new(ProcessEntry::new(pid, leader, kind, mailbox_limit, self.config.limits.mailbox_bytes));
        if leader.node != self.id || matches!(parent, Parent::Remote { .. }) {
            me.talks_remote.store(true, Ordering::Relaxed);
        }
        self.table.insert(Arc::clone(&me));
        let mut monitor = None;
        match parent {
            Parent::None => self.group_event(leader, GroupEvent::Joined(pid)),
            Parent::Local(parent) => {
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
                self.group_event(leader, GroupEvent::Joined(pid));
            }
            Parent::Remote { pid: parent, monitor: wanted } => {
                if opts.link {
                    me.signals.lock().links.insert(parent);
                }
                if let Some(r) = wanted {
                    me.signals.lock().monitored_by.insert(r, parent);
                    monitor = Some(r);
                }
            }
        }
        let launch = Box::new(Launch {
            module,
            entry,
            args,
            grants,
            memory_limit,
            fuel: opts.fuel,
            on_ready: OnReady::default(),
        });
        Ok(Prepared { pid, monitor, me, launch })
    }

    /// Spawns on node `node` for the local process `parent`: sends the request, ships the
    /// module if asked, and waits (at most the node's spawn timeout) for the outcome.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn spawn_remote(
        self: &Arc<Self>,
        node: &str,
        module: ModuleId,
        code: Option<Bytes>,
        entry: String,
        args: Bytes,
        opts: SpawnOpts,
        parent: &Arc<ProcessEntry>,
        clock: bool,
    ) -> Result<(Pid, Option<Ref>), SpawnError> {
        if entry.len() > MAX_ENTRY_BYTES {
            return Err(SpawnError::Limits(format!("entry names are at most {MAX_ENTRY_BYTES} bytes")));
        }
        let dist = self
            .dist
            .as_ref()
            .ok_or_else(|| SpawnError::Unreachable(format!("{node}: this node is not distributed")))?;
        if !crate::proto::handshake::valid_node_name(node) {
            return Err(SpawnError::Unreachable(format!("bad node name `{node}`")));
        }
        // A larger request would be over the peer's frame limit and close the connection.
        if args.len() > self.config.max_message_bytes {
            return Err(SpawnError::Limits(format!(
                "spawn arguments of {} bytes are over the message limit of {} bytes",
                args.len(),
                self.config.max_message_bytes
            )));
        }
        let peer = dist.peer(self, node);
        let reference = self.table.make_ref();
        let monitor = opts.monitor.then(|| self.table.make_ref());
        let leader = parent.group_leader;
        let (reply, outcome) = oneshot::channel();
        let code = code.or_else(|| self.cache.get(&module).map(|m| m.bytes.clone()));
        // The first spawn of a small module on this node brings its bytes along.
        let brought = code.as_ref().filter(|c| {
            c.len() <= BRING_CODE_BYTES
                && c.len() + args.len() <= self.config.max_message_bytes
                && peer.first_offer(module)
        });
        let (payload, code_bytes) = match brought {
            Some(c) => {
                dist.shipped.fetch_add(1, Ordering::Relaxed);
                let mut payload = BytesMut::with_capacity(args.len() + c.len());
                payload.extend_from_slice(&args);
                payload.extend_from_slice(c);
                (payload.freeze(), c.len() as u32)
            }
            None => (args, 0),
        };
        dist.pending_spawns.lock().insert(
            reference,
            PendingSpawn {
                peer: node.to_owned(),
                code,
                parent: parent.pid,
                leader,
                link: opts.link,
                monitor,
                reply,
            },
        );
        let frame = Frame::SpawnRequest(Box::new(SpawnHeader {
            reference,
            module,
            entry,
            parent: parent.pid,
            leader,
            leader_node: self.node_label(leader.node),
            link: opts.link,
            monitor,
            memory_limit: opts.memory_limit,
            mailbox_limit: opts.mailbox_limit.map(|n| n.min(u32::MAX as usize) as u32),
            fuel: opts.fuel,
            clock,
            code_bytes,
        }));
        if !peer.message(frame, payload).await {
            dist.pending_spawns.lock().remove(&reference);
            return Err(SpawnError::Unreachable(format!("{node}: {}", peer.gone_reason())));
        }
        let result = match tokio::time::timeout(self.config.spawn_timeout, outcome).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(SpawnError::Unreachable(format!("{node}: connection lost during the spawn"))),
            Err(_) => {
                dist.pending_spawns.lock().remove(&reference);
                Err(SpawnError::Timeout)
            }
        };
        result.map(|pid| (pid, monitor))
    }

    /// The parent's side of a spawn reply: link or monitor the child, announce it to the
    /// group leader (before the parent can end), and wake the parent.
    pub(crate) fn spawn_replied(
        self: &Arc<Self>,
        peer: &Arc<Peer>,
        reference: u64,
        result: Result<Pid, SpawnError>,
    ) -> Result<(), String> {
        let Some(dist) = &self.dist else { return Ok(()) };
        let pending = {
            let mut pending = dist.pending_spawns.lock();
            // Checked before it is taken: a reply from another node must not cancel it.
            match pending.get(&reference) {
                None => return Ok(()),
                Some(p) if p.peer != peer.name => {
                    return Err("a spawn reply from a node that was not asked".into());
                }
                Some(_) => pending.remove(&reference),
            }
        };
        let Some(pending) = pending else { return Ok(()) };
        if let Ok(child) = &result {
            let child = *child;
            if child.node != peer.id {
                return Err(format!("spawned pid {child:?} is not of the replying node"));
            }
            let parent = self.table.get(&pending.parent);
            let alive = parent.as_ref().is_some_and(|p| {
                let mut s = p.signals.lock();
                if s.alive {
                    if pending.link {
                        s.links.insert(child);
                    }
                    if let Some(r) = pending.monitor {
                        s.monitoring.insert(r, child);
                    }
                }
                s.alive
            });
            if !alive {
                if pending.link {
                    let reason = crate::process::ExitReason::Noproc;
                    peer.signal(Frame::Exit {
                        from: pending.parent,
                        to: child,
                        reason,
                        kill: false,
                        link: true,
                    });
                }
                if let Some(r) = pending.monitor {
                    peer.signal(Frame::Demonitor { target: child, monitor: r });
                }
            }
            self.group_event(pending.leader, GroupEvent::Joined(child));
        }
        let _ = pending.reply.send(result);
        Ok(())
    }

    /// The target's side of a spawn request from `peer`: find or fetch the module, spawn, and
    /// answer once the child is instantiated, before it runs (so that its messages and exit
    /// signals follow the answer). A module in memory is spawned at once, by the connection's
    /// task, in the order of the frames; one to load or fetch first, by a task of its own.
    pub(crate) fn serve_spawn(self: &Arc<Self>, peer: &Arc<Peer>, mut request: RemoteSpawn) {
        if let Some(module) = self.cache.get(&request.module) {
            self.spawn_for(peer, Ok(module), request);
            return;
        }
        let (node, peer) = (Arc::clone(self), Arc::clone(peer));
        tokio::spawn(async move {
            let module = match request.code.take() {
                Some(code) => node.load_brought(request.module, code).await,
                None => node.fetch_module(&peer, request.reference, request.module).await,
            };
            node.spawn_for(&peer, module, request);
        });
    }

    /// Spawns `request` from `peer` once its module is found, and answers.
    fn spawn_for(
        self: &Arc<Self>,
        peer: &Arc<Peer>,
        module: Result<Arc<LoadedModule>, SpawnError>,
        request: RemoteSpawn,
    ) {
        let RemoteSpawn { reference, entry, args, parent, leader, monitor, opts, clock, .. } = request;
        let prepared = module.and_then(|module| {
            let grants = Grants { clock, ..Grants::default() };
            let parent = Parent::Remote { pid: parent, monitor };
            self.prepare(module, entry, args, opts, parent, Some(leader), grants)
        });
        match prepared {
            Ok(p) => {
                let pid = p.pid;
                let peer = Arc::clone(peer);
                p.start_then(self, move || {
                    peer.signal(Frame::SpawnReply { reference, result: Ok(pid) });
                });
            }
            Err(e) => {
                peer.signal(Frame::SpawnReply { reference, result: Err(e) });
            }
        }
    }

    /// Loads the module a spawn request brought, checked against its id. Spawns of it that
    /// arrive meanwhile without its bytes wait for this load instead of asking for them.
    async fn load_brought(
        self: &Arc<Self>,
        id: ModuleId,
        code: Bytes,
    ) -> Result<Arc<LoadedModule>, SpawnError> {
        let dist = self.dist.as_ref().ok_or_else(|| SpawnError::InvalidModule("not distributed".into()))?;
        dist.received.fetch_add(1, Ordering::Relaxed);
        dist.wanted_modules.lock().entry(id).or_default();
        let result = self.load_shipped(id, code).await;
        dist.settle(&id, &result);
        result
    }

    /// Loads module bytes that came from another node, checked against the id they came as.
    pub(crate) async fn load_shipped(
        self: &Arc<Self>,
        id: ModuleId,
        bytes: Bytes,
    ) -> Result<Arc<LoadedModule>, SpawnError> {
        let actual = ModuleId::of(&bytes);
        if actual != id {
            return Err(SpawnError::InvalidModule(format!(
                "hash mismatch: the bytes shipped as module {id} hash to {actual}"
            )));
        }
        Ok(self.load(bytes).await?)
    }

    /// The module `id`: from the cache, or asked from `peer` and waited for.
    async fn fetch_module(
        self: &Arc<Self>,
        peer: &Arc<Peer>,
        reference: u64,
        id: ModuleId,
    ) -> Result<Arc<LoadedModule>, SpawnError> {
        if let Some(m) = self.cache.load_id(self, id).await {
            return Ok(m);
        }
        let dist = self.dist.as_ref().ok_or_else(|| SpawnError::InvalidModule("not distributed".into()))?;
        let (tx, rx) = oneshot::channel();
        let first = {
            let mut wanted = dist.wanted_modules.lock();
            let waiters = wanted.entry(id).or_default();
            waiters.push(tx);
            waiters.len() == 1
        };
        if first {
            peer.signal(Frame::SpawnNeed { reference, module: id });
        }
        match tokio::time::timeout(self.config.spawn_timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) | Err(_) => {
                dist.wanted_modules.lock().remove(&id);
                Err(SpawnError::Timeout)
            }
        }
    }
}
