//! [`ProcessEntry`]: what a node keeps about one live process, shared by every task that
//! sends to it, links to it or kills it.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use parking_lot::Mutex;
use rustc_hash::{FxHashMap, FxHashSet};

use super::mailbox::Mailbox;
use super::{ExitReason, Pid, Ref};

/// [`ProcessEntry::state`]: running or runnable.
pub const RUNNING: u8 = 0;
/// [`ProcessEntry::state`]: blocked in receive.
pub const WAITING: u8 = 1;
/// [`ProcessEntry::state`]: sleeping.
pub const SLEEPING: u8 = 2;

/// What kind of code a process runs.
#[derive(Clone, Debug)]
pub enum ProcessKind {
    /// A wasm component instance.
    Guest {
        /// The module's id.
        module: crate::cache::ModuleId,
        /// The entry it was started with.
        entry: String,
    },
    /// Rust code driving a [`HostProcess`](super::host::HostProcess).
    Host,
}

/// The shared state of a live process.
pub struct ProcessEntry {
    /// Its pid.
    pub pid: Pid,
    /// Where its output goes.
    pub group_leader: Pid,
    /// What it runs.
    pub kind: ProcessKind,
    /// When it was spawned.
    pub started: Instant,
    /// Its mailbox.
    pub mailbox: Mailbox,
    /// Whether exit signals become messages.
    pub trap_exit: AtomicBool,
    /// A host process collecting its group's output (a [`GroupLeader`](crate::GroupLeader)).
    pub leads_group: AtomicBool,
    /// Linear memory in bytes, updated by the limiter as the guest grows it.
    pub memory: AtomicU64,
    /// What it is doing: [`RUNNING`], [`WAITING`] or [`SLEEPING`].
    pub state: AtomicU8,
    /// Links, monitors and liveness, changed together under one lock.
    pub(crate) signals: Mutex<Signals>,
    /// The reason set by a kill, and the waker of the task that runs the process.
    kill: Mutex<Kill>,
    /// Set with the kill's reason: what the process's task checks at every poll.
    killed: AtomicBool,
    /// Whether it has sent to another node, was spawned from one or has its group leader
    /// on one. Its end then lets the node's network tasks run before its slot is reset, so
    /// that what it sent last leaves first (see `process::spawn::run`).
    pub(crate) talks_remote: AtomicBool,
}

/// A kill's reason, once there is one, and the waker of the process's task for the kill to
/// wake ([`ProcessEntry::poll_killed`]).
#[derive(Default)]
struct Kill {
    reason: Option<ExitReason>,
    waker: Option<Waker>,
}

/// Links and monitors of one process. Its sets are hashed with Fx, whose state takes no
/// room (std's `RandomState` takes 16 bytes in each): a process entry of 488 bytes instead of
/// 552 falls in a smaller size class of the allocator, 128 bytes less per process. Their
/// keys come from this node or from peers that hold the cookie; each set is one process's.
#[derive(Default)]
pub(crate) struct Signals {
    /// False once the process has started to end: no new links or monitors are accepted.
    pub alive: bool,
    /// Its registered name.
    pub name: Option<String>,
    /// Processes linked to it.
    pub links: FxHashSet<Pid>,
    /// Monitors others hold on it: reference → watcher.
    pub monitored_by: FxHashMap<Ref, Pid>,
    /// Monitors it holds on others: reference → watched.
    pub monitoring: FxHashMap<Ref, Pid>,
    /// Subscribed to nodeup/nodedown of every visible node.
    pub monitors_nodes: bool,
    /// Nodes it watches with `monitor-node`.
    pub node_monitors: FxHashSet<String>,
    /// The pending `send-after` timers it owns, from the first on.
    pub timers: Option<Box<OwnedTimers>>,
}

/// The pending `send-after` timers a process owns: those aimed at it, and those it set for
/// processes on other nodes. A timer's message waits in the node, outside every guest's
/// memory, so the timers a process owns hold at most what its mailbox may, and end with it.
#[derive(Default)]
pub(crate) struct OwnedTimers {
    /// Their references (keys of the node's timers).
    pub refs: FxHashSet<Ref>,
    /// Their messages' payload bytes.
    pub bytes: usize,
}

impl ProcessEntry {
    pub(crate) fn new(
        pid: Pid,
        group_leader: Pid,
        kind: ProcessKind,
        mailbox_limit: usize,
        mailbox_bytes: usize,
    ) -> Self {
        Self {
            pid,
            group_leader,
            kind,
            started: Instant::now(),
            mailbox: Mailbox::new(mailbox_limit, mailbox_bytes),
            trap_exit: AtomicBool::new(false),
            leads_group: AtomicBool::new(false),
            memory: AtomicU64::new(0),
            state: AtomicU8::new(RUNNING),
            signals: Mutex::new(Signals { alive: true, ..Signals::default() }),
            kill: Mutex::new(Kill::default()),
            killed: AtomicBool::new(false),
            talks_remote: AtomicBool::new(false),
        }
    }

    /// Asks the process to end with `reason` (the first reason given wins).
    pub(crate) fn kill(&self, reason: ExitReason) {
        let waker = {
            let mut kill = self.kill.lock();
            if kill.reason.is_some() {
                return;
            }
            kill.reason = Some(reason);
            self.killed.store(true, Ordering::Release);
            kill.waker.clone()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Ready with the kill's reason once the process has been killed; for the task that runs
    /// it, at every poll. The task leaves its waker for a kill to wake when the one it left
    /// last (`left`) would not wake it; otherwise a poll costs one atomic load. (A tokio
    /// `Notify` here took a lock at every poll: with the mailbox's, 7.6% of W1's CPU.)
    pub(crate) fn poll_killed(&self, left: &mut Option<Waker>, cx: &Context<'_>) -> Poll<ExitReason> {
        if !left.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            let mut kill = self.kill.lock();
            if let Some(reason) = &kill.reason {
                return Poll::Ready(reason.clone());
            }
            kill.waker = Some(cx.waker().clone());
            *left = kill.waker.clone();
            return Poll::Pending;
        }
        if self.killed.load(Ordering::Acquire) {
            return Poll::Ready(self.kill.lock().reason.clone().unwrap_or(ExitReason::Killed));
        }
        Poll::Pending
    }

    /// Drops the task's waker left for kills: the task has ended.
    pub(crate) fn unwatch_kills(&self) {
        self.kill.lock().waker = None;
    }

    /// Whether this process turns exit signals into messages.
    pub fn traps_exits(&self) -> bool {
        self.trap_exit.load(Ordering::Acquire)
    }

    /// What it is doing, as `spore ps` shows it.
    pub fn status(&self) -> &'static str {
        match (&self.kind, self.state.load(Ordering::Relaxed)) {
            (ProcessKind::Host, _) => "host",
            (_, WAITING) => "waiting",
            (_, SLEEPING) => "sleeping",
            _ => "running",
        }
    }

    /// Its registered name.
    pub fn name(&self) -> Option<String> {
        self.signals.lock().name.clone()
    }

    /// The processes linked to it.
    pub fn links(&self) -> Vec<Pid> {
        self.signals.lock().links.iter().copied().collect()
    }
}
