//! What the upstream is told about a request's way in, for both data
//! paths: `X-Forwarded-For`, `-Proto` and `-Host`. From a client that is
//! not a trusted proxy every forwarding header is dropped
//! (`fields::RequestField::Forwarding`) and these three are written from
//! what the gateway itself saw; a trusted proxy's chain is extended by the
//! peer's address (its empty values left out), and its `-Proto` and `-Host`
//! kept.

/// One forwarding line the gateway writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    For,
    Proto,
    Host,
}

impl Line {
    /// The field name, as written upstream.
    pub const fn name(self) -> &'static str {
        match self {
            Line::For => "x-forwarded-for",
            Line::Proto => "x-forwarded-proto",
            Line::Host => "x-forwarded-host",
        }
    }
}

/// What a forwarding line says; each data path has the gateway's own
/// values in its own form (the peer's address, the scheme, the host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    /// The peer's address.
    Peer,
    /// `http`, or `https` when the gateway terminated TLS.
    Proto,
    /// The host the client named: the target's authority, else `Host`.
    Host,
    /// A trusted proxy's chain with the peer's address appended.
    Chain(&'a [u8]),
}

/// What a trusted proxy said itself about the request.
pub struct Relayed<I> {
    /// The values of its `X-Forwarded-For` lines, in order.
    pub chain: I,
    /// Whether it sent `X-Forwarded-Proto`, and `X-Forwarded-Host`.
    pub proto: bool,
    pub host: bool,
}

/// Calls `set` with each forwarding line to write in place of any line of
/// that name; a line it is not called for stays as it came (only a trusted
/// proxy's can). `peer` is the peer's address as text, `host` whether the
/// client named one, `relayed` what a trusted proxy sent (`None` for any
/// other client).
pub fn forwarded<'v, I>(
    peer: &[u8],
    host: bool,
    relayed: Option<Relayed<I>>,
    mut set: impl FnMut(Line, Value<'_>),
) where
    I: Iterator<Item = &'v [u8]>,
{
    let (proto_sent, host_sent) = match relayed {
        None => {
            set(Line::For, Value::Peer);
            (false, false)
        }
        Some(relayed) => {
            let mut chain = Vec::new();
            // An empty value would read as an empty client address.
            for value in relayed
                .chain
                .map(<[u8]>::trim_ascii)
                .filter(|v| !v.is_empty())
            {
                chain.extend_from_slice(value);
                chain.extend_from_slice(b", ");
            }
            if chain.is_empty() {
                set(Line::For, Value::Peer);
            } else {
                chain.extend_from_slice(peer);
                set(Line::For, Value::Chain(&chain));
            }
            (relayed.proto, relayed.host)
        }
    };
    if !proto_sent {
        set(Line::Proto, Value::Proto);
    }
    if host && !host_sent {
        set(Line::Host, Value::Host);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Written = Vec<(Line, Value<'static>)>;

    fn written(relayed: Option<(&[&[u8]], bool, bool)>, host: bool) -> Written {
        let relayed = relayed.map(|(chain, proto, host)| Relayed {
            chain: chain.iter().copied(),
            proto,
            host,
        });
        let mut lines = Vec::new();
        forwarded(b"192.0.2.7", host, relayed, |line, value| {
            let value = match value {
                Value::Chain(c) => Value::Chain(Vec::leak(c.to_vec())),
                Value::Peer => Value::Peer,
                Value::Proto => Value::Proto,
                Value::Host => Value::Host,
            };
            lines.push((line, value))
        });
        lines
    }

    #[test]
    fn an_untrusted_client_gets_what_the_gateway_saw() {
        let all = [
            (Line::For, Value::Peer),
            (Line::Proto, Value::Proto),
            (Line::Host, Value::Host),
        ];
        assert_eq!(written(None, true), all);
        assert_eq!(written(None, false), all[..2]);
    }

    #[test]
    fn a_trusted_proxy_chain_is_extended_and_its_proto_and_host_kept() {
        let chain: &[&[u8]] = &[b"203.0.113.1", b"10.0.0.2, 10.0.0.3"];
        let extended = b"203.0.113.1, 10.0.0.2, 10.0.0.3, 192.0.2.7";
        assert_eq!(
            written(Some((chain, true, true)), true),
            [(Line::For, Value::Chain(extended))]
        );
        let empty: &[&[u8]] = &[b"", b"  "];
        assert_eq!(
            written(Some((empty, true, true)), true),
            [(Line::For, Value::Peer)]
        );
        assert_eq!(
            written(Some((&[], false, false)), true),
            [
                (Line::For, Value::Peer),
                (Line::Proto, Value::Proto),
                (Line::Host, Value::Host),
            ]
        );
    }
}
