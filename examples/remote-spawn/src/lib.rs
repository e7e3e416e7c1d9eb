//! Remote spawn: this module ships itself to another node, which has never seen it, runs a
//! computation there, and the result comes back as a message.
//!
//! Run with (see the README beside this file for the whole session):
//! `spore run --name main@localhost remote_spawn.wasm main -- worker@localhost 200000`

use spore_guest::{Pid, Spawn, node, receive, send};

/// Spawns `count_primes` on `worker` (shipping this module there) and prints its answer.
fn main(worker: String, below: u64) -> Result<(), String> {
    let spawned = Spawn::new("count_primes")
        .args(&(below, Pid::me()))
        .on(&worker)
        .link()
        .start()
        .map_err(|e| format!("cannot spawn on {worker}: {e}"))?;
    println!("main: spawned {} on {worker}", spawned.pid);
    let (count, on): (u64, String) = receive();
    println!("main: {count} primes below {below}, counted on {on}");
    Ok(())
}

/// Counts the primes below `below` and sends `(count, node)` to `reply_to`.
fn count_primes(below: u64, reply_to: Pid) {
    let count = (2..below).filter(|n| is_prime(*n)).count() as u64;
    println!("count_primes: done on {}", node());
    send(reply_to, &(count, node()));
}

fn is_prime(n: u64) -> bool {
    n >= 2 && (2..).take_while(|d| d * d <= n).all(|d| !n.is_multiple_of(d))
}

spore_guest::entries!(main, count_primes);
