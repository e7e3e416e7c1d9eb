//! Hello without std: the smallest useful SDK guest, shipped by the W5b benchmark (code
//! shipping). Its one entry sends `(module id, self(), "hello")` to the pid it is given and
//! ends, as `tests/guests/examples/hello.rs` does on std.

#![no_std]

use spore_guest::{Pid, module_id, send};

/// Says hello to `parent`.
fn hello(parent: Pid) {
    send(parent, &(module_id(), Pid::me(), "hello"));
}

spore_guest::entries!(hello);
