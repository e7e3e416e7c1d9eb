//! Mutual TLS keyed by the cookie: one Ed25519 key pair, the cluster key, derived
//! deterministically from the cookie (HKDF-SHA256 → seed). Every node presents a certificate
//! for the cluster key that names it, and accepts a peer only if the peer's certificate
//! carries the same key; the handshake's signature then proves the peer holds that key, and
//! so knows the cookie. The cookie itself never crosses the wire.
//!
//! Until commit a312bdc, the cookie's key was a CA that signed a fresh leaf key per
//! node start, checked by stock rustls verifiers. That proved the same thing (a cookie holder
//! made the peer's certificate) at the price of one more Ed25519 verification and webpki's
//! chain building on each side of every first connect, both on the handshake's critical
//! path: about 0.2 ms of a 2-2.7 ms connect on the reference VM.
//!
//! A node's certificate names it as `<node-id>.node.spore` (node names such as `a@host` are
//! not DNS names), and as `*.<node-id>.node.spore`, the names a dialer with a [`Claim`] asks
//! for: the dialer checks the name of the node it dialled, the acceptor the name a dialer
//! claims in its hello against its certificate.

use std::sync::Arc;

use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, PKCS_ED25519, PublicKeyData};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

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
}

/// The DNS-style name a node's certificate carries.
pub fn cert_name(node: &str) -> String {
    format!("{:016x}.node.spore", NodeId::of(node).0)
}

/// Who a dialer says it is, sent in its TLS ClientHello as the first label of the server
/// name it asks for: `<node id>-<incarnation>.<node id dialled>.node.spore`.
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

    /// The server name a dialer with this claim asks node `node` for.
    pub fn server_name(&self, node: &str) -> String {
        format!("{:016x}-{:08x}.{}", self.node.0, self.incarnation, cert_name(node))
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

/// A node's TLS identity: its certificate for the cluster key, and the key.
pub struct ClusterIdentity {
    verifier: Arc<ClusterVerifier>,
    cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

impl ClusterIdentity {
    /// The identity of `node` in the cluster of `cookie`.
    pub fn from_cookie(cookie: &[u8], node: &str) -> Result<Self, TlsError> {
        let key = cluster_key(cookie)?;
        let name = cert_name(node);
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
        })
    }

    /// The rustls server configuration: TLS 1.3, a client certificate for the cluster key
    /// required.
    pub fn server_config(&self) -> Result<rustls::ServerConfig, TlsError> {
        let provider = Arc::new(provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(Arc::clone(&self.verifier) as Arc<dyn ClientCertVerifier>)
            .with_single_cert(vec![self.cert.clone()], PrivateKeyDer::Pkcs8(self.key.clone_key()))?;
        config.alpn_protocols = vec![ALPN.to_vec()];
        Ok(config)
    }

    /// The rustls client configuration: TLS 1.3, our certificate presented, the server's
    /// checked for the cluster key and the dialled node's name.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, TlsError> {
        let provider = Arc::new(provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(Arc::clone(&self.verifier) as Arc<dyn ServerCertVerifier>)
            .with_client_auth_cert(vec![self.cert.clone()], PrivateKeyDer::Pkcs8(self.key.clone_key()))?;
        config.alpn_protocols = vec![ALPN.to_vec()];
        Ok(config)
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

/// The cluster key of `cookie`: the same on every node.
fn cluster_key(cookie: &[u8]) -> Result<KeyPair, TlsError> {
    let prk = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, KEY_SALT).extract(cookie);
    let mut seed = [0u8; 32];
    prk.expand(&[b"ed25519-seed"], ring::hkdf::HKDF_SHA256)
        .and_then(|okm| okm.fill(&mut seed))
        .map_err(|_| TlsError::Derive)?;
    let pkcs8: Vec<u8> = ED25519_PKCS8_PREFIX.iter().chain(seed.iter()).copied().collect();
    Ok(KeyPair::from_pkcs8_der_and_sign_algo(&PrivatePkcs8KeyDer::from(pkcs8), &PKCS_ED25519)?)
}

/// Accepts a peer's certificate when it carries the cluster key (and, as a server's, names
/// the node dialled); the handshake signatures are checked as rustls does.
#[derive(Debug)]
struct ClusterVerifier {
    /// The cluster key's SubjectPublicKeyInfo, DER.
    key: Vec<u8>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClusterVerifier {
    /// The certificate, parsed, if it carries the cluster key.
    fn check<'a>(&self, cert: &'a CertificateDer<'a>) -> Result<webpki::EndEntityCert<'a>, rustls::Error> {
        let parsed = webpki::EndEntityCert::try_from(cert)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        if parsed.subject_public_key_info().as_ref() != self.key.as_slice() {
            // Another cookie's key.
            return Err(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer));
        }
        Ok(parsed)
    }
}

impl ServerCertVerifier for ClusterVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity)?
            .verify_is_valid_for_subject_name(server_name)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::NotValidForName))?;
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
        let key = |cookie: &[u8]| cluster_key(cookie).unwrap().subject_public_key_info();
        assert_eq!(key(b"one cookie"), key(b"one cookie"));
        assert_ne!(key(b"one cookie"), key(b"another cookie"));
    }

    #[test]
    fn a_claim_survives_its_server_name_and_nothing_else_parses_as_one() {
        let claim = Claim { node: NodeId::of("a@host"), incarnation: 0xdead_beef };
        assert_eq!(Claim::parse(&claim.server_name("b@host")), Some(claim));
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
    }

    #[test]
    fn only_the_cookies_key_and_the_dialled_name_are_accepted() {
        let a = ClusterIdentity::from_cookie(b"c", "a@host").unwrap();
        let b = ClusterIdentity::from_cookie(b"c", "b@host").unwrap();
        let other = ClusterIdentity::from_cookie(b"another cookie", "b@host").unwrap();
        let now = UnixTime::now();
        let name = |node: &str| ServerName::try_from(cert_name(node)).unwrap();
        assert!(a.verifier.verify_client_cert(&b.cert, &[], now).is_ok());
        assert!(a.verifier.verify_client_cert(&other.cert, &[], now).is_err());
        assert!(a.verifier.verify_server_cert(&b.cert, &[], &name("b@host"), &[], now).is_ok());
        let claim = Claim { node: NodeId::of("a@host"), incarnation: 7 };
        let claimed = |node: &str| ServerName::try_from(claim.server_name(node)).unwrap();
        assert!(a.verifier.verify_server_cert(&b.cert, &[], &claimed("b@host"), &[], now).is_ok());
        assert!(a.verifier.verify_server_cert(&b.cert, &[], &claimed("c@host"), &[], now).is_err());
        assert!(a.verifier.verify_server_cert(&b.cert, &[], &name("c@host"), &[], now).is_err());
        assert!(a.verifier.verify_server_cert(&other.cert, &[], &name("b@host"), &[], now).is_err());
        let garbage = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00]);
        assert!(a.verifier.verify_client_cert(&garbage, &[], now).is_err());
    }
}
