//! Fuzzing of every parser that reads bytes from the network: the response
//! head (status line, headers, and every accessor a caller uses on the
//! result), chunked and length-delimited bodies, and a proxy's answer to
//! CONNECT. Two kinds of input: arbitrary bytes, and near-valid heads built
//! from the pieces servers get wrong (missing or extra spaces, no reason,
//! edge status codes, obs-text, bare LF, huge values).
//!
//! Zero panics allowed. `npm test` runs 2,000 cases (or `PROPTEST_CASES`)
//! per target; a longer run: `PROPTEST_CASES=1000000 cargo test --release -p
//! pconn-core --test fuzz_parsers` (see RELIABILITY.md).

use pconn_core::http1::{parse_head, BodyDecoder, Framing, MAX_HEAD_BYTES};
use pconn_core::transport::parse_connect_answer;
use proptest::prelude::*;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Parse a head and use everything a caller can use of it.
fn exercise_head(input: &[u8], max: usize) {
    let Ok(Some((head, used))) = parse_head(input, max) else {
        return;
    };
    assert!(used <= input.len() && used <= max);
    assert!((100..=999).contains(&head.status), "{}", head.status);
    let _ = head.reason().len();
    let mut lowered = head.clone();
    lowered.lowercase_names();
    for ((name, value), (low, same)) in head.headers().zip(lowered.headers()) {
        assert!(low.iter().all(|b| !b.is_ascii_uppercase()));
        assert!(name.eq_ignore_ascii_case(low) && value == same);
    }
    for method in ["GET", "HEAD", "POST"] {
        if let Ok((framing, _)) = head.framing(method) {
            let _ = BodyDecoder::new(framing);
        }
    }
    let _ = (
        head.allows_keep_alive(),
        head.keep_alive_timeout(),
        head.is_interim(),
    );
}

/// Decode `input` in two pieces, then end it, with every framing.
fn exercise_body(input: &[u8], split: usize) {
    let split = split.min(input.len());
    for framing in [
        Framing::Chunked,
        Framing::Length(0),
        Framing::Length(17),
        Framing::Length(u64::MAX),
        Framing::UntilClose,
        Framing::None,
    ] {
        let mut decoder = BodyDecoder::new(framing);
        let mut out = Vec::new();
        let Ok(used) = decoder.decode(&input[..split], &mut out) else {
            continue;
        };
        assert!(used <= split);
        if decoder.decode(&input[used..], &mut out).is_ok() {
            let _ = decoder.on_eof();
        }
        let _ = decoder.trailers().len();
    }
}

fn byte_strings(bytes: &'static [u8], max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(proptest::sample::select(bytes), 0..max)
}

/// One status line, as servers write them right and wrong.
fn status_line() -> impl Strategy<Value = Vec<u8>> {
    let version = prop_oneof![
        6 => Just(&b"HTTP/1.1"[..]),
        2 => Just(&b"HTTP/1.0"[..]),
        1 => Just(&b"HTTP/1.2"[..]),
        1 => Just(&b"HTTP/2"[..]),
        1 => Just(&b"http/1.1"[..]),
        1 => Just(&b"HTTP/1.1 "[..]),
    ];
    let code = prop_oneof![
        8 => (0u16..1000).prop_map(|c| format!("{c:03}").into_bytes()),
        1 => (0u16..100).prop_map(|c| format!("{c}").into_bytes()),
        1 => (1000u32..100_000).prop_map(|c| format!("{c}").into_bytes()),
        1 => Just(b"20x".to_vec()),
        1 => Just(Vec::new()),
    ];
    let space = prop_oneof![3 => Just(&b""[..]), 6 => Just(&b" "[..]), 1 => Just(&b"  "[..]), 1 => Just(&b"\t"[..])];
    let reason = prop_oneof![
        4 => Just(Vec::new()),
        2 => Just(b"OK".to_vec()),
        1 => byte_strings(b"abc OK\t\x80\xff\xe9\x7f\x00\r", 40),
        1 => (0usize..20_000).prop_map(|n| vec![b'r'; n]),
    ];
    (version, space.clone(), code, space, reason)
        .prop_map(|(v, s1, c, s2, r)| [v, s1, &c, s2, &r].concat())
}

