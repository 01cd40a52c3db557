//! rustls client configuration and handshake error classification.

use std::io;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_name, WebPkiServerVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{
    AlertDescription, CertificateError, ClientConfig, DigitallySignedStruct, OtherError,
    RootCertStore, SignatureScheme,
};

use super::cert_facts;
use crate::error::{Error, Result, TlsReason};

/// Which certificates a pool trusts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Trust {
    /// The Mozilla roots (webpki-roots), plus the certificates of the PEM
    /// file named by `NODE_EXTRA_CA_CERTS`, as Node does.
    #[default]
    Default,
    /// These PEM certificates only. A server certificate that is exactly
    /// one of them is trusted even when it is a self-signed CA certificate
    /// (as `openssl req -x509` makes); its name is still checked.
    Pem(Vec<u8>),
    /// The operating system's store.
    System,
}

/// TLS settings shared by every TLS connection of a pool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    pub ca: Trust,
    /// PEM client certificate chain and its private key (mutual TLS).
    pub cert_pem: Option<Vec<u8>>,
    pub key_pem: Option<Vec<u8>>,
    /// `false` disables certificate and hostname checks. Dangerous: only for tests.
    pub reject_unauthorized: bool,
    /// Name to send in SNI and verify, instead of the key's host.
    pub servername: Option<String>,
    /// ALPN protocols to offer, in order of preference.
    pub alpn: Vec<Vec<u8>>,
}

fn config_error(detail: impl Into<String>) -> Error {
    Error::Tls {
        reason: TlsReason::Config,
        detail: detail.into(),
        node_code: None,
        subject: None,
    }
}

/// Build the one rustls config a pool uses for all its TLS connections.
pub(crate) fn client_config(opts: &TlsOptions) -> Result<Arc<ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error(e.to_string()))?;

    let verifier: Arc<dyn ServerCertVerifier> = if opts.reject_unauthorized {
        let (roots, pinned) = trusted(&opts.ca)?;
        let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| config_error(e.to_string()))?;
        Arc::new(PinnedOrWebPki { inner, pinned })
    } else {
        Arc::new(AcceptAnyCertificate(provider))
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);

    let mut config = match (&opts.cert_pem, &opts.key_pem) {
        (Some(cert), Some(key)) => {
            let chain = parse_pem_certs(cert, "tls.cert")?;
            let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| {
                Error::InvalidArgument(format!("tls.key is not a valid PEM private key: {e}"))
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| Error::InvalidArgument(format!("tls.cert/tls.key rejected: {e}")))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(Error::InvalidArgument(
                "tls.cert and tls.key must be given together".into(),
            ))
        }
    };
    config.alpn_protocols = opts.alpn.clone();
    Ok(Arc::new(config))
}

/// The roots to verify against, and the certificates pinned by `tls.ca`
/// (or, with the default roots, by `NODE_EXTRA_CA_CERTS`).
fn trusted(trust: &Trust) -> Result<(RootCertStore, Vec<CertificateDer<'static>>)> {
    let mut roots = RootCertStore::empty();
    match trust {
        Trust::Pem(pem) => {
            let certs = parse_pem_certs(pem, "tls.ca")?;
            for cert in &certs {
                roots.add(cert.clone()).map_err(|e| {
                    Error::InvalidArgument(format!("tls.ca certificate rejected: {e}"))
                })?;
            }
            return Ok((roots, certs));
        }
        Trust::Default => {
            let (roots, extra) = default_trust();
            return Ok((roots.clone(), extra.clone()));
        }
        Trust::System => {
            let found = rustls_native_certs::load_native_certs();
            if found.certs.is_empty() {
                let why = found
                    .errors
                    .first()
                    .map_or("none found".to_string(), |e| e.to_string());
                return Err(config_error(format!(
                    "the system trust store could not be read: {why}"
                )));
            }
            roots.add_parsable_certificates(found.certs);
        }
    }
    Ok((roots, Vec::new()))
}

