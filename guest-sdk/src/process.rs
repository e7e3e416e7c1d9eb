//! Identity, spawning, links, monitors, exits and names.

use crate::prelude::*;

use serde::Serialize;

use crate::bindings::spore::process::{
    link as wit_link, node as wit_node, process as wit, registry as wit_reg,
};
use crate::codec::{self, CodecError};
use crate::pid::{Pid, Ref};
use crate::reason::ExitReason;

/// This process's pid.
pub fn self_pid() -> Pid {
    Pid::from_wit(wit::self_())
}

/// The name of the node this process runs on (`name@host`).
pub fn node() -> String {
    wit_node::name()
}

/// The nodes this node is connected to.
pub fn nodes() -> Vec<String> {
    wit_node::nodes()
}

/// Subscribes this process to [`Signal::NodeUp`](crate::Signal::NodeUp) and
/// [`Signal::NodeDown`](crate::Signal::NodeDown).
pub fn monitor_nodes(on: bool) {
    wit_node::monitor_nodes(on);
}

/// Watches node `name` (Erlang's `monitor_node`): a
/// [`Signal::NodeDown`](crate::Signal::NodeDown) arrives when its connection goes, or at
/// once if it cannot be made.
pub fn monitor_node(name: &str, on: bool) {
    wit_node::monitor_node(name, on);
}

/// Connects to node `name` and waits until the link is up (nodes also connect on first
/// use); the error says why not, e.g. a different cookie.
pub fn connect(name: &str) -> Result<(), String> {
    wit_node::connect(name)
}

/// Closes the connection to `name`; false if there was none.
pub fn disconnect(name: &str) -> bool {
    wit_node::disconnect(name)
}

/// A reference unique on this node.
pub fn make_ref() -> Ref {
    wit::make_ref()
}

/// The id of the module this process runs (64 hex digits).
pub fn module_id() -> String {
    wit::module_id()
}

/// Why a spawn failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpawnError {
    /// The module has no such entry (the text lists those it has).
    UnknownEntry(String),
    /// The module is not valid here or unknown.
    InvalidModule(String),
    /// The module is over the node's size limit (bytes).
    TooLarge(u64),
    /// The options ask for more than the node allows.
    Limits(String),
    /// The node runs as many processes as it can.
    Quota(String),
    /// The node could not be reached.
    Unreachable(String),
    /// No answer within the deadline.
    Timeout,
    /// The arguments could not be encoded.
    Encode(CodecError),
}

impl core::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::UnknownEntry(m) | Self::InvalidModule(m) | Self::Limits(m) | Self::Quota(m) => {
                f.write_str(m)
            }
            Self::TooLarge(n) => write!(f, "module over the limit of {n} bytes"),
            Self::Unreachable(n) => write!(f, "node unreachable: {n}"),
            Self::Timeout => f.write_str("spawn timed out"),
            Self::Encode(e) => write!(f, "cannot encode arguments: {e}"),
        }
    }
}

impl core::error::Error for SpawnError {}

impl From<wit::SpawnError> for SpawnError {
    fn from(e: wit::SpawnError) -> Self {
        match e {
            wit::SpawnError::UnknownEntry(m) => Self::UnknownEntry(m),
            wit::SpawnError::InvalidModule(m) => Self::InvalidModule(m),
            wit::SpawnError::TooLarge(n) => Self::TooLarge(n),
            wit::SpawnError::Limits(m) => Self::Limits(m),
            wit::SpawnError::Quota(m) => Self::Quota(m),
            wit::SpawnError::Unreachable(m) => Self::Unreachable(m),
            wit::SpawnError::Timeout => Self::Timeout,
        }
    }
}

/// Where the code of a spawned process comes from.
#[derive(Clone, Debug)]
pub enum Module {
    /// The module this process runs.
    This,
    /// A module the target node knows, by id (64 hex digits).
    Id(String),
    /// Component bytes, shipped to the target node.
    Bytes(Vec<u8>),
}

