//! rustls client configuration and handshake error classification.

use std::io;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::config::TlsOptions;
use crate::error::{Error, Result, TlsReason};

fn config_error(detail: impl Into<String>) -> Error {
    Error::Tls {
        reason: TlsReason::Config,
        detail: detail.into(),
    }
}

/// Build the one rustls config a pool uses for all its TLS connections.
pub(crate) fn client_config(opts: &TlsOptions) -> Result<Arc<ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error(e.to_string()))?;

    let builder = if opts.reject_unauthorized {
        let mut roots = RootCertStore::empty();
        match &opts.ca_pem {
            Some(pem) => {
                let certs = CertificateDer::pem_slice_iter(pem)
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| Error::InvalidArgument(format!("tls.ca is not valid PEM: {e}")))?;
                if certs.is_empty() {
                    return Err(Error::InvalidArgument(
                        "tls.ca holds no PEM certificate".into(),
                    ));
                }
                for cert in certs {
                    roots.add(cert).map_err(|e| {
                        Error::InvalidArgument(format!("tls.ca certificate rejected: {e}"))
                    })?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        builder.with_root_certificates(roots)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
    };

    let mut config = match (&opts.cert_pem, &opts.key_pem) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_slice_iter(cert)
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| Error::InvalidArgument(format!("tls.cert is not valid PEM: {e}")))?;
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

/// The server name to send in SNI and to verify.
pub(crate) fn server_name(name: &str) -> Result<ServerName<'static>> {
    ServerName::try_from(name.to_string())
        .map_err(|_| Error::InvalidArgument(format!("{name:?} is not a valid TLS server name")))
}

/// Turn a failed handshake into PCONN_TLS with a reason, keeping plain
/// socket errors (resets, refusals) as the errno errors they are.
pub(crate) fn handshake_error(e: io::Error) -> Error {
    let rustls_error = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    let Some(err) = rustls_error else {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            return Error::Tls {
                reason: TlsReason::Protocol,
                detail: "the peer closed during the handshake".into(),
            };
        }
        return Error::Io(e);
    };
    let reason = match err {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer => TlsReason::UnknownIssuer,
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                TlsReason::HostnameMismatch
            }
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => TlsReason::Expired,
            _ => TlsReason::BadCertificate,
        },
        _ => TlsReason::Protocol,
    };
    Error::Tls {
        reason,
        detail: err.to_string(),
    }
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