/// The Mozilla roots plus `NODE_EXTRA_CA_CERTS`, and those extra
/// certificates alone: Node also trusts one served as the server's own
/// (a self-signed certificate), so they are pinned as `tls.ca` is. Read
/// once per process as Node reads it (an unreadable file is reported by
/// Node itself when it starts, so it is skipped here).
fn default_trust() -> &'static (RootCertStore, Vec<CertificateDer<'static>>) {
    type Trusted = (RootCertStore, Vec<CertificateDer<'static>>);
    static TRUST: std::sync::OnceLock<Trusted> = std::sync::OnceLock::new();
    TRUST.get_or_init(|| {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let extra: Vec<CertificateDer<'static>> = std::env::var_os("NODE_EXTRA_CA_CERTS")
            .and_then(|path| std::fs::read(path).ok())
            .map(|pem| {
                CertificateDer::pem_slice_iter(&pem)
                    .filter_map(|c| c.ok())
                    .collect()
            })
            .unwrap_or_default();
        roots.add_parsable_certificates(extra.iter().cloned());
        (roots, extra)
    })
}

fn parse_pem_certs(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::InvalidArgument(format!("{what} is not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "{what} holds no PEM certificate"
        )));
    }
    Ok(certs)
}

/// The server name to send in SNI and to verify.
pub(crate) fn server_name(name: &str) -> Result<ServerName<'static>> {
    ServerName::try_from(name.to_string())
        .map_err(|_| Error::InvalidArgument(format!("{name:?} is not a valid TLS server name")))
}

/// Turn a failed handshake into PCONN_TLS with a reason, keeping plain
/// socket errors (resets, refusals) as the errno errors they are.
pub(crate) fn handshake_error(e: io::Error) -> Error {
    if let Some(tls) = tls_failure(&e) {
        return tls;
    }
    if e.kind() == io::ErrorKind::UnexpectedEof {
        return Error::Tls {
            reason: TlsReason::Protocol,
            detail: "the peer closed during the handshake".into(),
            node_code: None,
            subject: None,
        };
    }
    Error::Io(e)
}

/// The TLS failure inside an I/O error, if it is one: during the handshake,
/// or after it (a TLS 1.3 server rejects a client certificate with an alert
/// that arrives with the first read).
pub(super) fn tls_failure(e: &io::Error) -> Option<Error> {
    let err = e.get_ref()?.downcast_ref::<rustls::Error>()?;
    let verdict = match err {
        rustls::Error::InvalidCertificate(CertificateError::Other(other)) => {
            other.0.downcast_ref::<CertVerdict>()
        }
        _ => None,
    };
    let reason = match (verdict, err) {
        (Some(verdict), _) => certificate_reason(&verdict.error),
        (None, rustls::Error::InvalidCertificate(cert)) => certificate_reason(cert),
        // The server's verdict on our certificate.
        (None, rustls::Error::AlertReceived(AlertDescription::CertificateRequired)) => {
            TlsReason::CertificateRequired
        }
        (
            None,
            rustls::Error::AlertReceived(
                AlertDescription::BadCertificate
                | AlertDescription::UnsupportedCertificate
                | AlertDescription::CertificateRevoked
                | AlertDescription::CertificateExpired
                | AlertDescription::CertificateUnknown
                | AlertDescription::UnknownCA
                | AlertDescription::AccessDenied,
            ),
        ) => TlsReason::BadCertificate,
        _ => TlsReason::Protocol,
    };
    Some(Error::Tls {
        reason,
        detail: verdict.map_or_else(|| err.to_string(), ToString::to_string),
        node_code: verdict.and_then(|v| v.node_code),
        subject: verdict.and_then(|v| v.subject.clone()),
    })
}

/// Why a server certificate was refused.
fn certificate_reason(cert: &CertificateError) -> TlsReason {
    match cert {
        CertificateError::UnknownIssuer => TlsReason::UnknownIssuer,
        // A self-signed CA certificate that is not pinned in `tls.ca`.
        CertificateError::Other(other) if is_ca_used_as_end_entity(other) => {
            TlsReason::UnknownIssuer
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            TlsReason::HostnameMismatch
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => TlsReason::Expired,
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            TlsReason::NotYetValid
        }
        _ => TlsReason::BadCertificate,
    }
}

