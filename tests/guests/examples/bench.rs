//! Bench: the guest side of the benchmark workloads (`cargo bench --bench workloads`,
//! shared/bench/WORKLOADS.md): W1 ping-pong, W4a spawns of processes that exit at once, W4b
//! spawns of processes that stay alive; and, across two nodes, W2 remote ping-pong, W3/W3b
//! remote throughput, W5 remote spawn and W7 calls (W5b ships the hello guests). W4a and W4b
//! run the drivers of `spore_lean_guests::w4`, which the lean bench guest runs too.
//!
//! Each driver entry (`w1`, `w4a`, `w4b`, `w2`, `w3`, `w5`) prepares what is untimed, sends
//! `"ready"` to the host process `reply_to`, waits for `"go"`, runs the workload, and reports
//! `"done"` (with values, see each entry). For the local workloads the host measures the wall
//! time between its `"go"` and what it waits for after it; the remote drivers are spawned with
//! the clock granted and time themselves (each round trip or spawn, and the total), so that
//! the clock is read by the process on node A, as the spec asks.

use std::time::{Duration, Instant};

use serde::de::{self, IgnoredAny, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use spore_guest::{
    Module, Pid, Received, receive, receive_any, register, rpc, send, send_named, send_receive_any, spawn,
    spawn_on,
};
use spore_lean_guests::w4::{idle, nop, ready_then_wait_for_go, w4a, w4b};

/// The payload of W1, W2 and W3: 64 bytes (W3b: 65,536), encoded as a CBOR byte string (a
/// plain `Vec<u8>` would be an array of integers).
struct Payload(Vec<u8>);

impl Payload {
    /// The workload's payload: bytes 0..63.
    fn new() -> Self {
        Self::of_size(64)
    }

    /// `size` bytes counting 0, 1, 2, ... (modulo 256).
    fn of_size(size: u64) -> Self {
        Self((0..size).map(|i| i as u8).collect())
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

/// Bytes borrowed from a message, encoded as a CBOR byte string like [`Payload`].
struct Bytes<'a>(&'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <&[u8]>::deserialize(deserializer).map(Bytes)
    }
}

/// One W1 round trip: `("ping", me, payload)` to `pong`, then waits for `("pong", payload)`.
fn round_trip(pong: Pid, me: Pid, payload: &Payload) {
    let Some(Received::Message(m)) = send_receive_any(pong, &("ping", me, payload), None) else {
        panic!("not a pong");
    };
    let (tag, back): (&str, Bytes) = m.decode().expect("a pong");
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
/// bytes it received, borrowed from the message) until `"stop"`, each answer sent with the
/// receive of the next ping (`send_receive_any`).
fn pong() {
    let mut next = receive_any(None);
    loop {
        let Some(Received::Message(m)) = next else {
            next = receive_any(None);
            continue;
        };
        if let Ok((_ping, from, payload)) = m.decode::<(&str, Pid, Bytes)>() {
            next = send_receive_any(from, &("pong", payload), None);
        } else if m.decode::<&str>() == Ok("stop") {
            return;
        } else {
            next = receive_any(None);
        }
    }
}

/// Nanoseconds in `d`, saturated.
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The nearest-rank percentile `p` (0..=1) of `sorted`, which is not empty.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `("done", p50_ns, p99_ns, total_ns)` for per-iteration `samples` (nanoseconds) and the
/// total wall time. Panics on a zero total: the driver was spawned without the clock.
fn report_samples(reply_to: Pid, mut samples: Vec<u64>, total: Duration) {
    assert!(!total.is_zero(), "the clock reads zero: spawn the driver with the clock granted");
    samples.sort_unstable();
    let (p50, p99) = (percentile(&samples, 0.50), percentile(&samples, 0.99));
    send(reply_to, &("done", p50, p99, nanos(total)));
}

/// W2's pong on node B: registers itself as `pong`, tells `reply_to` (a host process on A)
/// it is ready, then answers pings as W1's [`pong`] does until `"stop"`.
fn w2_pong(reply_to: Pid) {
    register("pong").expect("register as pong");
    send(reply_to, "ready");
    pong();
}

/// One W2 round trip: `("ping", me, payload)` to `pong` on `node` by name, then waits for
/// `("pong", payload)`.
fn remote_round_trip(node: &str, me: Pid, payload: &Payload) {
    send_named("pong", Some(node), &("ping", me, payload));
    let (tag, back): (String, Payload) = receive();
    assert!(tag == "pong" && back.0.len() == 64, "bad pong");
}

/// W2 driver on node A (clock granted): one untimed round trip with `pong` on `node`, then
/// after the host's go `n` timed round trips, each addressed to `pong` by name and node.
/// Reports `("done", p50_ns, p99_ns, total_ns)`.
fn w2(n: u64, node: String, reply_to: Pid) {
    let me = Pid::me();
    let payload = Payload::new();
    remote_round_trip(&node, me, &payload);
    ready_then_wait_for_go(reply_to);
    let mut samples = Vec::with_capacity(n as usize);
    let started = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        remote_round_trip(&node, me, &payload);
        samples.push(nanos(t.elapsed()));
    }
    let total = started.elapsed();
    report_samples(reply_to, samples, total);
}

/// W3's sink on node B: tells `reply_to` it runs, counts `("data", payload)` messages, and on
/// `("done", from)` replies `("ack", count)` to `from` and ends. Only the tag is decoded into a
/// value (the payload goes to serde's `IgnoredAny`, which the codec skips without copying).
fn w3_sink(reply_to: Pid) {
    send(reply_to, "ready");
    let mut count: u64 = 0;
    loop {
        let Some(Received::Message(m)) = receive_any(None) else { continue };
        let (tag, _): (&str, IgnoredAny) = m.decode().expect("a (tag, value) message");
        match tag {
            "data" => count += 1,
            "done" => {
                let (_, from): (&str, Pid) = m.decode().expect("(done, pid)");
                send(from, &("ack", count));
                return;
            }
            other => panic!("unexpected {other}"),
        }
    }
}

/// W3 and W3b driver on node A (clock granted): after the host's go sends `n` messages
/// `("data", payload)` of `size` payload bytes to `sink` back to back, then `("done", me)`,
/// and waits for `("ack", count)`. Reports `("done", count, total_ns)`.
fn w3(n: u64, size: u64, sink: Pid, reply_to: Pid) {
    let me = Pid::me();
    let payload = Payload::of_size(size);
    ready_then_wait_for_go(reply_to);
    let started = Instant::now();
    for _ in 0..n {
        send(sink, &("data", &payload));
    }
    send(sink, &("done", me));
    let (tag, count): (String, u64) = receive();
    let total = started.elapsed();
    assert_eq!(tag, "ack", "expected ack");
    assert!(!total.is_zero(), "the clock reads zero: spawn the driver with the clock granted");
    send(reply_to, &("done", count, nanos(total)));
}

/// One W5 iteration: spawns [`w5_child`] of this module on `node` and waits for its
/// `("child", pid)`.
fn remote_spawn(node: &str, me: Pid) {
    let child = spawn_on(node, "w5_child", &(me,)).expect("spawn on the other node");
    let (tag, from): (String, Pid) = receive();
    assert!(tag == "child" && from == child, "bad child message");
}

/// W5 driver on node A (clock granted): one untimed spawn on `node` (so that the module is
/// loaded there), then after the host's go `n` timed spawns, strictly one after another.
/// Reports `("done", p50_ns, p99_ns, total_ns)`.
fn w5(n: u64, node: String, reply_to: Pid) {
    let me = Pid::me();
    remote_spawn(&node, me);
    ready_then_wait_for_go(reply_to);
    let mut samples = Vec::with_capacity(n as usize);
    let started = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        remote_spawn(&node, me);
        samples.push(nanos(t.elapsed()));
    }
    let total = started.elapsed();
    report_samples(reply_to, samples, total);
}

/// W5's child: sends `("child", self())` to `parent` and ends.
fn w5_child(parent: Pid) {
    send(parent, &("child", Pid::me()));
}

/// How long W7 waits for one call's answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// W7 driver: calls `nop` on `[node]` with `rpc::multicall` once (untimed, so that `node`
/// has this module), then after the host's go `n` times, one after another, checking that
/// each answer is `()`, and reports as W5 does.
fn w7(n: u64, node: String, reply_to: Pid) {
    let nodes = [node.as_str()];
    let call = || {
        let answers = rpc::multicall::<()>(&nodes, Module::This, "nop", &(), CALL_TIMEOUT);
        assert!(matches!(answers.as_slice(), [Ok(())]), "nop on {node}: {answers:?}");
    };
    call();
    ready_then_wait_for_go(reply_to);
    let mut samples = Vec::with_capacity(n as usize);
    let started = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        call();
        samples.push(nanos(t.elapsed()));
    }
    let total = started.elapsed();
    report_samples(reply_to, samples, total);
}

spore_guest::entries!(w1, pong, w4a, nop, w4b, idle, w2, w2_pong, w3, w3_sink, w5, w5_child, w7);
