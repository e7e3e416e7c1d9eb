//! Limits: message size and receive timeouts, seen from inside a guest; and what
//! `send-receive` does with a send that fails and with entries a typed receive skips.

use std::time::Duration;

use spore_guest::{
    Module, Pid, Received, SendError, Spawn, SpawnError, receive, receive_timeout, send, send_receive,
    send_receive_any, try_send,
};

/// Tries to send `bytes` bytes to itself and reports the outcome to `parent` as text.
fn send_big(parent: Pid, bytes: u64) {
    let payload = serde_bytes_vec(bytes as usize);
    let outcome = match try_send(Pid::me(), &payload) {
        Ok(()) => "sent".to_owned(),
        Err(SendError::TooLarge(limit)) => format!("too large (limit {limit})"),
        Err(e) => format!("error {e}"),
    };
    send(parent, &outcome);
}

fn serde_bytes_vec(n: usize) -> Vec<u8> {
    vec![0u8; n]
}

/// Waits `ms` for a message that never comes, then tells `parent` "timeout".
fn wait(parent: Pid, ms: u64) {
    let got: Option<String> = receive_timeout(Duration::from_millis(ms));
    send(parent, &got.map_or("timeout".to_owned(), |m| format!("message {m}")));
}

/// Never receives: its mailbox only fills.
fn deaf() {
    spore_guest::sleep(Duration::from_secs(3600));
}

/// Sets three timers for `parent` (one cancelled), sleeps past them, then says "slept".
fn timers(parent: Pid) {
    spore_guest::send_after(Duration::from_millis(60), parent, "late").expect("timer");
    spore_guest::send_after(Duration::from_millis(10), parent, "early").expect("timer");
    let cancelled = spore_guest::send_after(Duration::from_millis(30), parent, "cancelled").expect("timer");
    assert!(spore_guest::cancel_timer(cancelled));
    spore_guest::sleep(Duration::from_millis(100));
    send(parent, "slept");
}

/// Sets a timer for `parent` and ends at once: its message comes all the same.
fn timer_after_end(parent: Pid) {
    spore_guest::send_after(Duration::from_millis(300), parent, "after its end").expect("timer");
}

/// Sets a timer with a message of `bytes` bytes for `parent` and reports the outcome to
/// `parent` as text (the message itself follows when it was accepted).
fn send_big_later(parent: Pid, bytes: u64) {
    let outcome = match spore_guest::send_after(Duration::ZERO, parent, &serde_bytes_vec(bytes as usize)) {
        Ok(_) => "set".to_owned(),
        Err(SendError::TooLarge(limit)) => format!("too large (limit {limit})"),
        Err(e) => format!("error {e}"),
    };
    send(parent, &outcome);
}

/// Sets timers an hour away, each with a message of `bytes` bytes for itself, until one
/// is refused or `n` are set; then cancels the first and sets one more. Reports
/// `"<set> set, then <error>; after a cancel: <outcome>"` to `parent`, and ends (its
/// timers end with it).
fn pending_timers(parent: Pid, n: u64, bytes: u64) {
    let hour = Duration::from_secs(3600);
    let message = serde_bytes_vec(bytes as usize);
    let mut timers = Vec::new();
    let mut refused = "none".to_owned();
    while (timers.len() as u64) < n {
        match spore_guest::send_after(hour, Pid::me(), &message) {
            Ok(timer) => timers.push(timer),
            Err(e) => {
                refused = e.to_string();
                break;
            }
        }
    }
    let again = match timers.first() {
        Some(&first) if spore_guest::cancel_timer(first) => {
            match spore_guest::send_after(hour, Pid::me(), &message) {
                Ok(_) => "set".to_owned(),
                Err(e) => e.to_string(),
            }
        }
        _ => "nothing to cancel".to_owned(),
    };
    send(parent, &format!("{} set, then {refused}; after a cancel: {again}", timers.len()));
}

/// Sets a timer an hour away for `target`, then tells `parent` "set" (or the error) and
/// waits for a message.
fn timer_for(parent: Pid, target: Pid) {
    match spore_guest::send_after(Duration::from_secs(3600), target, "in an hour") {
        Ok(_) => send(parent, "set"),
        Err(e) => send(parent, &e.to_string()),
    }
    let _: Option<String> = receive_timeout(Duration::from_secs(3600));
}

