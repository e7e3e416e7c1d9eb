//! Sink: counts numbered messages and checks they arrive in order.

use spore_guest::{Pid, Received, receive_any, send};

/// Receives raw messages: tag 0 carries a little-endian u64 sequence number starting at 0,
/// tag 1 ends the run. Then sends `(count, in_order)` to `reply_to`.
fn sink(reply_to: Pid) {
    let mut count: u64 = 0;
    let mut in_order = true;
    loop {
        let Some(Received::Message(m)) = receive_any(None) else { continue };
        if m.tag == 1 {
            break;
        }
        let seq = m.payload.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
        in_order &= seq == Some(count);
        count += 1;
    }
    send(reply_to, &(count, in_order));
}

spore_guest::entries!(sink);
