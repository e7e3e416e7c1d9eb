//! The process table and the local name registry of one node.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use rustc_hash::FxBuildHasher;

use super::entry::ProcessEntry;
use super::{NodeId, Pid, Ref};
use crate::error::RegisterError;

/// Longest registered name, in bytes: names travel in frames and `spore ps` prints them.
pub const MAX_NAME_BYTES: usize = 255;

/// Live processes by index, names by string.
pub(crate) struct ProcessTable {
    node: NodeId,
    incarnation: u32,
    /// Hashed with Fx, not SipHash: every local send looks its receiver up here, and the
    /// keys are indices this table hands out in sequence, so no peer can choose them to
    /// collide (a peer's pids are only looked up).
    procs: DashMap<u64, Arc<ProcessEntry>, FxBuildHasher>,
    names: DashMap<String, Pid>,
    next_index: AtomicU64,
    next_ref: AtomicU64,
    /// Guest processes whose instance is (or is about to be) alive: the pool's occupancy.
    pub guests: AtomicUsize,
}

impl ProcessTable {
    pub fn new(node: NodeId, incarnation: u32) -> Self {
        Self {
            node,
            incarnation,
            procs: DashMap::with_hasher(FxBuildHasher),
            names: DashMap::new(),
            next_index: AtomicU64::new(1),
            // References start at a random-looking offset so that they do not collide with
            // the small tags guests use for message kinds.
            next_ref: AtomicU64::new(u64::from(incarnation) << 32 | 1 << 31),
            guests: AtomicUsize::new(0),
        }
    }

    /// A fresh pid on this node.
    pub fn new_pid(&self) -> Pid {
        Pid {
            node: self.node,
            incarnation: self.incarnation,
            index: self.next_index.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// A fresh reference.
    pub fn make_ref(&self) -> Ref {
        self.next_ref.fetch_add(1, Ordering::Relaxed)
    }

    /// Whether `pid` names a process of this node's current incarnation (live or not).
    pub fn is_local(&self, pid: &Pid) -> bool {
        pid.node == self.node && pid.incarnation == self.incarnation
    }

    /// The live local process `pid`.
    pub fn get(&self, pid: &Pid) -> Option<Arc<ProcessEntry>> {
        self.with(pid, Arc::clone)
    }

    /// Runs `f` on the live local process `pid`, under the table's read lock on it, without
    /// a reference of its own: a send's lookup, two atomic operations fewer than [`Self::get`]'s.
    pub fn with<R>(&self, pid: &Pid, f: impl FnOnce(&Arc<ProcessEntry>) -> R) -> Option<R> {
        if !self.is_local(pid) {
            return None;
        }
        self.procs.get(&pid.index).map(|e| f(e.value()))
    }

    pub fn insert(&self, entry: Arc<ProcessEntry>) {
        self.procs.insert(entry.pid.index, entry);
    }

    pub fn remove(&self, pid: &Pid) {
        self.procs.remove(&pid.index);
    }

    /// All live processes.
    pub fn all(&self) -> Vec<Arc<ProcessEntry>> {
        self.procs.iter().map(|e| Arc::clone(e.value())).collect()
    }

    pub fn len(&self) -> usize {
        self.procs.len()
    }

    /// Registers `name` for the live local process `pid`.
    pub fn register(&self, name: &str, pid: Pid) -> Result<(), RegisterError> {
        if name.is_empty() || name.len() > MAX_NAME_BYTES {
            return Err(RegisterError::BadName);
        }
        let entry = self.get(&pid).ok_or(RegisterError::Noproc)?;
        let mut signals = entry.signals.lock();
        if !signals.alive {
            return Err(RegisterError::Noproc);
        }
        if let Some(existing) = &signals.name {
            return Err(RegisterError::AlreadyNamed(existing.clone()));
        }
        match self.names.entry(name.to_owned()) {
            Entry::Occupied(o) => Err(RegisterError::Taken(*o.get())),
            Entry::Vacant(v) => {
                v.insert(pid);
                signals.name = Some(name.to_owned());
                Ok(())
            }
        }
    }

    /// Removes `name`; false if nobody had it.
    pub fn unregister(&self, name: &str) -> bool {
        let Some((_, pid)) = self.names.remove(name) else {
            return false;
        };
        if let Some(entry) = self.get(&pid) {
            let mut signals = entry.signals.lock();
            if signals.name.as_deref() == Some(name) {
                signals.name = None;
            }
        }
        true
    }

    /// Removes `name` only if it still belongs to `pid` (a process ending).
    pub fn unregister_if(&self, name: &str, pid: Pid) {
        self.names.remove_if(name, |_, p| *p == pid);
    }

    pub fn whereis(&self, name: &str) -> Option<Pid> {
        self.names.get(name).map(|p| *p.value())
    }

    pub fn registered(&self) -> Vec<String> {
        self.names.iter().map(|e| e.key().clone()).collect()
    }
}
