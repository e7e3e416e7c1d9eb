//! Bench: the guest side of the local benchmark workloads (`cargo bench --bench workloads`,
//! shared/bench/WORKLOADS.md): W1 ping-pong, W4a spawns of processes that exit at once, W4b
//! spawns of processes that stay alive.
//!
//! Each driver entry (`w1`, `w4a`, `w4b`) prepares what is untimed, sends `"ready"` to the
//! host process `reply_to`, waits for `"go"`, runs the workload, and reports `"done"` (W4a
//! and W4b with a count, see each entry). The host measures the wall time between its `"go"`
//! and what it waits for after it.

use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use spore_guest::{Pid, Select, SpawnError, receive, send, sleep, spawn};

/// The payload of W1: 64 bytes, encoded as a CBOR byte string (a plain `Vec<u8>` would be
/// an array of 64 integers).
struct Payload(Vec<u8>);

impl Payload {
    /// The workload's payload: bytes 0..63.
    fn new() -> Self {
        Self((0..64).collect())
    }
}

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// Accepts a byte string.
        struct BytesVisitor;

        impl Visitor<'_> for BytesVisitor {
            type Value = Payload;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a byte string")
            }

            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Payload, E> {
                Ok(Payload(v.to_vec()))
            }

            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Payload, E> {
                Ok(Payload(v))
            }
        }

        deserializer.deserialize_byte_buf(BytesVisitor)
    }
}

/// Tells `reply_to` this driver is ready and waits for its `"go"`.
fn ready_then_wait_for_go(reply_to: Pid) {
    send(reply_to, "ready");
    let go: String = receive();
    assert_eq!(go, "go", "expected go");
}

/// One W1 round trip: `("ping", me, payload)` to `pong`, then waits for `("pong", payload)`.
fn round_trip(pong: Pid, me: Pid, payload: &Payload) {
    send(pong, &("ping", me, payload));
    let (tag, back): (String, Payload) = receive();
    assert!(tag == "pong" && back.0.len() == 64, "bad pong");
}

/// W1 driver: spawns `pong`, makes one untimed round trip so it is running, then after the
/// host's go makes `n` round trips, stops `pong`, and sends `"done"` to `reply_to`.
fn w1(n: u64, reply_to: Pid) {
    let pong = spawn("pong", &()).expect("spawn pong");
    let me = Pid::me();
    let payload = Payload::new();
    round_trip(pong, me, &payload);
    ready_then_wait_for_go(reply_to);
    for _ in 0..n {
        round_trip(pong, me, &payload);
    }
    send(pong, "stop");
    send(reply_to, "done");
}

/// W1's other side: answers each `("ping", from, payload)` with `("pong", payload)` (the
/// bytes it received) until `"stop"`.
fn pong() {
    loop {
        let stop = Select::new()
            .on(|(_tag, from, payload): (String, Pid, Payload)| {
                send(from, &("pong", payload));
                false
            })
            .on(|_stop: String| true)
            .wait();
        if stop {
            return;
        }
    }
}

/// W4a driver: after the host's go spawns `n` processes of `nop`, one after another, then
/// sends `("done", waits)` to `reply_to` and waits for `"stop"` (so that it stays counted
/// while the host waits for the children to end). `waits` counts the 1 ms pauses taken when
/// the node's process pool was full (a spawn refused with a quota error is retried).
fn w4a(n: u64, reply_to: Pid) {
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
fn nop() {}

/// W4b driver: after the host's go spawns `n` processes of `idle`, sends `("spawned", n)`
/// to `reply_to` when the spawn calls have returned and `("done", n)` when every child has
/// said it is up (so all are instantiated and about to block in `receive`). Then waits for
/// `"stop"` from the host, forwards it to every child, and ends.
fn w4b(n: u64, reply_to: Pid) {
    ready_then_wait_for_go(reply_to);
    let me = Pid::me();
    let children: Vec<Pid> =
        (0..n).map(|_| spawn("idle", &(me,)).expect("spawn idle (is max_processes > n?)")).collect();
    send(reply_to, &("spawned", n));
    for _ in 0..n {
        let up: String = receive();
        assert_eq!(up, "up", "expected up");
    }
    send(reply_to, &("done", n));
    let stop: String = receive();
    assert_eq!(stop, "stop", "expected stop");
    for child in children {
        send(child, "stop");
    }
}

/// Tells `parent` it is up, then blocks in `receive` until `"stop"`.
fn idle(parent: Pid) {
    send(parent, "up");
    let _stop: String = receive();
}

spore_guest::entries!(w1, pong, w4a, nop, w4b, idle);
