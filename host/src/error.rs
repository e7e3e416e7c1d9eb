//! The public error enums, one per fallible operation.

use crate::process::Pid;

/// Why a module could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {path}: {error}")]
    Read {
        /// The path given.
        path: String,
        /// The I/O error (named in the message, so not also a `source`).
        error: std::io::Error,
    },
    /// The bytes are not WebAssembly at all.
    #[error("not a WebAssembly file (no \\0asm header)")]
    NotWasm,
    /// A core module was given where a component is expected.
    #[error(
        "this is a core WebAssembly module, not a component: build the guest for the \
         wasm32-wasip2 target (cargo build --target wasm32-wasip2)"
    )]
    CoreModule,
    /// The module is larger than the node accepts.
    #[error("module is {size} bytes, over the node's limit of {limit} bytes")]
    TooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A module read from a stream (a pipe, or a file that grew while read) went on past
    /// the node's limit; reading stopped there.
    #[error("module is over the node's limit of {limit} bytes")]
    TooLargeStream {
        /// The limit.
        limit: u64,
    },
    /// The component does not validate or compile.
    #[error("invalid component: {0}")]
    Invalid(String),
    /// The component does not target the `spore:process` world.
    #[error("component does not target the spore:process/guest world: {0}")]
    WrongWorld(String),
    /// The module's `entries` export failed.
    #[error("module failed while listing its entries: {0}")]
    Entries(String),
}

/// Why a spawn failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum SpawnError {
    /// The module has no such entry.
    #[error("unknown entry `{entry}`; the module exports: {available}")]
    UnknownEntry {
        /// The entry asked for.
        entry: String,
        /// The entries the module has, comma-separated.
        available: String,
    },
    /// The module is not loaded here or is not valid.
    #[error("invalid module: {0}")]
    InvalidModule(String),
    /// The module is larger than the node accepts.
    #[error("module over the size limit of {0} bytes")]
    TooLarge(u64),
    /// The options ask for more than the node allows.
    #[error("limits refused: {0}")]
    Limits(String),
    /// The node runs as many processes as it can.
    #[error("process quota reached: {0}")]
    Quota(String),
    /// The target node could not be reached.
    #[error("node unreachable: {0}")]
    Unreachable(String),
    /// The spawn did not complete in time.
    #[error("spawn timed out")]
    Timeout,
}

/// A module that cannot be loaded fails the spawn that needed it: over the size limit as
/// [`SpawnError::TooLarge`], anything else as [`SpawnError::InvalidModule`].
impl From<LoadError> for SpawnError {
    fn from(e: LoadError) -> Self {
        match e {
            LoadError::TooLarge { limit, .. } | LoadError::TooLargeStream { limit } => Self::TooLarge(limit),
            other => Self::InvalidModule(other.to_string()),
        }
    }
}

/// Why a send failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The payload is over the message size limit.
    #[error("message of {size} bytes is over the limit of {limit} bytes")]
    TooLarge {
        /// The payload's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The receiver's mailbox is full.
    #[error("mailbox of {0} is full")]
    MailboxFull(Pid),
    /// No process has that name on this node.
    #[error("no process registered as `{0}`")]
    NotRegistered(String),
    /// The destination node cannot be reached.
    #[error("node unreachable: {0}")]
    Unreachable(String),
}

/// Why a name could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// Another live process holds the name.
    #[error("name already registered by {0}")]
    Taken(Pid),
    /// The process already has a name.
    #[error("process already registered as `{0}`")]
    AlreadyNamed(String),
    /// The pid is not a live local process.
    #[error("no such process")]
    Noproc,
    /// Empty or too long.
    #[error("bad name (empty or over 255 bytes)")]
    BadName,
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The wasmtime engine rejected the configuration.
    #[error("cannot configure the wasm engine: {0}")]
    Engine(String),
    /// A setting of the configuration is out of its range.
    #[error("bad configuration: {0}")]
    BadConfig(String),
    /// The node name is not `name@host` of printable ASCII without spaces.
    #[error("bad node name `{0}`: expected name@host, printable ASCII without spaces")]
    BadName(String),
    /// The node could not listen for other nodes.
    #[error("cannot listen for other nodes: {0}")]
    Listen(String),
    /// Another node of this host runs under the name (the port mapper refused it).
    #[error(
        "the name {name} is taken: another node of this host runs under it (port mapper on \
         port {mapper_port}); stop that node or choose another name"
    )]
    NameTaken {
        /// The node's name.
        name: String,
        /// The port mapper's port.
        mapper_port: u16,
    },
    /// A runtime or thread could not be created.
    #[error("cannot start runtime: {0}")]
    Runtime(#[from] std::io::Error),
}
