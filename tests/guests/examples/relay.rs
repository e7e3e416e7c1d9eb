//! Relay: pids inside messages, forwarded and used to reply.

use spore_guest::{Pid, receive, send};

/// Receives `(reply_to, next)`: forwards `(reply_to,)` to `next` as a one-element tuple.
fn relay() {
    let (reply_to, next): (Pid, Pid) = receive();
    send(next, &(reply_to,));
}

/// Receives `(reply_to,)` and answers `reply_to` with "hello from" and its own pid.
fn answer() {
    let (reply_to,): (Pid,) = receive();
    send(reply_to, &("hello from", Pid::me()));
}

spore_guest::entries!(relay, answer);
