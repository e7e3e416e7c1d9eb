//! Ways to die: a trap, a panic, a memory bomb, a stack overflow, a custom exit, an error
//! result, and a watcher that reports the signals it gets to whoever started it.

use spore_guest::{ExitReason, Pid, Signal, receive_signal, send, spawn_link, spawn_monitor, trap_exit};

/// Executes `unreachable`.
fn trap() {
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::unreachable();
}

/// Panics with a message.
fn panics() {
    panic!("on purpose");
}

/// Allocates until the memory limit stops it.
fn oom() {
    let mut hog: Vec<Vec<u8>> = Vec::new();
    loop {
        hog.push(vec![7u8; 1 << 20]);
    }
}

/// Recurses with 1 KiB frames on the guest's own stack (62 KiB: tests/guests/build.rs)
/// until it runs out.
fn overflow() {
    fn down(depth: u32) -> u32 {
        let mut frame = [0u8; 1024];
        frame[0] = depth as u8;
        let frame = core::hint::black_box(&mut frame);
        if depth == 0 {
            return u32::from(frame[0]);
        }
        down(depth - 1) + u32::from(frame[1023])
    }
    core::hint::black_box(down(core::hint::black_box(1 << 20)));
}

/// Ends with a custom reason.
fn quit(reason: String) {
    spore_guest::exit(ExitReason::Error(reason));
}

/// Returns an error.
fn fails() -> Result<(), String> {
    Err("returned an error".into())
}

/// Spawns `victim` linked (`how` = "link", trapping exits) or monitored (`how` =
/// "monitor") and reports `("child", pid)`, then `("got", signal as text)` to `parent`.
fn watch(parent: Pid, victim: String, how: String) {
    let child = if how == "monitor" {
        spawn_monitor(&victim, &()).expect("spawn").0
    } else {
        trap_exit(true);
        spawn_link(&victim, &()).expect("spawn")
    };
    send(parent, &("child", child));
    let text = match receive_signal(None) {
        Some(Signal::Exit { from, reason }) if from == child => format!("exit {reason}"),
        Some(Signal::Down { pid, reason, .. }) if pid == child => format!("down {reason}"),
        other => format!("unexpected {other:?}"),
    };
    send(parent, &("got", text));
}

/// Links to a child that crashes, without trapping exits: dies with the child's reason.
fn linked_victim() {
    let _child = spawn_link("panics", &()).expect("spawn");
    loop {
        let _: () = spore_guest::receive();
    }
}

spore_guest::entries!(trap, panics, oom, overflow, quit, fails, watch, linked_victim);
