//! The guest↔host ABI: bindings generated from `wit/`, the linker, and conversions between
//! the generated types and the host's vocabulary.
//!
//! Each WIT interface has its own module below, implementing the generated `Host` trait on
//! [`ProcState`]. Expected failures (no such name, mailbox full) are WIT `result`s the guest
//! sees; ABI violations and host faults trap, ending only the calling process.

mod link;
mod mailbox;
mod node;
mod process;
mod registry;
mod timer;
mod types;

use wasmtime::Engine;
use wasmtime::component::{HasSelf, Linker};

use crate::process::state::ProcState;

wasmtime::component::bindgen!({
    path: "../wit",
    world: "guest",
    imports: {
        "spore:process/mailbox.receive": async | trappable,
        "spore:process/mailbox.receive-many": async | trappable,
        "spore:process/mailbox.send": async | trappable,
        "spore:process/mailbox.send-named": async | trappable,
        "spore:process/mailbox.send-receive": async | trappable,
        "spore:process/node.connect": async | trappable,
        "spore:process/timer.sleep": async | trappable,
        "spore:process/process.spawn": async | trappable,
        // These wait after signalling another node whose queue is full (see `pace_signals`).
        "spore:process/link.link": async | trappable,
        "spore:process/link.unlink": async | trappable,
        "spore:process/link.monitor": async | trappable,
        "spore:process/link.exit": async | trappable,
        "spore:process/link.kill": async | trappable,
        default: trappable,
    },
    exports: { default: async },
});

pub(crate) use spore::process::types as wit;

/// A linker with WASI p2 and every Spore interface, shared by all processes of a node.
pub(crate) fn linker(engine: &Engine) -> wasmtime::Result<Linker<ProcState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    Guest::add_to_linker::<_, HasSelf<ProcState>>(&mut linker, |s| s)?;
    mailbox::define_by_hand(&mut linker)?;
    Ok(linker)
}