/// One header line, right or wrong.
fn header_line() -> impl Strategy<Value = Vec<u8>> {
    let name = prop_oneof![
        3 => Just(b"content-length".to_vec()),
        1 => Just(b"Transfer-Encoding".to_vec()),
        1 => Just(b"connection".to_vec()),
        1 => Just(b"keep-alive".to_vec()),
        1 => Just(b"x-a".to_vec()),
        1 => byte_strings(b"abcXYZ-_: \t\x80()", 12),
    ];
    let value = prop_oneof![
        Just(b"chunked".to_vec()),
        Just(b"gzip, chunked".to_vec()),
        Just(b"close".to_vec()),
        Just(b"timeout=5, max=3".to_vec()),
        Just(b"timeout=\"9\"".to_vec()),
        (0u64..u64::MAX).prop_map(|n| n.to_string().into_bytes()),
        Just(b"99999999999999999999999".to_vec()),
        Just(b"-1".to_vec()),
        Just(b"3, 4".to_vec()),
        byte_strings(b"0123456789,;= abc\t\x80\xff\"\r", 30),
        (0usize..20_000).prop_map(|n| vec![b'v'; n]),
    ];
    let colon = prop_oneof![
        Just(&b": "[..]),
        Just(&b":"[..]),
        Just(&b" : "[..]),
        Just(&b":\t"[..])
    ];
    (name, colon, value).prop_map(|(n, c, v)| [&n[..], c, &v].concat())
}

/// A whole head, lines ending in CRLF or (sometimes) bare LF, maybe with a body after.
fn near_valid_head() -> impl Strategy<Value = Vec<u8>> {
    let eol = prop_oneof![8 => Just(&b"\r\n"[..]), 1 => Just(&b"\n"[..]), 1 => Just(&b"\r"[..])];
    (
        status_line(),
        proptest::collection::vec((header_line(), eol.clone()), 0..6),
        eol.clone(),
        eol,
        byte_strings(b"0123456789abcdef\r\n;x=", 64),
    )
        .prop_map(|(status, headers, eol1, eol2, body)| {
            let mut out = status;
            out.extend_from_slice(eol1);
            for (line, eol) in headers {
                out.extend_from_slice(&line);
                out.extend_from_slice(eol);
            }
            out.extend_from_slice(eol2);
            out.extend_from_slice(&body);
            out
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn response_heads_from_arbitrary_bytes(input in proptest::collection::vec(any::<u8>(), 0..4096),
                                           max in 16usize..8192) {
        exercise_head(&input, max);
        exercise_head(&input, MAX_HEAD_BYTES);
    }

    #[test]
    fn response_heads_near_valid(input in near_valid_head(), max in prop_oneof![Just(MAX_HEAD_BYTES), 64usize..4096]) {
        exercise_head(&input, max);
        for cut in [1, input.len() / 2, input.len().saturating_sub(1)] {
            exercise_head(&input[..cut.min(input.len())], max);
        }
    }

    #[test]
    fn bodies_from_arbitrary_bytes(input in proptest::collection::vec(any::<u8>(), 0..4096), split in 0usize..4096) {
        exercise_body(&input, split);
    }

    #[test]
    fn chunked_bodies_near_valid(pieces in proptest::collection::vec(
        prop_oneof![
            (0u64..0x2000).prop_map(|n| format!("{n:x}\r\n").into_bytes()),
            Just(b"ffffffffffffffffff\r\n".to_vec()),
            Just(b"5;ext=\"a\"\r\nhello\r\n".to_vec()),
            Just(b"0\r\nx-t: 1\r\n\r\n".to_vec()),
            Just(b"0\r\n\r\n".to_vec()),
            byte_strings(b"0123456789abcdefABCDEF;= \t\r\n\x80", 24),
        ], 0..16), split in 0usize..1024) {
        exercise_body(&pieces.concat(), split);
    }

    #[test]
    fn connect_answers(input in prop_oneof![near_valid_head(), proptest::collection::vec(any::<u8>(), 0..2048)]) {
        if let Some((status, _reason)) = parse_connect_answer(&input) {
            prop_assert!((100..=999).contains(&status));
        }
    }
}

#[test]
fn known_odd_heads_parse_as_node_parses_them() {
    let (head, _) = parse_head(
        b"HTTP/1.1 200\r\ncontent-length: 2\r\n\r\nok",
        MAX_HEAD_BYTES,
    )
    .unwrap()
    .unwrap();
    assert_eq!((head.status, head.reason()), (200, &b""[..]));
    assert_eq!(
        parse_connect_answer(b"HTTP/1.1 407\r\n\r\n"),
        Some((407, String::new()))
    );
    assert_eq!(parse_connect_answer(b"HTTP/1.1 200 OK\n\n"), None);
    for bad in ["HTTP/1.1 000 Zero\r\n\r\n", "HTTP/1.1 099 Low\r\n\r\n"] {
        assert!(parse_head(bad.as_bytes(), MAX_HEAD_BYTES).is_err(), "{bad}");
    }
}
