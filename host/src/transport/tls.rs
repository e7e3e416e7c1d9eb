//! Mutual TLS keyed by the cookie: one Ed25519 key pair, the cluster key, derived
//! deterministically from the cookie (HKDF-SHA256 → seed). Every node presents a certificate
//! for the cluster key that names it, and accepts a peer only if the peer's certificate
//! carries the same key; a full handshake's signature then proves the peer holds that key,
//! and so knows the cookie (a resumed one proves it by the ticket: [`super::resume`]). The
//! cookie itself never crosses the wire.
//!
//! Until commit a312bdc, the cookie's key was a CA that signed a fresh leaf key per
//! node start, checked by stock rustls verifiers. That proved the same thing (a cookie holder
//! made the peer's certificate) at the price of one more Ed25519 verification and webpki's
//! chain building on each side of every first connect, both on the handshake's critical
//! path: about 0.2 ms of a 2-2.7 ms connect on the reference VM.
//!
//! A node's certificate names it as `<node-id>.node.spore` (node names such as `a@host` are
//! not DNS names). The acceptor checks the name a dialer gives in its hello against the
//! dialer's certificate; the dialer checks the acceptor's hello for the name of the node it
//! dialled (any cookie holder could make a certificate for any name: the names catch a dial
//! that reached the wrong node, not an impostor).
//!
//! Sessions resume across the cluster ([`super::resume`]): a node's first connection to a
//! peer usually resumes with a ticket it gave itself at start, and sends no certificate.

use std::sync::Arc;

use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, PKCS_ED25519, PublicKeyData};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

use super::resume::{Seeder, TicketKey, Tickets};
use crate::process::NodeId;
use crate::proto::{ALPN, Hello};

/// Salt of the cookie → key derivation; changing it splits every cluster.
const KEY_SALT: &[u8] = b"spore/cookie-ca/v1";
/// PKCS#8 v1 prefix of an Ed25519 private key (RFC 8410), followed by the 32-byte seed.
const ED25519_PKCS8_PREFIX: [u8; 16] =
    [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];

/// Why TLS material could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Certificate generation failed.
    #[error("cannot make certificates: {0}")]
    Certificate(#[from] rcgen::Error),
    /// rustls refused the configuration.
    #[error("cannot configure TLS: {0}")]
    Rustls(#[from] rustls::Error),
    /// Key derivation failed.
    #[error("cannot derive the cluster key from the cookie")]
    Derive,
    /// A node's handshake with itself, for its first session tickets, failed.
    #[error("cannot make session tickets: {0}")]
    Seed(String),
}

/// The DNS-style name a node's certificate carries.
pub fn cert_name(node: &str) -> String {
    format!("{:016x}.node.spore", NodeId::of(node).0)
}

/// Who a dialer says it is, sent in its TLS ClientHello as the first label of the server
/// name it asks for: `<node id>-<incarnation>.node.spore`. The name does not depend on the
/// node dialled, so that a session ticket, which is bound to it, resumes with any peer.
///
/// The acceptor decides whether to take the connection (is it a duplicate?) when the
/// ClientHello arrives, and sends its hello with its first flight, as 0.5-RTT data, instead
/// of a round trip after the handshake. A claim proves nothing: once the handshake is done,
/// the acceptor checks it against the dialer's certificate and hello, and closes the
/// connection if they differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Claim {
    /// The dialer's node id.
    pub node: NodeId,
    /// The dialer's incarnation.
    pub incarnation: u32,
}

impl Claim {
    /// The claim of the node that sends `hello`.
    pub fn of(hello: &Hello) -> Self {
        Self { node: NodeId::of(&hello.name), incarnation: hello.incarnation }
    }

    /// The server name a dialer with this claim asks for.
    pub fn server_name(&self) -> String {
        format!("{:016x}-{:08x}.node.spore", self.node.0, self.incarnation)
    }

    /// The claim a server name carries, if any.
    pub fn parse(server_name: &str) -> Option<Self> {
        let (label, _) = server_name.split_once('.')?;
        let (node, incarnation) = label.split_once('-')?;
        let hex = |s: &str, len| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex(node, 16) || !hex(incarnation, 8) {
            return None;
        }
        Some(Self {
            node: NodeId(u64::from_str_radix(node, 16).ok()?),
            incarnation: u32::from_str_radix(incarnation, 16).ok()?,
        })
    }
}

