//! W4a and W4b, spawning processes that end at once or stay alive: drivers shared by the
//! std bench guest (tests/guests/examples/bench.rs) and the lean one, so that the two
//! measure the same code on the two builds of the SDK.

use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use spore_guest::{Pid, SpawnError, receive, send, sleep, spawn};

/// Tells `reply_to` this driver is ready and waits for its `"go"`.
pub fn ready_then_wait_for_go(reply_to: Pid) {
    send(reply_to, "ready");
    let go: String = receive();
    assert!(go == "go", "expected go, got {go}");
}

/// W4a driver: after the host's go spawns `n` processes of `nop`, one after another, then
/// sends `("done", waits)` to `reply_to` and waits for `"stop"` (so that it stays counted
/// while the host waits for the children to end). `waits` counts the 1 ms pauses taken when
/// the node's process pool was full (a spawn refused with a quota error is retried).
pub fn w4a(n: u64, reply_to: Pid) {
    ready_then_wait_for_go(reply_to);
    let mut waits: u64 = 0;
    for _ in 0..n {
        loop {
            match spawn("nop", &()) {
                Ok(_) => break,
                Err(SpawnError::Quota(_)) => {
                    waits += 1;
                    sleep(Duration::from_millis(1));
                }
                Err(e) => panic!("spawn nop: {e}"),
            }
        }
    }
    send(reply_to, &("done", waits));
    let _stop: String = receive();
}

/// Does nothing and ends normally.
pub fn nop() {}

/// W4b driver: after the host's go spawns `n` processes of `idle`, sends `("spawned", n)`
/// to `reply_to` when the spawn calls have returned and `("done", n)` when every child has
/// said it is up (so all are instantiated and about to block in `receive`). Then waits for
/// `"stop"` from the host, forwards it to every child, and ends.
pub fn w4b(n: u64, reply_to: Pid) {
    ready_then_wait_for_go(reply_to);
    let me = Pid::me();
    let children: Vec<Pid> = (0..n)
        .map(|_| spawn("idle", &(me,)).unwrap_or_else(|e| panic!("spawn idle: {e} (is max_processes > n?)")))
        .collect();
    send(reply_to, &("spawned", n));
    for _ in 0..n {
        let up: String = receive();
        assert!(up == "up", "expected up, got {up}");
    }
    send(reply_to, &("done", n));
    let stop: String = receive();
    assert!(stop == "stop", "expected stop, got {stop}");
    for child in children {
        send(child, "stop");
    }
}

/// Tells `parent` it is up, then blocks in `receive` until `"stop"`.
pub fn idle(parent: Pid) {
    send(parent, "up");
    let _stop: String = receive();
}
