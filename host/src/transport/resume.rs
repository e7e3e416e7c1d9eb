//! Session resumption across the cluster, so that even a node's first connection to a peer
//! skips the certificates and signatures of a full TLS handshake.
//!
//! Every node of a cookie seals its TLS 1.3 session tickets with one key derived from the
//! cookie ([`TicketKey`]), so a ticket that any node issued opens on every other: it is the
//! cookie, used as a pre-shared key through TLS's resumption (rustls has no external PSKs).
//! A node keeps the tickets it was given in one pool for all peers ([`Tickets`]), and at
//! start gives itself a few through a handshake with itself, in memory ([`Seeder`]). A
//! resumed handshake proves what a full one proves here, that the peer knows the cookie:
//! only a cookie holder can open the ticket, or make the binder that the dialer sends with
//! it. Each connection still makes its own X25519 exchange, so its keys stay its own.
//!
//! A ticket names the dialer's claim (the TLS server name: the dialer's node and
//! incarnation, not the node dialled), which the acceptor checks it against, and carries
//! the dialer's certificate, which the acceptor reads as after a full handshake. The dialer
//! learns whom it reached from the acceptor's hello.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use rustls::client::{ClientSessionStore, Tls12ClientSessionValue, Tls13ClientSessionValue};
use rustls::pki_types::ServerName;
use rustls::server::ProducesTickets;
use rustls::{ClientConfig, ClientConnection, NamedGroup, ServerConfig, ServerConnection};

use super::tls::TlsError;

/// How long a ticket may be used: a node connects again within a day, or makes a full
/// handshake (which brings new tickets).
const TICKET_LIFETIME_SECS: u32 = 24 * 60 * 60;
/// Tickets a node gives itself at start: the connections it can open at once, resumed,
/// before its peers' tickets come in.
const SEED_TICKETS: usize = 8;
/// Tickets a node keeps; each connection takes one and brings the ones its peer sends.
const MAX_TICKETS: usize = 16;
/// Tickets left at which a node gives itself more ([`Seeder::top_up`]).
const LOW_TICKETS: usize = 2;
/// AES-GCM's tag.
const TAG_LEN: usize = 16;

/// Seals and opens session tickets with the cluster's ticket key, derived from the cookie.
///
/// Nonces are random: with 96 bits, a key seals 2^32 tickets before a repeat becomes a
/// risk worth naming, and a cluster issues one or two per connection.
pub struct TicketKey {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl TicketKey {
    /// The ticket key of the cluster whose cookie yielded `prk` (HKDF's pseudorandom key).
    pub fn new(prk: &ring::hkdf::Prk) -> Result<Self, TlsError> {
        let mut bytes = [0u8; 32];
        prk.expand(&[b"ticket-key"], ring::hkdf::HKDF_SHA256)
            .and_then(|okm| okm.fill(&mut bytes))
            .map_err(|_| TlsError::Derive)?;
        let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| TlsError::Derive)?;
        Ok(Self { key: LessSafeKey::new(key), rng: SystemRandom::new() })
    }
}

impl std::fmt::Debug for TicketKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TicketKey")
    }
}

impl ProducesTickets for TicketKey {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        TICKET_LIFETIME_SECS
    }

    /// `nonce || ciphertext || tag`.
    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).ok()?;
        let mut sealed = Vec::with_capacity(NONCE_LEN + plain.len() + TAG_LEN);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(plain);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::empty(),
                &mut sealed[NONCE_LEN..],
            )
            .ok()?;
        sealed.extend_from_slice(tag.as_ref());
        Some(sealed)
    }

    fn decrypt(&self, sealed: &[u8]) -> Option<Vec<u8>> {
        let (nonce, body) = sealed.split_at_checked(NONCE_LEN)?;
        if body.len() < TAG_LEN {
            return None;
        }
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut plain = body.to_vec();
        let len = self.key.open_in_place(nonce, Aad::empty(), &mut plain).ok()?.len();
        plain.truncate(len);
        Some(plain)
    }
}

/// A node's session tickets, for any peer: each was sealed with the cluster's ticket key
/// for the node's own claim, so the server name a connection asks for does not matter.
#[derive(Default)]
pub struct Tickets {
    held: Mutex<VecDeque<Tls13ClientSessionValue>>,
    kx_hint: Mutex<Option<NamedGroup>>,
}

impl Tickets {
    /// How many are held.
    pub fn len(&self) -> usize {
        self.held().len()
    }

    fn held(&self) -> std::sync::MutexGuard<'_, VecDeque<Tls13ClientSessionValue>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl std::fmt::Debug for Tickets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tickets").field("held", &self.len()).finish()
    }
}

impl ClientSessionStore for Tickets {
    fn set_kx_hint(&self, _: ServerName<'static>, group: NamedGroup) {
        *self.kx_hint.lock().unwrap_or_else(|e| e.into_inner()) = Some(group);
    }

    fn kx_hint(&self, _: &ServerName<'_>) -> Option<NamedGroup> {
        *self.kx_hint.lock().unwrap_or_else(|e| e.into_inner())
    }

