//! TLS: verification on by default, reasons for failures, and keys that never
//! let a plaintext or differently-named connection serve a TLS acquire.

mod common;

use std::sync::Arc;

use common::pool;
use pconn_core::{AcquireOptions, ConnectOptions, Key, PoolConfig, Scheme, TlsOptions};
use rcgen::{CertificateParams, CertifiedIssuer, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

struct TlsServer {
    port: u16,
    ca_pem: String,
}

/// A TLS echo server for `names`, signed by a CA made for this test.
async fn tls_server(names: &[&str]) -> TlsServer {
    tls_server_with(names, |_| {}).await
}

/// Valid for one day in 2020.
fn expired_in_2020(p: &mut CertificateParams) {
    p.not_before = rcgen::date_time_ymd(2020, 1, 1);
    p.not_after = rcgen::date_time_ymd(2020, 1, 2);
}

/// Valid from 2999 on.
fn valid_from_2999(p: &mut CertificateParams) {
    p.not_before = rcgen::date_time_ymd(2999, 1, 1);
    p.not_after = rcgen::date_time_ymd(3000, 1, 1);
}

/// Like `tls_server`, with a chance to adjust the leaf certificate.
async fn tls_server_with(names: &[&str], adjust: impl FnOnce(&mut CertificateParams)) -> TlsServer {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    // Names of their own, as real certificates have (rcgen gives both one).
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "pconn test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, names[0]);
    adjust(&mut params);
    let leaf = params.signed_by(&leaf_key, &ca).unwrap();
    let port = serve(leaf.der().to_vec(), leaf_key.serialize_der()).await;
    TlsServer {
        port,
        ca_pem: ca.pem(),
    }
}

/// A TLS echo server whose certificate is self-signed and marked as a CA,
/// as `openssl req -x509` makes it; `ca_pem` is that certificate itself.
async fn self_signed_ca_server(
    names: &[&str],
    adjust: impl FnOnce(&mut CertificateParams),
) -> TlsServer {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    adjust(&mut params);
    let cert = params.self_signed(&key).unwrap();
    let port = serve(cert.der().to_vec(), key.serialize_der()).await;
    TlsServer {
        port,
        ca_pem: cert.pem(),
    }
}

/// Serve TLS with this certificate and key, echoing what it receives.
async fn serve(cert_der: Vec<u8>, key_der: Vec<u8>) -> u16 {
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert_der)],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_der)),
        )
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(sock).await else {
                    return;
                };
                let mut buf = [0u8; 1024];
                while let Ok(n) = tls.read(&mut buf).await {
                    if n == 0 || tls.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

fn with_tls(tls: TlsOptions) -> PoolConfig {
    PoolConfig {
        connect: ConnectOptions {
            tls,
            ..ConnectOptions::default()
        },
        ..PoolConfig::default()
    }
}

fn with_ca(ca_pem: &str) -> PoolConfig {
    with_tls(TlsOptions {
        ca: pconn_core::Trust::Pem(ca_pem.as_bytes().to_vec()),
        reject_unauthorized: true,
        ..TlsOptions::default()
    })
}

#[tokio::test]
async fn handshake_with_the_right_ca_succeeds_and_is_reused() {
    let server = tls_server(&["localhost"]).await;
    let pool = pool(with_ca(&server.ca_pem));
    let key = Key::new(Scheme::Tls, "localhost", Some(server.port), None).unwrap();
    echo_once(&pool, &key, b"hello").await;
    // TLS 1.3 session tickets may arrive while parked; they must not kill it.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let again = pool
        .acquire(&key, &AcquireOptions::default())
        .await
        .unwrap();
    assert!(again.reused());
}

/// Acquire `key`, have the echo server return `bytes`, and release.
async fn echo_once(pool: &pconn_core::Pool, key: &Key, bytes: &[u8]) {
    let mut c = pool.acquire(key, &AcquireOptions::default()).await.unwrap();
    c.connection().io().write_all(bytes).await.unwrap();
    assert_eq!(
        c.connection().io().read_chunk().await.unwrap().unwrap(),
        bytes
    );
    c.release(true);
}

/// Acquiring `key` fails with PCONN_TLS, `reason` and Node's code for the
/// same failure, in words with no Rust debug text, leaving nothing open.
async fn assert_refused(
    pool: &pconn_core::Pool,
    key: &Key,
    reason: &str,
    node_code: &str,
) -> pconn_core::Error {
    let err = pool
        .acquire(key, &AcquireOptions::default())
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.reason(), err.cause_code()),
        ("PCONN_TLS", Some(reason), Some(node_code)),
        "{err}"
    );
    let message = err.to_string();
    assert!(message.contains("certificate (CN="), "{message}");
    let cause = err.source_message().unwrap_or_default();
    for text in [&message, &cause] {
        assert!(
            !text.contains("Other(") && !text.contains("(UNIX)") && !text.contains("Verdict"),
            "{text}"
        );
    }
    assert!(cause.starts_with("invalid peer certificate: "), "{cause}");
    let s = pool.stats();
    assert_eq!((s.connections, s.connecting), (0, 0));
    err
}

