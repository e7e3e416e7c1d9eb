//! The ping-pong programs of the Erlang tutorial (tut15, tut21, tut22) as one Spore guest.
//!
//! Run with `spore run target/wasm32-wasip2/release/ping_pong.wasm` (entry `main`); the
//! README beside this file shows the two-node versions.

use serde::{Deserialize, Serialize};
use spore_guest::{Pid, node, receive, register_pid, send, send_named, spawn, spawn_on};

/// What ping and pong say to each other.
#[derive(Serialize, Deserialize)]
enum Msg {
    /// From ping, with the pid to answer.
    Ping(Pid),
    /// The answer.
    Pong,
    /// Ping is done.
    Finished,
}

/// Ping and pong on this node, three exchanges.
fn main() {
    start_pong();
    spawn("ping", &(3u32, node())).expect("spawn ping");
}

/// tut21 `start-pong`: pong, registered as `pong` on this node.
fn start_pong() {
    let pong = spawn("pong", &()).expect("spawn pong");
    register_pid("pong", pong).expect("register pong");
}

/// tut21 `start-ping`: ping with three exchanges against `{pong, pong_node}`.
fn start_ping(pong_node: String) {
    spawn("ping", &(3u32, pong_node)).expect("spawn ping");
}

/// tut22 `start`: pong here, ping on `ping_node`, all output on this node.
fn start(ping_node: String) {
    start_pong();
    spawn_on(&ping_node, "ping", &(3u32, node())).expect("spawn ping on the ping node");
}

/// Sends `n` pings to `{pong, pong_node}`, waiting for each pong, then `Finished`.
fn ping(n: u32, pong_node: String) {
    for _ in 0..n {
        send_named("pong", Some(&pong_node), &Msg::Ping(Pid::me()));
        if let Msg::Pong = receive::<Msg>() {
            println!("Ping received pong");
        }
    }
    // Printed before `Finished` is sent, so that "Ping finished" always precedes
    // "Pong finished" (the tutorial prints after sending and relies on luck).
    println!("Ping finished");
    send_named("pong", Some(&pong_node), &Msg::Finished);
}

/// Answers pings until `Finished`.
fn pong() {
    loop {
        match receive::<Msg>() {
            Msg::Finished => {
                println!("Pong finished");
                return;
            }
            Msg::Ping(ping) => {
                println!("Pong received ping");
                send(ping, &Msg::Pong);
            }
            Msg::Pong => {}
        }
    }
}

spore_guest::entries!(main, start_pong, start_ping, start, ping, pong);
