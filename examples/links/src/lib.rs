//! Links and monitors: a crash is noticed, and nothing else is disturbed.
//!
//! Run with `spore run target/wasm32-wasip2/release/links.wasm`.
//!
//! `main` traps exits and links to a worker that crashes on its third job; it gets the
//! worker's exit signal as a message, restarts it once, and also watches a process with a
//! monitor that runs out of memory.

use spore_guest::{Signal, Spawn, receive, receive_signal, send, spawn_link, spawn_monitor, trap_exit};

/// The supervisor-like parent.
fn main() {
    trap_exit(true);
    for attempt in 1..=2u32 {
        let worker = spawn_link("worker", &(attempt,)).expect("spawn worker");
        println!("main: started worker {worker} (attempt {attempt})");
        for job in 1..=3u32 {
            send(worker, &job);
        }
        match receive_signal(None) {
            Some(Signal::Exit { from, reason }) => println!("main: worker {from} exited: {reason}"),
            other => println!("main: unexpected {other:?}"),
        }
    }
    let (hog, monitor) = spawn_monitor("hog", &()).expect("spawn hog");
    println!("main: monitoring {hog}");
    if let Some(Signal::Down { monitor: m, pid, reason }) = receive_signal(None) {
        assert_eq!(m, monitor);
        println!("main: {pid} is down: {reason}");
    }
    let survivor = Spawn::new("worker").args(&(3u32,)).start().expect("spawn").pid;
    send(survivor, &0u32);
    println!("main: done");
}

/// Does jobs; on attempt 1 it crashes on job 3.
fn worker(attempt: u32) -> Result<(), String> {
    loop {
        let job: u32 = receive();
        if job == 0 {
            return Ok(());
        }
        println!("worker: job {job}");
        if attempt == 1 && job == 3 {
            panic!("job {job} is cursed");
        }
        if job == 3 {
            return Err(format!("finished all jobs on attempt {attempt}"));
        }
    }
}

/// Allocates until it hits its memory limit.
fn hog() {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        blocks.push(vec![1u8; 1 << 20]);
    }
}

spore_guest::entries!(main, worker, hog);
