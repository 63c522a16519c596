//! The fast path's upstream answer parser. Properties: whatever it takes
//! as a final answer, the head it writes for the client parses back (with
//! httparse) with the same status, exactly the framing it decided (one
//! Content-Length, or `Transfer-Encoding: chunked`, never both), no
//! hop-by-hop header of the upstream's, and every other header unchanged.
#![no_main]

use arbitrary::Arbitrary;
use idgate::policy::fields;
use idgate::proxy::fast::response::{parse, Framing, UpstreamHead};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    head_request: bool,
    close: bool,
    raw: Vec<u8>,
}

fuzz_target!(|input: Input| {
    let mut out = Vec::new();
    let UpstreamHead::Final(answer) =
        parse(&input.raw, 16384, input.head_request, input.close, &mut out)
    else {
        return;
    };
    let mut up_storage = [httparse::EMPTY_HEADER; 300];
    let mut upstream = httparse::Response::new(&mut up_storage);
    assert_eq!(
        upstream.parse(&input.raw),
        Ok(httparse::Status::Complete(answer.len))
    );
    let mut storage = [httparse::EMPTY_HEADER; 300];
    let mut client = httparse::Response::new(&mut storage);
    assert_eq!(
        client.parse(&out),
        Ok(httparse::Status::Complete(out.len())),
        "{:?}",
        String::from_utf8_lossy(&out)
    );
    assert_eq!(client.code, Some(answer.status));
    assert_eq!(upstream.code, Some(answer.status));
    let named = |name: &str| -> Vec<&[u8]> {
        client
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
            .collect()
    };
    let (lengths, codings) = (named("content-length"), named("transfer-encoding"));
    match answer.framing {
        Framing::Length(n) => {
            assert_eq!(lengths, [n.to_string().as_bytes()]);
            assert!(codings.is_empty());
        }
        Framing::Chunked | Framing::UntilClose => {
            assert!(lengths.is_empty());
            assert_eq!(codings, [b"chunked".as_slice()]);
        }
        Framing::Empty => {
            assert!(lengths.len() <= 1 && codings.is_empty());
        }
    }
    assert_eq!(named("connection").is_empty(), !input.close);
    // The upstream's end-to-end headers arrive unchanged, in order.
    let passed = |headers: &[httparse::Header<'_>]| -> Vec<(String, Vec<u8>)> {
        headers
            .iter()
            .filter(|h| {
                !fields::response_hop_by_hop(h.name.as_bytes())
                    && !h.name.eq_ignore_ascii_case("content-length")
            })
            .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
            .collect()
    };
    let sent = passed(client.headers);
    let received: Vec<(String, Vec<u8>)> = passed(upstream.headers)
        .into_iter()
        .filter(|(name, _)| sent.iter().any(|(n, _)| n == name))
        .collect();
    assert_eq!(sent, received, "headers changed or added");
});