/// Receives with `n` selectors (none matching, no wait), then tells `parent` "received".
fn many_selectors(parent: Pid, n: u64) {
    use spore_guest::bindings::spore::process::mailbox as wit;
    let selectors: Vec<wit::Selector> = (0..n).map(|i| wit::Selector::Tag(1000 + i)).collect();
    let _ = wit::receive(&selectors, Some(0));
    send(parent, "received");
}

/// Spawns a module of `bytes` zero bytes and reports the outcome to `parent` as text.
fn spawn_bytes(parent: Pid, bytes: u64) {
    let outcome = match Spawn::new("main").module(Module::Bytes(vec![0u8; bytes as usize])).start() {
        Ok(_) => "spawned".to_owned(),
        Err(SpawnError::TooLarge(limit)) => format!("too large (limit {limit})"),
        Err(e) => format!("error {e}"),
    };
    send(parent, &outcome);
}

/// Exercises `send-receive` on its own mailbox (the node's message limit must be under
/// `big` bytes) and reports to `parent` what each step got, as `"<step>; <step>; ..."`:
/// - the raw call with a send over the limit: its error, and nothing received (the entry
///   that waits stays);
/// - the raw call with a send that works: the oldest entry comes back (the one that waited);
/// - `send_receive::<String>` skips an integer (saved) for the text it sent;
/// - `send_receive_any` with that integer saved: the integer (oldest), then its own text;
/// - `send_receive_any` with a timeout: the oldest waiting; to `parent` (`"a note"`, which
///   `parent` gets first) with nothing left here: none.
fn send_receive_halves(parent: Pid, big: u64) {
    use spore_guest::bindings::spore::process::{mailbox as wit, process as wit_process};
    let me = Pid::me();
    let raw_me = wit_process::self_();
    let text =
        |payload: &[u8]| spore_guest::codec::decode::<String>(payload).unwrap_or_else(|e| e.to_string());
    let describe = |entry: Option<Received>| match entry {
        Some(Received::Message(m)) => match m.decode::<String>() {
            Ok(t) => t,
            Err(_) => format!("{:?}", m.decode::<u64>()),
        },
        other => format!("{other:?}"),
    };
    let mut steps = Vec::new();
    send(me, "waiting");
    steps.push(match wit::send_receive(raw_me, 0, &vec![0u8; big as usize], &[], Some(0)) {
        Err(wit::SendError::TooLarge(limit)) => {
            format!("too large (limit {limit}), {} pending", spore_guest::pending())
        }
        other => format!("unexpected {other:?}"),
    });
    let first = spore_guest::codec::encode("first").expect("encode");
    steps.push(match wit::send_receive(raw_me, 0, &first, &[wit::Selector::Any], None) {
        Ok(Some(wit::Incoming::Message(m))) => text(&m.payload),
        other => format!("unexpected {other:?}"),
    });
    let _: String = receive();
    send(me, &7u64);
    steps.push(send_receive::<String>(me, "second"));
    steps.push(describe(send_receive_any(me, "third", None)));
    steps.push(describe(send_receive_any(me, "fourth", Some(Duration::from_secs(5)))));
    steps.push(describe(send_receive_any(me, "fifth", Some(Duration::ZERO))));
    steps.push(describe(spore_guest::receive_any(Some(Duration::ZERO))));
    steps.push(describe(send_receive_any(parent, "a note", Some(Duration::from_millis(10)))));
    send(parent, &steps.join("; "));
}