    // Nodes speak TLS 1.3 only.
    fn set_tls12_session(&self, _: ServerName<'static>, _: Tls12ClientSessionValue) {}

    fn tls12_session(&self, _: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        None
    }

    fn remove_tls12_session(&self, _: &ServerName<'static>) {}

    fn insert_tls13_ticket(&self, _: ServerName<'static>, value: Tls13ClientSessionValue) {
        let mut held = self.held();
        if held.len() == MAX_TICKETS {
            held.pop_front();
        }
        held.push_back(value);
    }

    /// The newest ticket: a ticket is used once, as TLS 1.3 asks.
    fn take_tls13_ticket(&self, _: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
        self.held().pop_back()
    }
}

/// Gives a node's pool tickets by handshakes with itself, in memory: at start, and again
/// when dials that brought none back (to a node that is down, or of another cookie: each
/// takes a ticket) have run the pool low.
pub struct Seeder {
    /// The node's client configuration: a ticket resumes only with the one that received it.
    client: Arc<ClientConfig>,
    /// The node's server configuration, issuing [`SEED_TICKETS`] per handshake.
    server: Arc<ServerConfig>,
    /// The node's claim, as the server name its dials ask for.
    name: ServerName<'static>,
    tickets: Arc<Tickets>,
    /// Whether a top-up runs.
    running: AtomicBool,
}

impl Seeder {
    /// A seeder for the pool `tickets` of `client`, whose dials ask for `name`.
    pub fn new(
        client: Arc<ClientConfig>,
        server: &ServerConfig,
        name: ServerName<'static>,
        tickets: Arc<Tickets>,
    ) -> Self {
        let mut server = server.clone();
        server.send_tls13_tickets = SEED_TICKETS;
        Self { client, server: Arc::new(server), name, tickets, running: AtomicBool::new(false) }
    }

    /// One handshake with itself: [`SEED_TICKETS`] more tickets, for about half a millisecond
    /// of CPU.
    pub fn seed(&self) -> Result<(), TlsError> {
        let mut c = ClientConnection::new(Arc::clone(&self.client), self.name.clone())?;
        let mut s = ServerConnection::new(Arc::clone(&self.server))?;
        handshake(&mut c, &mut s)
    }

    /// Seeds on a blocking thread if the pool holds [`LOW_TICKETS`] or fewer and no top-up
    /// runs; the handle resolves once it is done. Call within a tokio runtime.
    pub fn top_up(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        if self.tickets.len() > LOW_TICKETS || self.running.swap(true, Ordering::AcqRel) {
            return None;
        }
        let seeder = Arc::clone(self);
        Some(tokio::task::spawn_blocking(move || {
            if let Err(e) = seeder.seed() {
                tracing::warn!("cannot make session tickets: {e}");
            }
            seeder.running.store(false, Ordering::Release);
        }))
    }
}

/// Runs a handshake between `c` and `s` in memory, until both are done and have nothing
/// more to send (the server's tickets included).
pub(super) fn handshake(c: &mut ClientConnection, s: &mut ServerConnection) -> Result<(), TlsError> {
    let mut wire = Vec::new();
    // A TLS 1.3 handshake with client certificates is three flights, then the tickets.
    for _ in 0..4 {
        while c.wants_write() {
            c.write_tls(&mut wire).map_err(|e| TlsError::Seed(e.to_string()))?;
        }
        feed(&mut wire, |bytes| s.read_tls(bytes))?;
        s.process_new_packets()?;
        while s.wants_write() {
            s.write_tls(&mut wire).map_err(|e| TlsError::Seed(e.to_string()))?;
        }
        feed(&mut wire, |bytes| c.read_tls(bytes))?;
        c.process_new_packets()?;
        if !c.is_handshaking() && !s.is_handshaking() && !c.wants_write() {
            return Ok(());
        }
    }
    Err(TlsError::Seed("the handshake did not finish".into()))
}

/// Hands all of `wire` to a connection's `read_tls`, then empties it.
fn feed(
    wire: &mut Vec<u8>,
    mut read: impl FnMut(&mut &[u8]) -> std::io::Result<usize>,
) -> Result<(), TlsError> {
    let mut rest = wire.as_slice();
    while !rest.is_empty() {
        if read(&mut rest).map_err(|e| TlsError::Seed(e.to_string()))? == 0 {
            return Err(TlsError::Seed("a connection took no bytes".into()));
        }
    }
    wire.clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(cookie: &[u8]) -> TicketKey {
        TicketKey::new(&ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"test").extract(cookie)).unwrap()
    }

    #[test]
    fn a_ticket_opens_with_its_cookies_key_only_and_unaltered() {
        let sealed = key(b"cookie").encrypt(b"session state").unwrap();
        assert_eq!(key(b"cookie").decrypt(&sealed).as_deref(), Some(&b"session state"[..]));
        assert_eq!(key(b"another cookie").decrypt(&sealed), None);
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(key(b"cookie").decrypt(&flipped), None);
        for short in [&sealed[..0], &sealed[..NONCE_LEN], &sealed[..NONCE_LEN + TAG_LEN - 1]] {
            assert_eq!(key(b"cookie").decrypt(short), None);
        }
        assert_ne!(key(b"cookie").encrypt(b"x"), key(b"cookie").encrypt(b"x"), "fresh nonces");
    }
}
