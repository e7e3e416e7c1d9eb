//! Hello: the smallest useful SDK guest, shipped by the W5b benchmark (code shipping): its
//! one entry sends `(module id, self(), "hello")` to the pid it is given and ends.

use spore_guest::{Pid, module_id, send};

/// Says hello to `parent`.
fn hello(parent: Pid) {
    send(parent, &(module_id(), Pid::me(), "hello"));
}

spore_guest::entries!(hello);
