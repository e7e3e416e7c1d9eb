//! What the SDK without std must still do: echo messages, allocate and free, panic with a
//! reason, fail with an error, and end at its memory limit.

#![no_std]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

use spore_guest::{Pid, receive, send};

/// Sends every `(from, text)` it receives back to `from` as `(text, self())`, until `stop`.
fn echo() {
    loop {
        let (from, text): (Pid, String) = receive();
        if text == "stop" {
            return;
        }
        send(from, &(text, Pid::me()));
    }
}

/// Allocates `rounds` vectors of growing size, frees every other one, adds one of 4 MiB,
/// and sends `parent` the sum of what it kept: the allocator must reuse and grow memory
/// correctly, past the initial memory and in pieces larger than a wasm page.
fn churn(rounds: u32, parent: Pid) {
    let mut kept: Vec<Vec<u32>> = Vec::new();
    for i in 0..rounds {
        let block: Vec<u32> = (0..i * 97).collect();
        if i % 2 == 0 {
            kept.push(block);
        }
    }
    kept.push((0..1 << 20).collect());
    let sum: u64 = kept.iter().flatten().map(|&v| u64::from(v)).sum();
    send(parent, &sum);
}

/// Panics with `message`.
fn boom(message: String) {
    panic!("{message}");
}

/// Ends with an error.
fn fail() -> Result<(), String> {
    Err(String::from("lean failure"))
}

/// Does nothing and ends normally.
fn nop() {}

/// Allocates 1 MiB blocks until the memory limit ends it.
fn oom() {
    let mut hog: Vec<Vec<u8>> = Vec::new();
    loop {
        hog.push(alloc::vec![7u8; 1 << 20]);
    }
}

spore_guest::entries!(echo, churn, boom, fail, nop, oom);
