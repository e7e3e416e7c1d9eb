//! Hello: the smallest useful SDK guest on std, shipped by W5b-std (code shipping; W5b ships
//! its twin without std, tests/lean-guests/examples/lean_hello.rs). Its one entry sends
//! `(module id, self(), "hello")` to the pid it is given and ends.

use spore_guest::{Pid, module_id, send};

/// Says hello to `parent`.
fn hello(parent: Pid) {
    send(parent, &(module_id(), Pid::me(), "hello"));
}

spore_guest::entries!(hello);