/// A node's TLS identity: its certificate for the cluster key, the key, and the cluster's
/// session tickets.
pub struct ClusterIdentity {
    verifier: Arc<ClusterVerifier>,
    cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
    ticket_key: Arc<TicketKey>,
    tickets: Arc<Tickets>,
}

impl ClusterIdentity {
    /// The identity of `node` in the cluster of `cookie`.
    pub fn from_cookie(cookie: &[u8], node: &str) -> Result<Self, TlsError> {
        let prk = cluster_prk(cookie);
        let key = cluster_key(&prk)?;
        let name = cert_name(node);
        // Also `*.<name>`, the server names that nodes of the builds before cluster-wide
        // resumption ask for (`<claim>.<name>`) and check: they can still dial this one.
        let mut params = CertificateParams::new(vec![format!("*.{name}"), name])?;
        params.distinguished_name.push(DnType::CommonName, node);
        params.extended_key_usages =
            vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.self_signed(&key)?;
        let algorithms = rustls::crypto::ring::default_provider().signature_verification_algorithms;
        Ok(Self {
            verifier: Arc::new(ClusterVerifier { key: key.subject_public_key_info(), algorithms }),
            cert: cert.der().clone(),
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
            ticket_key: Arc::new(TicketKey::new(&prk)?),
            tickets: Arc::default(),
        })
    }

    /// The rustls server configuration: TLS 1.3, a client certificate for the cluster key
    /// required, session tickets sealed with the cluster's ticket key.
    pub fn server_config(&self) -> Result<rustls::ServerConfig, TlsError> {
        let provider = Arc::new(provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(Arc::clone(&self.verifier) as Arc<dyn ClientCertVerifier>)
            .with_single_cert(vec![self.cert.clone()], PrivateKeyDer::Pkcs8(self.key.clone_key()))?;
        config.alpn_protocols = vec![ALPN.to_vec()];
        config.ticketer = Arc::clone(&self.ticket_key) as Arc<dyn rustls::server::ProducesTickets>;
        // One ticket per connection replaces the one the dialer used.
        config.send_tls13_tickets = 1;
        Ok(config)
    }

    /// The rustls client configuration: TLS 1.3, our certificate presented, the server's
    /// checked for the cluster key, sessions resumed from the node's pool of tickets.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, TlsError> {
        let provider = Arc::new(provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(Arc::clone(&self.verifier) as Arc<dyn ServerCertVerifier>)
            .with_client_auth_cert(vec![self.cert.clone()], PrivateKeyDer::Pkcs8(self.key.clone_key()))?;
        config.alpn_protocols = vec![ALPN.to_vec()];
        config.resumption = rustls::client::Resumption::store(Arc::clone(&self.tickets) as Arc<_>);
        Ok(config)
    }

    /// The seeder of this node's session tickets for `claim`, by handshakes between `client`
    /// (made by [`Self::client_config`], and the one the node will dial with: a ticket
    /// resumes only with the configuration that received it) and `server`, in memory.
    pub fn seeder(
        &self,
        client: Arc<rustls::ClientConfig>,
        server: &rustls::ServerConfig,
        claim: Claim,
    ) -> Result<Seeder, TlsError> {
        let name = ServerName::try_from(claim.server_name()).map_err(|e| TlsError::Seed(e.to_string()))?;
        Ok(Seeder::new(client, server, name, Arc::clone(&self.tickets)))
    }

    /// Session tickets held.
    pub fn tickets(&self) -> usize {
        self.tickets.len()
    }
}

/// ring's crypto, with one cipher suite: TLS 1.3's AES-128-GCM with SHA-256. ring's
/// default puts AES-256-GCM with SHA-384 first, and on CPUs where ring has no fast SHA-512
/// (AMD's, the reference VM's) its transcript hash and key schedule cost a mutual handshake
/// 60 µs more CPU of 495 (in memory, both sides); AES-128 also encrypts a third faster.
/// One key exchange group, X25519, its key pairs made ahead ([`super::kx`]).
fn provider() -> rustls::crypto::CryptoProvider {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = vec![rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256];
    provider.kx_groups = super::kx::GROUPS.to_vec();
    super::kx::prepare();
    provider
}

/// Whether the certificate `cert` names node `node`.
pub fn cert_names(cert: &CertificateDer<'_>, node: &str) -> Result<(), String> {
    let parsed = webpki::EndEntityCert::try_from(cert).map_err(|e| e.to_string())?;
    let name = ServerName::try_from(cert_name(node)).map_err(|e| e.to_string())?;
    parsed
        .verify_is_valid_for_subject_name(&name)
        .map_err(|_| format!("its certificate does not name node {node}"))
}

/// The secret every key of the cluster of `cookie` is derived from.
fn cluster_prk(cookie: &[u8]) -> ring::hkdf::Prk {
    ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, KEY_SALT).extract(cookie)
}

