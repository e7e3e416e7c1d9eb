//! Echo: answers every message with the same tag and payload, to its sender.

use spore_guest::{Received, receive_any, send_raw};

/// Echoes until a message with tag 1 (which it also echoes).
fn echo() {
    loop {
        if let Some(Received::Message(m)) = receive_any(None) {
            let _ = send_raw(m.sender, m.tag, &m.payload);
            if m.tag == 1 {
                return;
            }
        }
    }
}

spore_guest::entries!(echo);
