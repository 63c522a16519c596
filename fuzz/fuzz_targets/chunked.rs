//! The fast path's chunked decoder (it relays a chunked answer re-encoded).
//! Properties: an encoding of any body, however it is cut into chunks,
//! spelt (hex case, leading zeros, extensions, trailers) and delivered in
//! pieces, comes out as exactly that body; and for any bytes at all, the
//! outcome and the output do not depend on how the bytes arrive, and what
//! comes out is canonical chunked framing.
#![no_main]

use arbitrary::Arbitrary;
use idgate::proxy::fast::chunked::Chunks;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    body: Vec<u8>,
    sizes: Vec<u8>,
    upper_hex: bool,
    zeros: u8,
    extension: Option<String>,
    trailer: Option<String>,
    pieces: Vec<u8>,
    raw: Vec<u8>,
}

/// A strict decoder of canonical chunked framing, written from RFC 9112
/// §7.1 apart from the code under test: the body, and the bytes used.
fn decode(mut framed: &[u8]) -> Option<(Vec<u8>, usize)> {
    let start = framed.len();
    let mut body = Vec::new();
    loop {
        let end = framed.windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(std::str::from_utf8(&framed[..end]).ok()?, 16).ok()?;
        framed = &framed[end + 2..];
        if size == 0 {
            framed = framed.strip_prefix(b"\r\n")?;
            return Some((body, start - framed.len()));
        }
        body.extend_from_slice(framed.get(..size)?);
        framed = framed.get(size..)?.strip_prefix(b"\r\n")?;
    }
}

/// Runs `input` through the decoder in pieces of the given sizes.
fn relay(input: &[u8], pieces: &[u8]) -> (Result<(), ()>, Vec<u8>, bool) {
    let mut chunks = Chunks::default();
    let (mut out, mut pending, mut at) = (Vec::new(), Vec::new(), 0);
    let mut sizes = pieces.iter().map(|&p| usize::from(p).max(1)).cycle();
    while at < input.len() && !chunks.done() {
        let n = if pieces.is_empty() {
            input.len()
        } else {
            sizes.next().unwrap_or(1)
        };
        let next = (at + n).min(input.len());
        pending.extend_from_slice(&input[at..next]);
        at = next;
        match chunks.relay(&pending, &mut out) {
            Ok(used) => {
                pending.drain(..used);
            }
            Err(_) => return (Err(()), out, false),
        }
    }
    (Ok(()), out, chunks.done())
}

fuzz_target!(|input: Input| {
    // An encoding of `body`.
    let mut framed = Vec::new();
    let mut rest = input.body.as_slice();
    let mut sizes = input.sizes.iter().map(|&s| usize::from(s).max(1)).cycle();
    let ext = input
        .extension
        .as_deref()
        .filter(|e| e.bytes().all(|b| b.is_ascii_graphic() && b != b';'));
    while !rest.is_empty() {
        let n = if input.sizes.is_empty() {
            rest.len()
        } else {
            sizes.next().unwrap_or(1)
        }
        .min(rest.len());
        let zeros = "0".repeat(usize::from(input.zeros % 4));
        let hex = if input.upper_hex {
            format!("{n:X}")
        } else {
            format!("{n:x}")
        };
        framed.extend_from_slice(format!("{zeros}{hex}").as_bytes());
        if let Some(e) = ext {
            framed.extend_from_slice(format!(";{e}").as_bytes());
        }
        framed.extend_from_slice(b"\r\n");
        framed.extend_from_slice(&rest[..n]);
        framed.extend_from_slice(b"\r\n");
        rest = &rest[n..];
    }
    framed.extend_from_slice(b"0\r\n");
    if let Some(t) = input.trailer.as_deref().filter(|t| {
        !t.is_empty() && t.len() < 1000 && t.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
    }) {
        framed.extend_from_slice(format!("{t}\r\n").as_bytes());
    }
    framed.extend_from_slice(b"\r\n");

    let (outcome, out, done) = relay(&framed, &input.pieces);
    assert_eq!(outcome, Ok(()), "a valid encoding was refused");
    assert!(done);
    let (body, used) = decode(&out).expect("canonical framing");
    assert_eq!(used, out.len());
    assert_eq!(body, input.body);

    // Any bytes: the same outcome whole or in pieces, canonical output.
    let whole = relay(&input.raw, &[]);
    let pieces = relay(&input.raw, &input.pieces);
    assert_eq!(whole.0, pieces.0);
    if whole.0.is_ok() {
        assert_eq!(whole, pieces);
        if whole.2 {
            let (_, used) = decode(&whole.1).expect("canonical framing");
            assert_eq!(used, whole.1.len());
        }
    }
});
