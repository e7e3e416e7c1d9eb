//! Spore's host: a node that runs sandboxed WebAssembly components as Erlang-style
//! processes, with mailboxes, links, monitors and names.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use spore_host::{Node, NodeConfig, SpawnRequest};
//! let node = Node::start(NodeConfig::default())?;
//! let module = node.load_file("ping_pong.wasm").await?;
//! let mut group = node.group_leader();
//! let pid = node.spawn(SpawnRequest::new(module, "main").group_leader(group.pid()))?;
//! let reason = group.print_until_done(pid, &mut std::io::stdout(), &mut std::io::stderr()).await;
//! println!("{pid} ended: {reason}");
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`node`]: [`Node`], the embedding API, and the routing of messages and signals.
//! - [`process`]: pids, exit reasons, mailboxes, the process table, the guest driver.
//! - [`api`] (private): the WIT bindings and one module per WIT interface.
//! - [`cbor`]: messages in the guest SDK's encoding, for host code.
//! - [`dist`]: peers, connections on first use, module shipping, node up and down.
//! - [`proto`]: the wire vocabulary and codec, without I/O.
//! - [`transport`]: the QUIC endpoint, mutual TLS keyed by the cookie, the connection tasks.
//! - [`mapper`]: the port mapper (Spore's epmd). [`cookie`]: the cookie file.
//! - [`cache`]: modules by content hash, compiled once and cached on disk.
//! - [`group`]: group leaders, where output comes home.
//! - [`engine`] (private): the wasmtime engine and the epoch ticker.
//! - [`demo`]: the embedded ping-pong guest and the CLI's argument encoding.
//! - [`config`], [`error`]: configuration and the public error enums.

mod api;
mod busy_wait;
pub mod cache;
pub mod cbor;
pub mod config;
pub mod cookie;
pub mod demo;
pub mod dist;
mod engine;
mod epoch;
pub mod error;
pub mod group;
pub mod mapper;
pub mod node;
pub mod process;
pub mod proto;
mod sched;
pub mod transport;

pub use cache::ModuleId;
pub use config::{CacheDir, Compiler, Limits, NodeConfig};
pub use dist::DistConfig;
pub use error::{LoadError, RegisterError, SendError, SpawnError, StartError};
pub use group::GroupLeader;
pub use node::{Node, ProcessInfo, SpawnRequest};
pub use process::host::HostProcess;
pub use process::state::{Grants, Preopen};
pub use process::{ExitReason, GroupEvent, Incoming, Message, NodeId, Pid, Ref, Selector, Stream};
pub use transport::ConnectError;