/// A spawn with all its options. [`spawn`], [`spawn_link`] and [`spawn_monitor`] cover the
/// common cases.
///
/// ```no_run
/// # use spore_guest::Spawn;
/// let pid = Spawn::new("worker").args(&(42u32,)).link().memory_limit(8 << 20).start()?.pid;
/// # Ok::<(), spore_guest::SpawnError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Spawn {
    entry: String,
    args: Result<Vec<u8>, CodecError>,
    node: Option<String>,
    module: Module,
    options: wit::SpawnOptions,
}

/// A spawned process, with the monitor reference when one was asked.
#[derive(Clone, Copy, Debug)]
pub struct Spawned {
    /// Its pid.
    pub pid: Pid,
    /// The monitor's reference.
    pub monitor: Option<Ref>,
}

impl Spawn {
    /// Spawns `entry` of this module, on this node, with no arguments.
    pub fn new(entry: &str) -> Self {
        Self {
            entry: entry.to_owned(),
            args: Ok(Vec::new()),
            node: None,
            module: Module::This,
            options: wit::SpawnOptions {
                link: false,
                monitor: false,
                memory_limit: None,
                mailbox_limit: None,
                fuel: None,
                grants: wit::Grants::empty(),
            },
        }
    }

    /// The entry's arguments, as a tuple: `&(3u32, node)`, `&(name,)`, or `&()`.
    pub fn args<A: Serialize + ?Sized>(mut self, args: &A) -> Self {
        self.args = codec::encode(args);
        self
    }

    /// Runs it on `node`.
    pub fn on(mut self, node: &str) -> Self {
        self.node = Some(node.to_owned());
        self
    }

    /// Runs code from `module` instead of this module.
    pub fn module(mut self, module: Module) -> Self {
        self.module = module;
        self
    }

    /// Links it to this process, atomically.
    pub fn link(mut self) -> Self {
        self.options.link = true;
        self
    }

    /// Monitors it, atomically.
    pub fn monitor(mut self) -> Self {
        self.options.monitor = true;
        self
    }

    /// Its memory limit in bytes.
    pub fn memory_limit(mut self, bytes: u64) -> Self {
        self.options.memory_limit = Some(bytes);
        self
    }

    /// Its mailbox bound.
    pub fn mailbox_limit(mut self, messages: u32) -> Self {
        self.options.mailbox_limit = Some(messages);
        self
    }

    /// Its fuel budget (nodes with fuel metering only).
    pub fn fuel(mut self, fuel: u64) -> Self {
        self.options.fuel = Some(fuel);
        self
    }

    /// Passes on this process's clock.
    pub fn grant_clock(mut self) -> Self {
        self.options.grants = self.options.grants | wit::Grants::CLOCK;
        self
    }

    /// Passes on this process's environment variables.
    pub fn grant_env(mut self) -> Self {
        self.options.grants = self.options.grants | wit::Grants::ENV;
        self
    }

    /// Passes on this process's preopened directories.
    pub fn grant_fs(mut self) -> Self {
        self.options.grants = self.options.grants | wit::Grants::FS;
        self
    }

    /// Spawns.
    pub fn start(self) -> Result<Spawned, SpawnError> {
        let args = self.args.map_err(SpawnError::Encode)?;
        let module = match self.module {
            Module::This => wit::ModuleSource::This,
            Module::Id(id) => wit::ModuleSource::Id(id),
            Module::Bytes(b) => wit::ModuleSource::Bytes(b),
        };
        let spawned = wit::spawn(self.node.as_deref(), &module, &self.entry, &args, self.options)?;
        Ok(Spawned { pid: Pid::from_wit(spawned.pid), monitor: spawned.monitor })
    }
}

/// Spawns `entry` of this module on this node with `args` (a tuple).
pub fn spawn<A: Serialize + ?Sized>(entry: &str, args: &A) -> Result<Pid, SpawnError> {
    Spawn::new(entry).args(args).start().map(|s| s.pid)
}

/// [`spawn`] on another node (Erlang's `spawn(Node, M, F, A)`).
pub fn spawn_on<A: Serialize + ?Sized>(node: &str, entry: &str, args: &A) -> Result<Pid, SpawnError> {
    Spawn::new(entry).args(args).on(node).start().map(|s| s.pid)
}

