//! X25519 key shares made ahead of the handshakes that use them.
//!
//! Each side of a TLS 1.3 handshake makes a fresh ephemeral key pair: the dialer before its
//! ClientHello leaves, the acceptor before its answer can. Making one is a scalar
//! multiplication, about as costly as the key agreement itself, and it sat on the critical
//! path of every connection twice. The key pair does not depend on the handshake, so a
//! background thread makes a few ahead and a handshake takes one. Each is still used once and
//! dropped, as TLS requires; a handshake that finds none ready makes its own, as before.
//!
//! The thread makes them only while no handshake of the process is in progress (see
//! [`Handshake`]), and in Linux's idle scheduling class: a node that waits for its peer's
//! flight spins, yielding its CPU, and the thread took those yields, delaying the flight's
//! handling by the 60-80 µs a key pair takes on the reference VM.

use std::sync::{Condvar, Mutex, MutexGuard, Once};

use rustls::crypto::{ActiveKeyExchange, SupportedKxGroup};
use rustls::{Error, NamedGroup};

/// How many key pairs wait, ready: a node's burst of connections (a mesh joining, a retry
/// loop) takes several at once, and each costs a few dozen bytes.
const READY: usize = 8;

/// X25519, with key pairs made ahead (see the module's documentation).
#[derive(Debug)]
pub struct PreparedX25519;

/// The key exchange groups a node offers: X25519 alone.
pub static GROUPS: [&dyn SupportedKxGroup; 1] = [&PreparedX25519];

/// The process's ready key pairs, shared by its nodes: a key pair serves any handshake.
struct Pool {
    state: Mutex<State>,
    /// Signalled when a key pair is taken or the last handshake in progress ends.
    changed: Condvar,
    /// Starts the thread that refills the pool, once.
    maker: Once,
}

struct State {
    ready: Vec<Box<dyn ActiveKeyExchange>>,
    /// Handshakes in progress in this process.
    handshakes: usize,
}

static POOL: Pool = Pool {
    state: Mutex::new(State { ready: Vec::new(), handshakes: 0 }),
    changed: Condvar::new(),
    maker: Once::new(),
};

fn state() -> MutexGuard<'static, State> {
    POOL.state.lock().unwrap_or_else(|e| e.into_inner())
}

/// A handshake in progress: while one is, no key pair is made ahead.
pub struct Handshake(());

impl Handshake {
    /// Counts a handshake in progress until the guard is dropped.
    pub fn start() -> Self {
        state().handshakes += 1;
        Self(())
    }
}

impl Drop for Handshake {
    fn drop(&mut self) {
        let mut state = state();
        state.handshakes -= 1;
        if state.handshakes == 0 {
            POOL.changed.notify_one();
        }
    }
}

/// The group the key pairs are made in.
fn inner() -> &'static dyn SupportedKxGroup {
    rustls::crypto::ring::kx_group::X25519
}

/// Starts making key pairs ahead, if not yet started: a node calls it as it starts, so that
/// its first handshake finds one ready.
pub fn prepare() {
    POOL.maker.call_once(|| {
        // Without the thread, every handshake makes its own key pair: slower, not wrong.
        let _ = std::thread::Builder::new().name("spore-kx".into()).spawn(refill);
    });
}

/// The maker thread: keeps the pool full, at the lowest priority, for the process's life.
fn refill() {
    crate::sched::lower_priority();
    loop {
        drop(
            POOL.changed
                .wait_while(state(), |s| s.ready.len() >= READY || s.handshakes > 0)
                .unwrap_or_else(|e| e.into_inner()),
        );
        // Made outside the lock: a handshake that takes one meanwhile does not wait.
        match inner().start() {
            Ok(kx) => state().ready.push(kx),
            // The system's random source failed: handshakes make their own (and fail alike).
            Err(_) => return,
        }
    }
}

impl SupportedKxGroup for PreparedX25519 {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, Error> {
        let taken = state().ready.pop();
        // The maker replaces it once no handshake is in progress.
        POOL.changed.notify_one();
        match taken {
            Some(kx) => Ok(kx),
            None => {
                prepare();
                inner().start()
            }
        }
    }

    fn ffdhe_group(&self) -> Option<rustls::ffdhe_groups::FfdheGroup<'static>> {
        None
    }

    fn name(&self) -> NamedGroup {
        NamedGroup::X25519
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepared_key_pairs_agree_and_are_never_handed_out_twice() {
        prepare();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..3 * READY {
            let ours = PreparedX25519.start().unwrap();
            let theirs = inner().start().unwrap();
            assert!(seen.insert(ours.pub_key().to_vec()), "a key pair was handed out twice");
            let (our_pub, their_pub) = (ours.pub_key().to_vec(), theirs.pub_key().to_vec());
            let a = ours.complete(&their_pub).unwrap();
            let b = theirs.complete(&our_pub).unwrap();
            assert_eq!(a.secret_bytes(), b.secret_bytes());
        }
    }
}
