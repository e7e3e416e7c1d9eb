//! What the command-line tests share.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// Runs `cmd` to completion, killing it if it takes longer than `limit`: a run that hangs
/// fails its test instead of the suite.
pub fn output_within(mut cmd: Command, limit: Duration) -> Output {
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start spore");
    let pid = child.id();
    let (done, finished) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let out = child.wait_with_output();
        let _ = done.send(());
        out
    });
    if finished.recv_timeout(limit).is_err() {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        panic!("spore did not finish within {limit:?}");
    }
    waiter.join().expect("waiter thread").expect("spore output")
}

/// A free TCP port on loopback, for a test's own port mapper (nodes on the default one
/// would share names with every other test and node of the machine).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port()
}