/// The cluster key: the same on every node of a cookie.
fn cluster_key(prk: &ring::hkdf::Prk) -> Result<KeyPair, TlsError> {
    let mut seed = [0u8; 32];
    prk.expand(&[b"ed25519-seed"], ring::hkdf::HKDF_SHA256)
        .and_then(|okm| okm.fill(&mut seed))
        .map_err(|_| TlsError::Derive)?;
    let pkcs8: Vec<u8> = ED25519_PKCS8_PREFIX.iter().chain(seed.iter()).copied().collect();
    Ok(KeyPair::from_pkcs8_der_and_sign_algo(&PrivatePkcs8KeyDer::from(pkcs8), &PKCS_ED25519)?)
}

/// Accepts a peer's certificate when it carries the cluster key; the handshake signatures
/// are checked as rustls does.
#[derive(Debug)]
struct ClusterVerifier {
    /// The cluster key's SubjectPublicKeyInfo, DER.
    key: Vec<u8>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClusterVerifier {
    /// Whether the certificate carries the cluster key.
    fn check(&self, cert: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        let parsed = webpki::EndEntityCert::try_from(cert)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        if parsed.subject_public_key_info().as_ref() != self.key.as_slice() {
            // Another cookie's key.
            return Err(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer));
        }
        Ok(())
    }
}

impl ServerCertVerifier for ClusterVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The name is the dialer's claim; the acceptor's hello names the node reached.
        self.check(end_entity)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