/// The usual verification (webpki against the roots), except that a server
/// certificate that is byte for byte one of the pinned `tls.ca` (or
/// `NODE_EXTRA_CA_CERTS`) certificates is trusted even when it is a CA certificate (a self-signed
/// certificate made with `openssl req -x509` is one), as node:https does.
/// Its validity dates (checked before webpki objects to its CA flag) and
/// its name are still verified.
#[derive(Debug)]
struct PinnedOrWebPki {
    inner: Arc<WebPkiServerVerifier>,
    pinned: Vec<CertificateDer<'static>>,
}

impl ServerCertVerifier for PinnedOrWebPki {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(other)))
                if is_ca_used_as_end_entity(&other)
                    && self
                        .pinned
                        .iter()
                        .any(|p| p.as_ref() == end_entity.as_ref()) =>
            {
                let cert = ParsedCertificate::try_from(end_entity)?;
                verify_server_name(&cert, server_name).map_err(|e| match e {
                    rustls::Error::InvalidCertificate(error) => {
                        explain(error, end_entity, intermediates)
                    }
                    other => other,
                })?;
                Ok(ServerCertVerified::assertion())
            }
            Err(rustls::Error::InvalidCertificate(error)) => {
                Err(explain(error, end_entity, intermediates))
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A certificate failure with what Node would call it and whose
/// certificate it was, carried inside rustls' error to `tls_failure`.
#[derive(Debug)]
struct CertVerdict {
    error: CertificateError,
    node_code: Option<&'static str>,
    subject: Option<String>,
}

/// The error's cause in words: rustls' own, except where they are Rust
/// debug text or seconds since 1970.
impl std::fmt::Display for CertVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("invalid peer certificate: ")?;
        match &self.error {
            CertificateError::ExpiredContext { time, not_after } => write!(
                f,
                "it expired at {} (checked at {})",
                cert_facts::utc(not_after.as_secs()),
                cert_facts::utc(time.as_secs())
            ),
            CertificateError::NotValidYetContext { time, not_before } => write!(
                f,
                "it is valid only from {} (checked at {})",
                cert_facts::utc(not_before.as_secs()),
                cert_facts::utc(time.as_secs())
            ),
            CertificateError::Other(other) if is_ca_used_as_end_entity(other) => {
                f.write_str("it is a CA certificate, presented as the server's own")
            }
            CertificateError::Other(other) => write!(f, "{}", other.0),
            error => write!(f, "{error}"),
        }
    }
}

impl std::error::Error for CertVerdict {}

/// Wrap a verification failure with Node's code for it and the subject.
fn explain(
    error: CertificateError,
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
) -> rustls::Error {
    let untrusted_root = || {
        let last = intermediates
            .last()
            .map_or(end_entity.as_ref(), |c| c.as_ref());
        cert_facts::is_self_issued(last)
    };
    let issuer_code = || match (intermediates.is_empty(), untrusted_root()) {
        (true, true) => "DEPTH_ZERO_SELF_SIGNED_CERT",
        (false, true) => "SELF_SIGNED_CERT_IN_CHAIN",
        (true, false) => "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
        (false, false) => "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
    };
    let node_code = match &error {
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            Some("CERT_HAS_EXPIRED")
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            Some("CERT_NOT_YET_VALID")
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            Some("ERR_TLS_CERT_ALTNAME_INVALID")
        }
        CertificateError::Revoked => Some("CERT_REVOKED"),
        CertificateError::BadSignature => Some("CERT_SIGNATURE_FAILURE"),
        CertificateError::UnknownIssuer => Some(issuer_code()),
        // A CA certificate presented as the server's is an untrusted issuer
        // for Node too; webpki's other failures (path length, name
        // constraints...) have no Node code to match.
        CertificateError::Other(other) if is_ca_used_as_end_entity(other) => Some(issuer_code()),
        _ => None,
    };
    let verdict = CertVerdict {
        error,
        node_code,
        subject: cert_facts::subject_common_name(end_entity),
    };
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(verdict))))
}

fn is_ca_used_as_end_entity(error: &OtherError) -> bool {
    matches!(
        error.0.downcast_ref::<webpki::Error>(),
        Some(webpki::Error::CaUsedAsEndEntity)
    )
}

/// `rejectUnauthorized: false`: accept any certificate, but still check that
/// the handshake itself is signed correctly. Dangerous; tests only.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
