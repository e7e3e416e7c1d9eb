//! Relay: pids inside messages, forwarded and used to reply.

use spore_guest::{Pid, receive, send, spawn};

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

/// A chain of `n` more processes: spawns the next, waits for what comes back up the chain
/// and passes it on to `up`; the last one sends `"end"`.
fn chain(n: u32, up: Pid) {
    if n == 0 {
        send(up, "end");
        return;
    }
    spawn("chain", &(n - 1, Pid::me())).expect("spawn the next link");
    let back: String = receive();
    send(up, &back);
}

spore_guest::entries!(relay, answer, chain);