/// Spawns and links atomically.
pub fn spawn_link<A: Serialize + ?Sized>(entry: &str, args: &A) -> Result<Pid, SpawnError> {
    Spawn::new(entry).args(args).link().start().map(|s| s.pid)
}

/// Spawns and monitors atomically; returns the pid and the monitor's reference.
pub fn spawn_monitor<A: Serialize + ?Sized>(entry: &str, args: &A) -> Result<(Pid, Ref), SpawnError> {
    let s = Spawn::new(entry).args(args).monitor().start()?;
    Ok((s.pid, s.monitor.unwrap_or_default()))
}

/// Ends this process with `reason`.
pub fn exit(reason: ExitReason) -> ! {
    wit::exit(&reason.to_wit());
    unreachable!("process.exit returned")
}

/// Links this process to `pid`.
pub fn link(pid: Pid) {
    wit_link::link(pid.to_wit());
}

/// Removes the link to `pid`.
pub fn unlink(pid: Pid) {
    wit_link::unlink(pid.to_wit());
}

/// Monitors `pid`: a [`Signal::Down`](crate::Signal::Down) with the returned reference
/// arrives when it ends.
pub fn monitor(pid: Pid) -> Ref {
    wit_link::monitor(pid.to_wit())
}

/// Stops a monitor, and drops its down notice if one has arrived already (Erlang's
/// `demonitor(Ref, [flush])`): after it, no [`Signal::Down`](crate::Signal::Down) of that
/// monitor is received.
pub fn demonitor(monitor: Ref) {
    wit_link::demonitor(monitor);
    crate::mailbox::forget_down(monitor);
}

/// Turns exit signals into [`Signal::Exit`](crate::Signal::Exit) messages (true) or lets
/// them end this process (false, the default). Returns the previous setting.
pub fn trap_exit(on: bool) -> bool {
    wit_link::trap_exit(on)
}

/// Sends an exit signal to `pid`.
pub fn exit_pid(pid: Pid, reason: ExitReason) {
    wit_link::exit(pid.to_wit(), &reason.to_wit());
}

/// Kills `pid` (untrappable).
pub fn kill(pid: Pid) {
    wit_link::kill(pid.to_wit());
}

/// Why a name could not be registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterError {
    /// Another process holds the name.
    Taken(Pid),
    /// The process already has this other name.
    AlreadyNamed(String),
    /// The process is not alive on this node.
    Noproc,
    /// Empty or too long.
    BadName,
}

impl core::fmt::Display for RegisterError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Taken(p) => write!(f, "name already registered by {p}"),
            Self::AlreadyNamed(n) => write!(f, "process already registered as `{n}`"),
            Self::Noproc => f.write_str("no such process"),
            Self::BadName => f.write_str("bad name"),
        }
    }
}

impl core::error::Error for RegisterError {}

/// Registers this process as `name` on its node.
pub fn register(name: &str) -> Result<(), RegisterError> {
    register_pid(name, self_pid())
}

/// Registers `pid` (a live process of this node) as `name`.
pub fn register_pid(name: &str, pid: Pid) -> Result<(), RegisterError> {
    wit_reg::register(name, pid.to_wit()).map_err(|e| match e {
        wit_reg::RegisterError::Taken(p) => RegisterError::Taken(Pid::from_wit(p)),
        wit_reg::RegisterError::AlreadyNamed(n) => RegisterError::AlreadyNamed(n),
        wit_reg::RegisterError::Noproc => RegisterError::Noproc,
        wit_reg::RegisterError::BadName => RegisterError::BadName,
    })
}

/// Removes a name.
pub fn unregister(name: &str) -> bool {
    wit_reg::unregister(name)
}

/// The process registered as `name` on this node.
pub fn whereis(name: &str) -> Option<Pid> {
    wit_reg::whereis(name).map(Pid::from_wit)
}

/// All names registered on this node.
pub fn registered() -> Vec<String> {
    wit_reg::registered()
}