impl ClientCertVerifier for ClusterVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cluster_key_depends_only_on_the_cookie() {
        let key = |cookie: &[u8]| cluster_key(&cluster_prk(cookie)).unwrap().subject_public_key_info();
        assert_eq!(key(b"one cookie"), key(b"one cookie"));
        assert_ne!(key(b"one cookie"), key(b"another cookie"));
    }

    #[test]
    fn a_claim_survives_its_server_name_and_nothing_else_parses_as_one() {
        let claim = Claim { node: NodeId::of("a@host"), incarnation: 0xdead_beef };
        assert_eq!(Claim::parse(&claim.server_name()), Some(claim));
        assert_eq!(Claim::parse(&cert_name("b@host")), None);
        for bad in [
            "",
            "x",
            "0123456789abcdef-0123456.a",
            "0123456789abcdeg-01234567.a",
            "+123456789abcdef-01234567.a",
        ] {
            assert_eq!(Claim::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_certificate_names_its_node_only() {
        let id = ClusterIdentity::from_cookie(b"c", "a@host").unwrap();
        assert!(cert_names(&id.cert, "a@host").is_ok());
        assert!(cert_names(&id.cert, "b@host").is_err());
        // The name a node of an earlier build asks for when it dials a@host.
        let parsed = webpki::EndEntityCert::try_from(&id.cert).unwrap();
        let claim = Claim { node: NodeId::of("b@host"), incarnation: 7 };
        let earlier = |node: &str| {
            let label = claim.server_name();
            let (label, _) = label.split_once('.').unwrap();
            ServerName::try_from(format!("{label}.{}", cert_name(node))).unwrap()
        };
        assert!(parsed.verify_is_valid_for_subject_name(&earlier("a@host")).is_ok());
        assert!(parsed.verify_is_valid_for_subject_name(&earlier("b@host")).is_err());
    }

    #[test]
    fn only_the_cookies_key_is_accepted() {
        let a = ClusterIdentity::from_cookie(b"c", "a@host").unwrap();
        let b = ClusterIdentity::from_cookie(b"c", "b@host").unwrap();
        let other = ClusterIdentity::from_cookie(b"another cookie", "b@host").unwrap();
        let now = UnixTime::now();
        let claim = Claim { node: NodeId::of("a@host"), incarnation: 7 };
        let name = ServerName::try_from(claim.server_name()).unwrap();
        assert!(a.verifier.verify_client_cert(&b.cert, &[], now).is_ok());
        assert!(a.verifier.verify_client_cert(&other.cert, &[], now).is_err());
        assert!(a.verifier.verify_server_cert(&b.cert, &[], &name, &[], now).is_ok());
        assert!(a.verifier.verify_server_cert(&other.cert, &[], &name, &[], now).is_err());
        let garbage = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00]);
        assert!(a.verifier.verify_client_cert(&garbage, &[], now).is_err());
        assert!(a.verifier.verify_server_cert(&garbage, &[], &name, &[], now).is_err());
    }

    /// Node `a`'s configurations, its tickets seeded as a node's are at start.
    fn seeded(a: &ClusterIdentity, claim: Claim) -> (Arc<rustls::ClientConfig>, rustls::ServerConfig) {
        let client = Arc::new(a.client_config().unwrap());
        let server = a.server_config().unwrap();
        a.seeder(Arc::clone(&client), &server, claim).unwrap().seed().unwrap();
        (client, server)
    }

    /// A handshake in memory from `client` (as `claim`) to `server`.
    fn connect(
        client: &Arc<rustls::ClientConfig>,
        server: rustls::ServerConfig,
        claim: Claim,
    ) -> Result<(rustls::ClientConnection, rustls::ServerConnection), TlsError> {
        let name = ServerName::try_from(claim.server_name()).unwrap();
        let mut c = rustls::ClientConnection::new(Arc::clone(client), name)?;
        let mut s = rustls::ServerConnection::new(Arc::new(server))?;
        super::super::resume::handshake(&mut c, &mut s)?;
        Ok((c, s))
    }

    #[test]
    fn a_first_connection_resumes_with_a_ticket_the_dialer_gave_itself() {
        let claim = Claim { node: NodeId::of("a@host"), incarnation: 7 };
        let a = ClusterIdentity::from_cookie(b"c", "a@host").unwrap();
        let (client, _) = seeded(&a, claim);
        let seeded = a.tickets();
        assert!(seeded > 1, "{seeded} tickets");
        let b = ClusterIdentity::from_cookie(b"c", "b@host").unwrap();
        let (c, s) = connect(&client, b.server_config().unwrap(), claim).unwrap();
        assert_eq!(c.handshake_kind(), Some(rustls::HandshakeKind::Resumed));
        assert_eq!(s.handshake_kind(), Some(rustls::HandshakeKind::Resumed));
        // The acceptor knows the dialer's certificate from the ticket.
        let certs = s.peer_certificates().unwrap();
        assert!(cert_names(&certs[0], "a@host").is_ok());
        // One ticket used, one received.
        assert_eq!(a.tickets(), seeded);
    }

    #[test]
    fn a_ticket_for_another_claim_or_cookie_does_not_resume() {
        let claim = Claim { node: NodeId::of("a@host"), incarnation: 7 };
        let a = ClusterIdentity::from_cookie(b"c", "a@host").unwrap();
        let (client, _) = seeded(&a, claim);
        let b = ClusterIdentity::from_cookie(b"c", "b@host").unwrap();
        // A claim the tickets were not made for: a full handshake, which succeeds.
        let restarted = Claim { incarnation: 8, ..claim };
        let (c, _) = connect(&client, b.server_config().unwrap(), restarted).unwrap();
        assert_eq!(c.handshake_kind(), Some(rustls::HandshakeKind::Full));
        // Another cookie's node opens no ticket, and refuses the certificate.
        let x = ClusterIdentity::from_cookie(b"another cookie", "x@host").unwrap();
        assert!(connect(&client, x.server_config().unwrap(), claim).is_err());
    }

    #[tokio::test]
    async fn a_pool_run_low_by_failed_dials_is_topped_up() {
        let claim = Claim { node: NodeId::of("a@host"), incarnation: 7 };
        let a = ClusterIdentity::from_cookie(b"c", "a@host").unwrap();
        let client = Arc::new(a.client_config().unwrap());
        let seeder = Arc::new(a.seeder(Arc::clone(&client), &a.server_config().unwrap(), claim).unwrap());
        seeder.seed().unwrap();
        let seeded = a.tickets();
        assert!(seeder.top_up().is_none(), "{seeded} tickets: no top-up needed");
        // Dials to a node of another cookie: each takes a ticket and brings none.
        let x = ClusterIdentity::from_cookie(b"another cookie", "x@host").unwrap();
        while a.tickets() > 0 {
            assert!(connect(&client, x.server_config().unwrap(), claim).is_err());
        }
        seeder.top_up().expect("a top-up").await.unwrap();
        assert_eq!(a.tickets(), seeded);
        let b = ClusterIdentity::from_cookie(b"c", "b@host").unwrap();
        let (c, _) = connect(&client, b.server_config().unwrap(), claim).unwrap();
        assert_eq!(c.handshake_kind(), Some(rustls::HandshakeKind::Resumed));
    }
}
