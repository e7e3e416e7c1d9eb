//! Names: register, a taken name, whereis.

use spore_guest::{Pid, RegisterError, receive, register, send, whereis};

/// Registers as `name`, reports "ok" or the error to `parent`, then waits for one message
/// and ends.
fn claim(parent: Pid, name: String) {
    let outcome = match register(&name) {
        Ok(()) => "ok".to_owned(),
        Err(RegisterError::Taken(_)) => "taken".to_owned(),
        Err(e) => format!("error {e}"),
    };
    send(parent, &outcome);
    let _: String = receive();
}

/// Reports whether `name` is registered (and to whom) to `parent`.
fn lookup(parent: Pid, name: String) {
    send(parent, &whereis(&name));
}

spore_guest::entries!(claim, lookup);
