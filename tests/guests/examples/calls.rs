//! Calls: `rpc::call`, `rpc::multicall` and `rpc::cast` against another node, each outcome
//! reported to the test as a text (tests/it/rpc.rs).

use std::time::Duration;

use spore_guest::{Module, Pid, Reply, pending, rpc, send, sleep};

/// Answers twice `n`.
fn double(n: u32) -> Reply<u32> {
    Reply(2 * n)
}

/// Ends with an error instead of answering.
fn fail() -> Result<(), String> {
    Err("refused".into())
}

/// Never answers.
fn hang() {
    sleep(Duration::from_secs(3600));
}

/// Answers null.
fn nop() {}

/// Tells `report` it ran (the target of a cast).
fn ping(report: Pid) {
    send(report, "cast ran");
}

/// Makes every kind of call to `node` and sends `report` one text per outcome, then how
/// many entries are left in this process's mailbox (none: calls clean up after themselves).
fn caller(node: String, report: Pid) {
    let patience = Duration::from_secs(20);
    let outcome = rpc::call::<u32>(&node, Module::This, "double", &(21u32,), patience);
    send(report, &format!("double: {outcome:?}"));
    let outcome = rpc::call::<()>(&node, Module::This, "fail", &(), patience);
    send(report, &format!("fail: {outcome:?}"));
    let outcome = rpc::call::<()>(&node, Module::This, "hang", &(), Duration::from_millis(200));
    send(report, &format!("hang: {outcome:?}"));
    let outcome = rpc::call::<()>(&node, Module::This, "nosuch", &(), patience);
    send(report, &format!("nosuch: {}", outcome.is_err_and(|e| e.to_string().contains("nosuch"))));
    let outcome = rpc::call::<u32>(&node, Module::This, "nop", &(), patience);
    send(report, &format!("decode: {}", matches!(outcome, Err(rpc::CallError::Decode(_)))));
    let outcomes = rpc::multicall::<u32>(&[&node, &node], Module::This, "double", &(2u32,), patience);
    send(report, &format!("multicall: {outcomes:?}"));
    rpc::cast(&node, Module::This, "ping", &(report,)).expect("cast");
    send(report, &format!("pending: {}", pending()));
}

spore_guest::entries!(caller, double, fail, hang, nop, ping);