#[tokio::test]
async fn unknown_issuer_is_refused_with_a_reason() {
    let server = tls_server(&["localhost"]).await;
    let pool = pool(PoolConfig::default());
    let key = Key::new(Scheme::Tls, "localhost", Some(server.port), None).unwrap();
    assert_refused(
        &pool,
        &key,
        "unknown-issuer",
        "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
    )
    .await;
}

#[tokio::test]
async fn expired_certificate_is_refused_with_a_reason() {
    let server = tls_server_with(&["localhost"], expired_in_2020).await;
    let pool = pool(with_ca(&server.ca_pem));
    let key = Key::new(Scheme::Tls, "localhost", Some(server.port), None).unwrap();
    let err = assert_refused(&pool, &key, "expired", "CERT_HAS_EXPIRED").await;
    let cause = err.source_message().unwrap_or_default();
    assert!(
        cause.contains("it expired at 2020-01-02 00:00:00 UTC"),
        "{cause}"
    );
}

#[tokio::test]
async fn a_certificate_not_yet_valid_is_refused_as_such_not_as_expired() {
    let server = tls_server_with(&["localhost"], valid_from_2999).await;
    let pool = pool(with_ca(&server.ca_pem));
    let key = Key::new(Scheme::Tls, "localhost", Some(server.port), None).unwrap();
    assert_refused(&pool, &key, "not-yet-valid", "CERT_NOT_YET_VALID").await;
}

#[tokio::test]
async fn wrong_hostname_is_refused_with_a_reason() {
    let server = tls_server(&["other.test"]).await;
    let pool = pool(with_ca(&server.ca_pem));
    let key = Key::new(Scheme::Tls, "localhost", Some(server.port), None).unwrap();
    assert_refused(
        &pool,
        &key,
        "hostname-mismatch",
        "ERR_TLS_CERT_ALTNAME_INVALID",
    )
    .await;
    // The servername override makes the same server acceptable, under another key.
    let named = key.with_servername("other.test").unwrap();
    pool.acquire(&named, &AcquireOptions::default())
        .await
        .unwrap()
        .release(true);
    assert!(pool.stats().hosts.contains_key(&named.to_string()));
}

#[tokio::test]
async fn reject_unauthorized_false_skips_verification() {
    let server = tls_server(&["other.test"]).await;
    let config = with_tls(TlsOptions {
        reject_unauthorized: false,
        ..TlsOptions::default()
    });
    let pool = pool(config);
    let key = Key::new(Scheme::Tls, "localhost", Some(server.port), None).unwrap();
    pool.acquire(&key, &AcquireOptions::default())
        .await
        .unwrap()
        .release(true);
}

#[tokio::test]
async fn plaintext_connection_never_serves_a_tls_key() {
    let server = tls_server(&["localhost"]).await;
    let pool = pool(with_ca(&server.ca_pem));
    let plain = Key::new(Scheme::Tcp, "localhost", Some(server.port), None).unwrap();
    let tls = Key::new(Scheme::Tls, "localhost", Some(server.port), None).unwrap();
    pool.acquire(&plain, &AcquireOptions::default())
        .await
        .unwrap()
        .release(true);
    let c = pool
        .acquire(&tls, &AcquireOptions::default())
        .await
        .unwrap();
    assert!(!c.reused());
    assert_eq!(pool.stats().counters.created, 2);
}

#[tokio::test]
async fn a_pinned_self_signed_ca_certificate_is_trusted_for_its_name_only() {
    let server = self_signed_ca_server(&["localhost"], |_| {}).await;
    let pool = pool(with_ca(&server.ca_pem));
    let key = Key::new(Scheme::Tls, "localhost", Some(server.port), None).unwrap();
    echo_once(&pool, &key, b"pinned").await;
    // The name is still checked.
    let other = Key::new(Scheme::Tls, "127.0.0.1", Some(server.port), None).unwrap();
    assert_refused(
        &common::pool(with_ca(&server.ca_pem)),
        &other,
        "hostname-mismatch",
        "ERR_TLS_CERT_ALTNAME_INVALID",
    )
    .await;
    // Without the pin, the same certificate is an unknown issuer.
    assert_refused(
        &common::pool(PoolConfig::default()),
        &key,
        "unknown-issuer",
        "DEPTH_ZERO_SELF_SIGNED_CERT",
    )
    .await;
}

#[tokio::test]
async fn a_pinned_self_signed_certificate_that_expired_is_refused() {
    let server = self_signed_ca_server(&["localhost"], expired_in_2020).await;
    let pool = pool(with_ca(&server.ca_pem));
    let key = Key::new(Scheme::Tls, "localhost", Some(server.port), None).unwrap();
    assert_refused(&pool, &key, "expired", "CERT_HAS_EXPIRED").await;
}