/// Sends itself messages of several sizes with tags that fill all 64 bits, takes each back
/// through `receive` and through `send-receive`, and tells `parent` `"ok"` or the first
/// field that differs: the host lowers a received message by hand, and this checks every
/// field it writes (sender's node, incarnation and index, tag, payload) where a guest reads it.
fn received_fields(parent: Pid) {
    use spore_guest::bindings::spore::process::{mailbox as wit, process as wit_process};
    let me = wit_process::self_();
    let check = |how: &str, tag: u64, payload: &[u8], got: Option<wit::Incoming>| match got {
        Some(wit::Incoming::Message(m)) => {
            let sender = (m.sender.node, m.sender.incarnation, m.sender.index);
            if sender != (me.node, me.incarnation, me.index) {
                Err(format!("{how}: sender {sender:?}, not {:?}", (me.node, me.incarnation, me.index)))
            } else if m.tag != tag {
                Err(format!("{how}: tag {:#x}, not {tag:#x}", m.tag))
            } else if m.payload != payload {
                Err(format!("{how}: {} payload bytes differ (of {})", payload.len(), m.payload.len()))
            } else {
                Ok(())
            }
        }
        other => Err(format!("{how}: {other:?}")),
    };
    let outcome = [0usize, 1, 7, 64, 65, 4000, 70_000].iter().enumerate().try_for_each(|(i, &len)| {
        let payload: Vec<u8> = (0..len).map(|b| (b * 7 + i) as u8).collect();
        let tag = 0xfedc_ba98_7654_3210 ^ i as u64;
        wit::send(me, tag, &payload).map_err(|e| format!("send: {e:?}"))?;
        check("receive", tag, &payload, wit::receive(&[wit::Selector::Tag(tag)], None))?;
        let tag = !tag;
        let got = wit::send_receive(me, tag, &payload, &[wit::Selector::Tag(tag)], None)
            .map_err(|e| format!("send-receive: {e:?}"))?;
        check("send-receive", tag, &payload, got)
    });
    let outcome = outcome.and_then(|()| received_many_fields(me, check));
    send(parent, &outcome.map_or_else(|e| e, |()| "ok".to_owned()));
}

/// The batch half of [`received_fields`]: messages of several sizes with an exit signal
/// among them (while trapping exits), taken in one `receive-many`, each checked in order.
fn received_many_fields(
    me: spore_guest::bindings::spore::process::types::Pid,
    check: impl Fn(
        &str,
        u64,
        &[u8],
        Option<spore_guest::bindings::spore::process::mailbox::Incoming>,
    ) -> Result<(), String>,
) -> Result<(), String> {
    use spore_guest::bindings::spore::process::{link as wit_link, mailbox as wit, types as wit_types};
    wit_link::trap_exit(true);
    let sizes = [3usize, 0, 64, 1000];
    let payloads: Vec<Vec<u8>> = sizes.iter().map(|&len| (0..len).map(|b| (b * 3) as u8).collect()).collect();
    for (i, payload) in payloads.iter().enumerate() {
        if i == 2 {
            wit_link::exit(me, &wit_types::ExitReason::Panic("in the batch".into()));
        }
        wit::send(me, 0x0123_4567_89ab_cdef + i as u64, payload).map_err(|e| format!("send: {e:?}"))?;
    }
    let mut batch = wit::receive_many(16, Some(1000)).into_iter();
    for (i, payload) in payloads.iter().enumerate() {
        if i == 2 {
            match batch.next() {
                Some(wit::Incoming::Exit(e))
                    if (e.sender.node, e.sender.index) == (me.node, me.index)
                        && matches!(&e.reason, wit_types::ExitReason::Panic(why) if why == "in the batch") => {
                }
                other => return Err(format!("receive-many: {other:?}, not the exit signal")),
            }
        }
        check("receive-many", 0x0123_4567_89ab_cdef + i as u64, payload, batch.next())?;
    }
    match batch.next() {
        None => Ok(()),
        extra => Err(format!("receive-many: an extra entry {extra:?}")),
    }
}

/// Sends `(i, padding)` for i in 0..n, `size` bytes of padding each, to `to` through
/// `send-receive` with no time to wait for a reply, then `"end"`: to a node whose send window
/// is smaller than what is sent, the sends wait for credit inside `send-receive`.
fn send_receive_flood(to: Pid, n: u64, size: u64) {
    let padding = "x".repeat(size as usize);
    for i in 0..n {
        if let Some(entry) = send_receive_any(to, &(i, padding.as_str()), Some(Duration::ZERO)) {
            panic!("nothing was sent here, yet {entry:?}");
        }
    }
    send(to, "end");
}

spore_guest::entries!(
    send_receive_flood,
    received_fields,
    send_big,
    send_big_later,
    wait,
    deaf,
    timers,
    timer_after_end,
    pending_timers,
    timer_for,
    spawn_bytes,
    many_selectors,
    send_receive_halves
);
