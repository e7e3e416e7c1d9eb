//! Mutual TLS keyed by the cookie: a cluster CA derived deterministically from the cookie
//! (HKDF-SHA256 → Ed25519 seed), which signs a fresh leaf certificate for each node start.
//! Stock rustls verifiers then refuse any peer whose certificate another cookie signed, in
//! both directions, and the cookie itself never crosses the wire.
//!
//! A node's certificate names it as `<node-id>.node.spore` (node names such as `a@host` are
//! not DNS names); the acceptor checks the name a dialer claims against its certificate.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ED25519, SerialNumber,
};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;

use crate::process::NodeId;
use crate::proto::ALPN;

/// Salt of the cookie → CA derivation; changing it splits every cluster.
const CA_SALT: &[u8] = b"spore/cookie-ca/v1";
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
    /// The client verifier could not be built.
    #[error("cannot configure TLS client verification: {0}")]
    Verifier(String),
    /// Key derivation failed.
    #[error("cannot derive the cluster key from the cookie")]
    Derive,
}

/// The DNS-style name a node's certificate carries.
pub fn cert_name(node: &str) -> String {
    format!("{:016x}.node.spore", NodeId::of(node).0)
}

/// A node's TLS identity: the cluster's trust root and this node's leaf.
pub struct ClusterIdentity {
    roots: Arc<RootCertStore>,
    leaf: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

impl ClusterIdentity {
    /// The identity of `node` in the cluster of `cookie`.
    pub fn from_cookie(cookie: &[u8], node: &str) -> Result<Self, TlsError> {
        let (ca_cert, issuer) = cookie_ca(cookie)?;
        let mut roots = RootCertStore::empty();
        roots.add(ca_cert)?;
        let key = KeyPair::generate_for(&PKCS_ED25519)?;
        let mut params = CertificateParams::new(vec![cert_name(node)])?;
        params.distinguished_name.push(DnType::CommonName, node);
        params.extended_key_usages =
            vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let leaf = params.signed_by(&key, &issuer)?;
        Ok(Self {
            roots: Arc::new(roots),
            leaf: leaf.der().clone(),
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
        })
    }

    /// The rustls server configuration: TLS 1.3, client certificates required.
    pub fn server_config(&self) -> Result<rustls::ServerConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::clone(&self.roots), Arc::clone(&provider))
                .build()
                .map_err(|e| TlsError::Verifier(e.to_string()))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![self.leaf.clone()], PrivateKeyDer::Pkcs8(self.key.clone_key()))?;
        config.alpn_protocols = vec![ALPN.to_vec()];
        Ok(config)
    }

    /// The rustls client configuration: TLS 1.3, our certificate presented.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(Arc::clone(&self.roots))
            .with_client_auth_cert(vec![self.leaf.clone()], PrivateKeyDer::Pkcs8(self.key.clone_key()))?;
        config.alpn_protocols = vec![ALPN.to_vec()];
        Ok(config)
    }
}

/// Whether the certificate `cert` names node `node`.
pub fn cert_names(cert: &CertificateDer<'_>, node: &str) -> Result<(), String> {
    let parsed = rustls::server::ParsedCertificate::try_from(cert).map_err(|e| e.to_string())?;
    let name = ServerName::try_from(cert_name(node)).map_err(|e| e.to_string())?;
    rustls::client::verify_server_name(&parsed, &name)
        .map_err(|_| format!("its certificate does not name node {node}"))
}

/// The cluster CA of `cookie`: byte-identical on every node (Ed25519 signatures are
/// deterministic, and every field is fixed).
fn cookie_ca(cookie: &[u8]) -> Result<(CertificateDer<'static>, Issuer<'static, KeyPair>), TlsError> {
    let prk = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, CA_SALT).extract(cookie);
    let mut seed = [0u8; 32];
    prk.expand(&[b"ed25519-seed"], ring::hkdf::HKDF_SHA256)
        .and_then(|okm| okm.fill(&mut seed))
        .map_err(|_| TlsError::Derive)?;
    let pkcs8: Vec<u8> = ED25519_PKCS8_PREFIX.iter().chain(seed.iter()).copied().collect();
    let key = KeyPair::from_pkcs8_der_and_sign_algo(&PrivatePkcs8KeyDer::from(pkcs8), &PKCS_ED25519)?;
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, "spore cluster");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.serial_number = Some(SerialNumber::from_slice(&[1]));
    let cert = params.self_signed(&key)?;
    Ok((cert.der().clone(), Issuer::new(params, key)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cluster_ca_depends_only_on_the_cookie() {
        let (a, _) = cookie_ca(b"one cookie").unwrap();
        let (b, _) = cookie_ca(b"one cookie").unwrap();
        let (c, _) = cookie_ca(b"another cookie").unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn a_leaf_names_its_node_only() {
        let id = ClusterIdentity::from_cookie(b"c", "a@host").unwrap();
        assert!(cert_names(&id.leaf, "a@host").is_ok());
        assert!(cert_names(&id.leaf, "b@host").is_err());
    }
}
