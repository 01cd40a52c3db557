//! A minimal keep-alive HTTP/1.1 (and HTTPS) server for benchmarks.
//!
//! It must be faster than every client under test, so it does the least a
//! correct server can: read a request head, answer from a prebuilt response,
//! repeat. `GET /64k` answers 64 KiB, anything else 11 bytes. Request bodies
//! are not expected (benchmarks send GETs).
//!
//! Usage: `pconn-bench-server [--threads N] [--listeners N] [--cert PEM --key PEM]`;
//! prints `listening <port>[,<port>...]` once ready (one port per listener:
//! the scale benchmark uses 1,000 of them as 1,000 distinct hosts).

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

fn response(body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

struct Responses {
    small: Vec<u8>,
    large: Vec<u8>,
}

/// Serve requests on one connection until the client closes it.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut io: S, responses: Arc<Responses>) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut filled = 0;
    loop {
        match io.read(&mut buf[filled..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => filled += n,
        }
        // Answer every complete head in the buffer (pipelining-safe).
        let mut start = 0;
        while let Some(end) = find_head_end(&buf[start..filled]) {
            let head = &buf[start..start + end];
            let reply = if head.starts_with(b"GET /64k") {
                &responses.large
            } else {
                &responses.small
            };
            if io.write_all(reply).await.is_err() {
                return;
            }
            start += end;
        }
        buf.copy_within(start..filled, 0);
        filled -= start;
        if filled == buf.len() {
            return; // a head larger than the buffer: not a benchmark client
        }
    }
}

fn find_head_end(data: &[u8]) -> Option<usize> {
    data.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn tls_acceptor() -> Result<Option<tokio_rustls::TlsAcceptor>, String> {
    let (Some(cert), Some(key)) = (arg("--cert"), arg("--key")) else {
        return Ok(None);
    };
    let chain = CertificateDer::pem_file_iter(&cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("--cert {cert}: {e}"))?;
    let key = PrivateKeyDer::from_pem_file(&key).map_err(|e| format!("--key {key}: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
        .map_err(|e| format!("TLS config: {e}"))?;
    Ok(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
}

fn main() {
    let threads = arg("--threads").and_then(|t| t.parse().ok()).unwrap_or(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build();
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(run()) {
        eprintln!("bench server: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), String> {
    let acceptor = tls_acceptor()?;
    let count: usize = arg("--listeners").and_then(|n| n.parse().ok()).unwrap_or(1);
    let responses = Arc::new(Responses {
        small: response(b"hello world"),
        large: response(&vec![b'x'; 64 * 1024]),
    });
    let mut ports = Vec::with_capacity(count);
    let mut accepting = tokio::task::JoinSet::new();
    for _ in 0..count {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        ports.push(
            listener
                .local_addr()
                .map_err(|e| e.to_string())?
                .port()
                .to_string(),
        );
        accepting.spawn(accept(listener, acceptor.clone(), responses.clone()));
    }
    println!("listening {}", ports.join(","));
    match accepting.join_next().await {
        Some(Ok(result)) => result,
        Some(Err(e)) => Err(e.to_string()),
        None => Ok(()),
    }
}

async fn accept(
    listener: TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    responses: Arc<Responses>,
) -> Result<(), String> {
    loop {
        let (socket, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let _ = socket.set_nodelay(true);
        let responses = responses.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            match acceptor {
                None => serve(socket, responses).await,
                Some(acceptor) => {
                    if let Ok(tls) = acceptor.accept(socket).await {
                        serve(tls, responses).await;
                    }
                }
            }
        });
    }
}
