//! Write Spore processes in Rust.
//!
//! A Spore guest is a WebAssembly component (built for `wasm32-wasip2`) whose entries run as
//! Erlang-style processes: each has a [`Pid`], a mailbox, links and monitors, and talks to
//! others only by messages. Messages are any serde type, encoded as CBOR, and may carry pids.
//!
//! ```no_run
//! use serde::{Deserialize, Serialize};
//! use spore_guest::{Pid, receive, send, spawn};
//!
//! #[derive(Serialize, Deserialize)]
//! enum Msg { Ping(Pid), Pong, Finished }
//!
//! fn main() {
//!     let pong = spawn("pong", &()).unwrap();
//!     send(pong, &Msg::Ping(Pid::me()));
//!     if let Msg::Pong = receive::<Msg>() { println!("Ping received pong"); }
//!     send(pong, &Msg::Finished);
//! }
//!
//! fn pong() {
//!     loop {
//!         match receive::<Msg>() {
//!             Msg::Ping(from) => send(from, &Msg::Pong),
//!             _ => return,
//!         }
//!     }
//! }
//!
//! spore_guest::entries!(main, pong);
//! ```
//!
//! # Concepts
//! - Processes: [`spawn`], [`spawn_link`], [`spawn_monitor`], [`Spawn`] for every option,
//!   [`exit`], [`Pid::me`], [`node`].
//! - Messages: [`send`], [`send_named`], [`receive`], [`receive_timeout`], [`Select`] for
//!   selective receive with several arms and a timeout; [`send_receive`] and
//!   [`send_receive_any`] send and receive in one host call (a request and its reply, a
//!   server's reply and its next request); [`receive_any`] takes what waits in one host
//!   call and hands it out one entry at a time.
//! - Failures: [`link`], [`monitor`], [`trap_exit`], [`Signal`], [`ExitReason`].
//! - Names: [`register`], [`whereis`]. Time: [`sleep`], [`send_after`].
//! - Calls: [`rpc::call`], [`rpc::multicall`], [`rpc::cast`] run an entry on a node and
//!   bring back what it returns ([`Reply`]), like Erlang's `erpc`.
//! - Entries: [`entries!`] exports the functions a spawn can name; their parameters are
//!   decoded from the spawn's arguments (see [`codec`]).

//!
//! # Without std
//! With `default-features = false` the SDK is `no_std` + `alloc`, and a `#![no_std]` guest
//! is about a third the size of the same guest on std: faster to ship, compile and
//! instantiate. The SDK then brings what std would: a panic handler (the process exits
//! with reason `panic` and the message), a global allocator (Talc) and `cabi_realloc`.
//! Such a guest has no `println!` and no WASI; everything else here works the same.
//!
//! # Memory per process
//! A process's resident memory is counted in 4 KiB pages: of its linear memory, those it
//! has touched. wasm-ld puts the stack (1 MiB by default) first and the static data above
//! it, so the stack's top and the data start on different pages, and the memory is at
//! least 17 wasm pages (1.1 MiB) long. A guest that runs many small processes does better
//! with a stack that fits in the first wasm page, 2 KiB short of it, e.g. in its `build.rs`:
//! `println!("cargo:rustc-link-arg=-zstack-size={}", (64 << 10) - (2 << 10));`
//! Its stack's top then shares a page with the data (one page, 4 KiB, less per process),
//! and its memory is 2 wasm pages, which the node resets faster when a process ends
//! (Spore's test guests do; an idle process of the smallest one then holds 29 KB in all).
//! A guest that overflows its stack traps and ends that process: the stack lies below the
//! data, so it would run below address 0.
//! The process's native stack, where its wasm functions' frames and the host's calls run,
//! is counted the same way: a process waiting in [`receive`] a few calls deep from its
//! entry has touched one page of it; deep calls before it waits leave more resident.

#![no_std]

extern crate alloc;
#[cfg(any(feature = "std", test))]
extern crate std;

/// What std's prelude would bring, for the modules of this `no_std` crate.
mod prelude {
    pub(crate) use alloc::borrow::ToOwned;
    pub(crate) use alloc::boxed::Box;
    pub(crate) use alloc::format;
    pub(crate) use alloc::string::{String, ToString};
    pub(crate) use alloc::vec::Vec;
}

#[doc(hidden)]
pub mod bindings;
// First: its macro serves the modules below.
#[macro_use]
mod local;
pub mod codec;
mod entry;
mod mailbox;
mod pid;
mod process;
mod reason;
pub mod rpc;
#[cfg(all(not(feature = "std"), target_family = "wasm"))]
mod runtime;
mod timer;

pub use entry::{Entry, EntryResult};
pub use mailbox::{
    Envelope, Received, Select, SendError, Signal, pending, receive, receive_any, receive_signal,
    receive_tagged, receive_timeout, send, send_named, send_raw, send_receive, send_receive_any, send_tagged,
    try_send, try_send_named,
};
pub use pid::{PID_TAG, Pid, Ref};
pub use process::{
    Module, RegisterError, Spawn, SpawnError, Spawned, connect, demonitor, disconnect, exit, exit_pid, kill,
    link, make_ref, module_id, monitor, monitor_node, monitor_nodes, node, nodes, register, register_pid,
    registered, self_pid, spawn, spawn_link, spawn_monitor, spawn_on, trap_exit, unlink, unregister, whereis,
};
pub use reason::ExitReason;
pub use rpc::{CallError, Reply};
pub use timer::{cancel_timer, send_after, sleep};

#[doc(hidden)]
pub mod __private {
    pub use crate::entry::{run_entry, unknown_entry};
    pub use alloc::string::String;
    pub use alloc::vec::Vec;
}

/// Exports the entries of this module: each name is a function in scope, callable by a
/// spawn of that name. Parameters are decoded from the spawn's arguments (a tuple).
///
/// ```ignore
/// fn main() { /* ... */ }
/// fn ping(n: u32, pong_node: String) { /* ... */ }
/// spore_guest::entries!(main, ping);
/// ```
#[macro_export]
macro_rules! entries {
    ($($name:ident),+ $(,)?) => {
        #[doc(hidden)]
        struct __SporeEntries;

        impl $crate::bindings::Guest for __SporeEntries {
            fn entries() -> $crate::__private::Vec<$crate::__private::String> {
                [$(stringify!($name)),+].into_iter().map($crate::__private::String::from).collect()
            }

            fn start(entry: $crate::__private::String, args: $crate::__private::Vec<u8>) {
                match entry.as_str() {
                    $(stringify!($name) => $crate::__private::run_entry(stringify!($name), $name, &args),)+
                    other => $crate::__private::unknown_entry(other, &[$(stringify!($name)),+]),
                }
            }
        }

        $crate::bindings::__export_guest!(__SporeEntries with_types_in $crate::bindings);
    };
}
