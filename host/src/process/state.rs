//! [`ProcState`], the data of a guest process's wasmtime `Store`, and its resource limiter.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::Stream;
use super::entry::ProcessEntry;
use super::stdio::ForwardOutput;
use crate::cache::LoadedModule;
use crate::node::NodeInner;

/// A directory preopened for a process.
#[derive(Clone, Debug)]
pub struct Preopen {
    /// The directory on the host.
    pub host: PathBuf,
    /// The path the guest sees.
    pub guest: String,
    /// Whether the guest may write.
    pub writable: bool,
}

/// The capabilities a process holds; a child gets at most its parent's.
#[derive(Clone, Debug, Default)]
pub struct Grants {
    /// Real clocks (otherwise they read zero).
    pub clock: bool,
    /// Environment variables.
    pub env: Vec<(String, String)>,
    /// Preopened directories.
    pub dirs: Vec<Preopen>,
}

impl Grants {
    /// What a child asking for `clock`, `env` and `fs` receives from a parent holding `self`.
    pub fn narrow(&self, clock: bool, env: bool, fs: bool) -> Grants {
        Grants {
            clock: self.clock && clock,
            env: if env { self.env.clone() } else { Vec::new() },
            dirs: if fs { self.dirs.clone() } else { Vec::new() },
        }
    }
}

/// The store data of one guest process.
pub(crate) struct ProcState {
    pub node: Arc<NodeInner>,
    pub me: Arc<ProcessEntry>,
    pub module: Arc<LoadedModule>,
    pub grants: Grants,
    pub limiter: ProcLimiter,
    /// Built at the process's first WASI call: a guest that never makes one (a `no_std`
    /// guest imports no WASI at all) spawns without it, 5% faster (W4a) and with 0.5 KB
    /// less host heap (W4b). Boxed: inline, its 272 bytes would size every process's
    /// store, WASI or not (the store's allocation fell from 1,472 to 1,208 bytes, a smaller
    /// size class of the allocator: 256 bytes less per process).
    wasi: Option<Box<WasiCtx>>,
    resources: ResourceTable,
    /// The local process this one sent to last, kept for its next send (see
    /// `ProcState::send_local`).
    pub last_receiver: Option<Arc<ProcessEntry>>,
}

impl ProcState {
    pub fn new(
        node: Arc<NodeInner>,
        me: Arc<ProcessEntry>,
        module: Arc<LoadedModule>,
        grants: Grants,
        memory_limit: u64,
    ) -> Self {
        let limiter = ProcLimiter { memory_limit, me: Arc::clone(&me) };
        Self {
            node,
            me,
            module,
            grants,
            limiter,
            wasi: None,
            resources: ResourceTable::new(),
            last_receiver: None,
        }
    }
}

/// The WASI context of process `me`: output forwarded to its group leader, clocks and
/// environment as `grants` allow, `grants`' directories preopened, no sockets.
fn wasi_ctx(node: &Arc<NodeInner>, me: &ProcessEntry, grants: &Grants) -> WasiCtx {
    let mut wasi = WasiCtx::builder();
    let acks = (me.group_leader.node != node.id).then(|| node.output_acks_for(me.pid, me.group_leader));
    let out =
        |stream| ForwardOutput::new(Arc::downgrade(node), me.pid, me.group_leader, stream, acks.clone());
    wasi.stdout(out(Stream::Stdout)).stderr(out(Stream::Stderr)).allow_tcp(false).allow_udp(false);
    if !grants.clock {
        wasi.wall_clock(FrozenClock).monotonic_clock(FrozenClock);
    }
    wasi.envs(&grants.env);
    for dir in &grants.dirs {
        use wasmtime_wasi::FsPerms;
        let perms = if dir.writable { FsPerms::ReadWrite } else { FsPerms::ReadOnly };
        if let Err(e) = wasi.preopened_dir(&dir.host, &dir.guest, perms) {
            tracing::warn!(pid = %me.pid, dir = %dir.host.display(), "cannot preopen: {e:#}");
        }
    }
    wasi.build()
}

impl WasiView for ProcState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let ctx = self.wasi.get_or_insert_with(|| Box::new(wasi_ctx(&self.node, &self.me, &self.grants)));
        WasiCtxView { ctx, table: &mut self.resources }
    }
}

/// A clock that always reads zero: what a process without the clock grant sees.
struct FrozenClock;

impl wasmtime_wasi::HostWallClock for FrozenClock {
    fn resolution(&self) -> std::time::Duration {
        std::time::Duration::from_secs(1)
    }
    fn now(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}

impl wasmtime_wasi::HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// The guest grew its memory past its limit; the process ends with reason `limit`.
#[derive(Debug, thiserror::Error)]
#[error("memory limit of {} exceeded (asked for {})", mib(*.limit), mib(*.desired))]
pub(crate) struct MemoryLimitExceeded {
    pub limit: u64,
    pub desired: u64,
}

/// Bytes as MiB with one decimal.
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

/// Enforces a process's memory limit and records its memory size.
pub(crate) struct ProcLimiter {
    memory_limit: u64,
    me: Arc<ProcessEntry>,
}

/// Largest table a guest may grow (function tables of big guests stay far below).
const MAX_TABLE_ELEMENTS: usize = 100_000;

impl ResourceLimiter for ProcLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.memory_limit {
            return Err(wasmtime::Error::new(MemoryLimitExceeded {
                limit: self.memory_limit,
                desired: desired as u64,
            }));
        }
        self.me.memory.fetch_add((desired - current) as u64, Ordering::Relaxed);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}
