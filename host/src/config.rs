//! [`NodeConfig`]: everything a node is started with, and the per-process [`Limits`].

use std::path::PathBuf;
use std::time::Duration;

/// Default linear-memory limit of a process: enough for ordinary guests, small enough that
/// a memory bomb is stopped long before it hurts the node.
pub const DEFAULT_MEMORY_BYTES: u64 = 64 << 20;

/// Largest memory limit a spawn may ask for; also the pool's per-memory maximum.
pub const MAX_MEMORY_BYTES: u64 = 1 << 30;

/// Default mailbox bound (ordinary messages): about 100 MB of 64-byte messages.
pub const DEFAULT_MAILBOX_LEN: usize = 1 << 20;

/// Default bound of the payload bytes waiting in a mailbox: as much as a process's default
/// memory, so that a process that sends without end to one that never receives fills that
/// mailbox, not the node's memory.
pub const DEFAULT_MAILBOX_BYTES: usize = 64 << 20;

/// Default largest message payload; a peer or guest cannot make the node buffer more per
/// message than this.
pub const DEFAULT_MESSAGE_BYTES: usize = 8 << 20;

/// Default largest module: bigger components are refused before they are hashed or compiled.
pub const DEFAULT_MODULE_BYTES: u64 = 64 << 20;

/// Default number of guest processes alive at once (the instance pool's size). Each live
/// instance costs about four kernel memory mappings, so the kernel's default
/// `vm.max_map_count` of 65530 allows about 15,000; see the README's capacity notes.
pub const DEFAULT_MAX_PROCESSES: u32 = 12_000;

/// Default of [`NodeConfig::busy_wait`]: on the reference VM, 50 µs already took a remote
/// round trip (W2) from 85 to 22 µs; 100 µs also covers a remote spawn's turnaround.
pub const DEFAULT_BUSY_WAIT: Duration = Duration::from_micros(100);

/// Per-process limits; a spawn may lower or raise them up to the node's maxima.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Linear memory, in bytes.
    pub memory_bytes: u64,
    /// Ordinary messages waiting in the mailbox.
    pub mailbox_len: usize,
    /// Payload bytes of the ordinary messages waiting in the mailbox.
    pub mailbox_bytes: usize,
    /// Fuel budget (roughly wasm instructions), only on nodes with fuel metering.
    pub fuel: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: DEFAULT_MEMORY_BYTES,
            mailbox_len: DEFAULT_MAILBOX_LEN,
            mailbox_bytes: DEFAULT_MAILBOX_BYTES,
            fuel: None,
        }
    }
}

/// Where compiled modules are cached on disk.
#[derive(Clone, Debug, Default)]
pub enum CacheDir {
    /// `$XDG_CACHE_HOME/spore` (or the platform's equivalent).
    #[default]
    User,
    /// This directory.
    Path(PathBuf),
    /// No disk cache: every load compiles.
    Disabled,
}

/// How a node is started.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// `name@host`.
    pub name: String,
    /// Default limits of each process.
    pub limits: Limits,
    /// Largest message payload in bytes.
    pub max_message_bytes: usize,
    /// Largest module in bytes.
    pub max_module_bytes: u64,
    /// Guest processes alive at once (the pooling allocator's size).
    pub max_processes: u32,
    /// Virtual address space reserved per linear memory. The default (4 GiB) lets compiled
    /// code skip bounds checks; smaller values (e.g. 256 MiB) allow far more processes in
    /// the address space, at some cost in speed.
    pub memory_reservation: Option<u64>,
    /// Copy-on-write memory images: faster instantiation of modules with large data
    /// segments, but more page faults and mappings for small guests. Off by default
    /// (measured in the README).
    pub copy_on_write: bool,
    /// Which compiler turns modules into machine code.
    pub compiler: Compiler,
    /// How often running guests are interrupted so that others get a turn (10 µs to 1 s).
    pub epoch_tick: Duration,
    /// Count fuel in every process (costs about 20% on call-heavy code); needed for
    /// per-spawn fuel budgets.
    pub fuel: bool,
    /// Worker threads of the process runtime (default: the CPUs this process may use).
    pub workers: Option<usize>,
    /// How long a worker thread with nothing to do spins, watching the node's socket,
    /// before it sleeps (Erlang's scheduler busy wait): a message that arrives meanwhile is
    /// handled without waking a sleeping CPU, which on a VM costs tens of microseconds per
    /// hop. It costs up to this much CPU after each burst of work. Zero turns it off; more
    /// than 10 ms is cut to 10 ms (a timer that falls due while a worker spins waits).
    pub busy_wait: Duration,
    /// The on-disk cache of compiled modules.
    pub cache_dir: CacheDir,
    /// How long a spawn on another node may take, shipping and compiling included.
    pub spawn_timeout: Duration,
    /// Distribution: how the node joins a cluster (`None`: a node on its own).
    pub dist: Option<crate::dist::DistConfig>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            name: "spore@localhost".to_owned(),
            limits: Limits::default(),
            max_message_bytes: DEFAULT_MESSAGE_BYTES,
            max_module_bytes: DEFAULT_MODULE_BYTES,
            max_processes: DEFAULT_MAX_PROCESSES,
            memory_reservation: None,
            copy_on_write: false,
            compiler: Compiler::Cranelift,
            epoch_tick: Duration::from_millis(1),
            fuel: false,
            workers: None,
            busy_wait: DEFAULT_BUSY_WAIT,
            cache_dir: CacheDir::User,
            spawn_timeout: Duration::from_secs(30),
            dist: None,
        }
    }
}

/// The compiler of a node's modules: a trade between compile time and code speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compiler {
    /// Cranelift, the optimizing compiler: the fastest code (the default). It keeps each
    /// compiled function in a per-node cache, so a module whose code the node has seen
    /// before (the same program under another id, a new version changing a few functions)
    /// compiles several times faster than a new one.
    #[default]
    Cranelift,
    /// Winch, wasmtime's baseline compiler: compiles about 5x faster (a new 146 KB guest
    /// ships, compiles and starts in 36 ms instead of 196 ms), runs slower code; for nodes
    /// that mostly run freshly shipped, short-lived code.
    Winch,
}
