//! Real mTLS for tests: a certificate authority made at test time, server
//! and client certificates with SPIFFE URI SANs (written as PEM files for
//! Envoy), and requests sent over TLS presenting a client certificate or none.

use crate::client::{Request, Response};
use crate::envoy::ScratchDir;
use crate::error::KitError;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

fn tls_error(what: &str) -> impl FnOnce(rustls::Error) -> KitError + '_ {
    move |e| KitError::Protocol(format!("{what}: {e}"))
}

fn cert_error(what: &str) -> impl FnOnce(rcgen::Error) -> KitError + '_ {
    move |e| KitError::Protocol(format!("{what}: {e}"))
}

/// A client's TLS connection, over which requests can be sent one after another.
pub type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A certificate and its key, as DER for the client and as PEM files for Envoy.
pub struct Credential {
    pub cert_der: CertificateDer<'static>,
    key_der: Vec<u8>,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

/// A test CA that issues certificates into a folder: its own scratch
/// folder (removed with it), or a given one that stays.
pub struct Pki {
    issuer: CertifiedIssuer<'static, KeyPair>,
    pub ca_path: PathBuf,
    dir: PathBuf,
    _scratch: Option<ScratchDir>,
}

impl Pki {
    pub fn new() -> Result<Self, KitError> {
        let scratch = ScratchDir::new()?;
        Self::create(scratch.path().to_path_buf(), Some(scratch))
    }

    /// A new CA writing into `dir`, which outlives it.
    pub fn in_dir(dir: &Path) -> Result<Self, KitError> {
        std::fs::create_dir_all(dir).map_err(KitError::io("creating the certificate folder"))?;
        Self::create(dir.to_path_buf(), None)
    }

    fn create(dir: PathBuf, scratch: Option<ScratchDir>) -> Result<Self, KitError> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(cert_error("CA parameters"))?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, "e2e test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().map_err(cert_error("CA key"))?;
        let issuer = CertifiedIssuer::self_signed(params, key).map_err(cert_error("CA certificate"))?;
        let ca_path = dir.join("ca.pem");
        std::fs::write(&ca_path, issuer.pem()).map_err(KitError::io("writing the CA certificate"))?;
        Ok(Self { issuer, ca_path, dir, _scratch: scratch })
    }

    /// A certificate for `localhost` / 127.0.0.1, and for `uri` (a SPIFFE
    /// ID) if given; usable by servers and clients alike.
    pub fn issue(&self, name: &str, uri: Option<&str>) -> Result<Credential, KitError> {
        let mut params =
            CertificateParams::new(vec!["localhost".to_string()]).map_err(cert_error("certificate parameters"))?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.subject_alt_names.push(SanType::IpAddress([127, 0, 0, 1].into()));
        if let Some(uri) = uri {
            let uri = uri.try_into().map_err(cert_error("URI SAN"))?;
            params.subject_alt_names.push(SanType::URI(uri));
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().map_err(cert_error("key"))?;
        let cert = params.signed_by(&key, &self.issuer).map_err(cert_error("signing"))?;
        let cert_path = self.dir.join(format!("{name}.pem"));
        let key_path = self.dir.join(format!("{name}-key.pem"));
        std::fs::write(&cert_path, cert.pem()).map_err(KitError::io("writing a certificate"))?;
        std::fs::write(&key_path, key.serialize_pem()).map_err(KitError::io("writing a key"))?;
        Ok(Credential { cert_der: cert.der().clone(), key_der: key.serialize_der(), cert_path, key_path })
    }

    pub(crate) fn client_config(&self, client: Option<&Credential>) -> Result<rustls::ClientConfig, KitError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.issuer.der().clone()).map_err(tls_error("trusting the test CA"))?;
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(tls_error("TLS versions"))?
            .with_root_certificates(roots);
        match client {
            None => Ok(builder.with_no_client_auth()),
            Some(c) => {
                let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(c.key_der.clone()));
                builder.with_client_auth_cert(vec![c.cert_der.clone()], key).map_err(tls_error("client certificate"))
            }
        }
    }

    /// Opens a TLS connection to a listener whose certificate this CA
    /// issued, presenting `client`'s certificate (or none); the caller may
    /// send many requests over it (keep-alive).
    pub fn connect(&self, to: SocketAddr, client: Option<&Credential>) -> Result<TlsStream, KitError> {
        let config = Arc::new(self.client_config(client)?);
        let name = ServerName::try_from("localhost").map_err(|e| KitError::Protocol(format!("server name: {e}")))?;
        let conn = rustls::ClientConnection::new(config, name).map_err(tls_error("TLS client"))?;
        let tcp = TcpStream::connect_timeout(&to, Duration::from_secs(15)).map_err(KitError::io("connecting to the listener"))?;
        tcp.set_read_timeout(Some(Duration::from_secs(15))).map_err(KitError::io("setting a timeout"))?;
        tcp.set_nodelay(true).map_err(KitError::io("setting TCP_NODELAY"))?;
        Ok(rustls::StreamOwned::new(conn, tcp))
    }

    /// Sends `request` over TLS to a listener whose certificate this CA
    /// issued, presenting `client`'s certificate (or none).
    pub fn send(&self, to: SocketAddr, client: Option<&Credential>, request: &Request) -> Result<Response, KitError> {
        let config = Arc::new(self.client_config(client)?);
        let name = ServerName::try_from("localhost").map_err(|e| KitError::Protocol(format!("server name: {e}")))?;
        let conn = rustls::ClientConnection::new(config, name).map_err(tls_error("TLS client"))?;
        let tcp = TcpStream::connect_timeout(&to, Duration::from_secs(15)).map_err(KitError::io("connecting to the listener"))?;
        tcp.set_read_timeout(Some(Duration::from_secs(15))).map_err(KitError::io("setting a timeout"))?;
        request.send_over(rustls::StreamOwned::new(conn, tcp))
    }
}

/// The payments/billing scenario's certificates, in `target/demo-certs/`
/// where `examples/envoy/principal-authz.yaml` expects them.
pub struct DemoCerts {
    pub pki: Pki,
    pub payments: Credential,
    pub billing: Credential,
    pub shop: Credential,
}

impl DemoCerts {
    pub fn write(workspace_root: &Path) -> Result<Self, KitError> {
        let pki = Pki::in_dir(&workspace_root.join("target/demo-certs"))?;
        Ok(Self {
            payments: pki.issue("payments", Some("spiffe://cluster.local/ns/payments/sa/payments"))?,
            billing: pki.issue("billing", Some("spiffe://cluster.local/ns/billing/sa/billing"))?,
            shop: pki.issue("shop", Some("spiffe://cluster.local/ns/shop/sa/shop"))?,
            pki,
        })
    }
}
