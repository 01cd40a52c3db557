//! Response head parsing and body framing, on typical inputs.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pconn_core::http1::{parse_head, BodyDecoder, Framing};

const HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nDate: Thu, 26 Nov 2026 12:00:00 GMT\r\nContent-Type: application/json\r\n\
Content-Length: 11\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nCache-Control: no-store\r\n\
X-Request-Id: 4b8c2a4e-5a7d-4c1e-9f0a-2e1d3c4b5a69\r\n\r\nhello world";

fn chunked(body: &[u8], chunk: usize) -> Vec<u8> {
    let mut wire = Vec::new();
    for part in body.chunks(chunk) {
        wire.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        wire.extend_from_slice(part);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"0\r\n\r\n");
    wire
}

fn parsing(c: &mut Criterion) {
    c.bench_function("parse_head (8 headers)", |b| {
        b.iter(|| {
            let (head, _) = parse_head(black_box(HEAD), pconn_core::http1::MAX_HEAD_BYTES)
                .expect("valid")
                .expect("complete");
            black_box(head.framing("GET").expect("framing"));
        })
    });

    let body = vec![b'x'; 64 * 1024];
    let wire = chunked(&body, 4096);
    let mut group = c.benchmark_group("body framing, 64 KiB");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("content-length", |b| {
        let mut out = Vec::with_capacity(body.len());
        b.iter(|| {
            out.clear();
            let mut d = BodyDecoder::new(Framing::Length(body.len() as u64));
            black_box(d.decode(black_box(&body), &mut out).expect("decode"));
        })
    });
    group.bench_function("chunked (4 KiB chunks)", |b| {
        let mut out = Vec::with_capacity(body.len());
        b.iter(|| {
            out.clear();
            let mut d = BodyDecoder::new(Framing::Chunked);
            black_box(d.decode(black_box(&wire), &mut out).expect("decode"));
        })
    });
    group.finish();
}

criterion_group!(benches, parsing);
criterion_main!(benches);
