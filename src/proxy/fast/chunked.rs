//! Chunked response bodies (RFC 9112 §7.1) from the upstream: read
//! strictly, and written anew for an HTTP/1.1 client (`relay`): sizes in
//! plain hex, chunk extensions and trailers left out, so that no client can
//! read the framing differently from the gateway; or only their data, for
//! an HTTP/2 one (`decode`).

use std::io::Write as _;

/// Longest chunk-size line (extensions included) or trailer line taken.
const MAX_LINE: usize = 4096;
/// Most trailer bytes taken (and dropped).
const MAX_TRAILERS: usize = 16 * 1024;

/// The chunked framing does not hold.
#[derive(Debug, PartialEq, Eq)]
pub struct Malformed;

#[derive(Debug, PartialEq, Eq)]
enum State {
    Size,
    Data(u64),
    DataEnd,
    /// Trailer bytes seen so far.
    Trailers(usize),
    Done,
}

/// Where a chunked body stands.
#[derive(Debug)]
pub struct Chunks(State);

impl Default for Chunks {
    fn default() -> Self {
        Self(State::Size)
    }
}

impl Chunks {
    /// The last chunk and the trailers have been read.
    pub fn done(&self) -> bool {
        self.0 == State::Done
    }

    /// Frames what it can of `input`, appending the body as the client gets
    /// it to `out`; returns how many bytes of `input` it used.
    pub fn relay(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, Malformed> {
        self.read(input, out, true)
    }

    /// As `relay`, appending only the chunks' data (for HTTP/2, which
    /// frames the body itself).
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, Malformed> {
        self.read(input, out, false)
    }

    /// What `relay` and `decode` do; the framing is written anew when
    /// `reframe`.
    fn read(&mut self, input: &[u8], out: &mut Vec<u8>, reframe: bool) -> Result<usize, Malformed> {
        let mut used = 0;
        loop {
            let rest = &input[used..];
            match self.0 {
                State::Done => return Ok(used),
                State::Size => {
                    let Some(line) = crlf_line(rest)? else {
                        return Ok(used);
                    };
                    used += line.len() + 2;
                    let size = chunk_size(line)?;
                    if reframe {
                        let _ = write!(out, "{size:x}\r\n");
                    }
                    self.0 = if size == 0 {
                        State::Trailers(0)
                    } else {
                        State::Data(size)
                    };
                }
                State::Data(left) => {
                    if rest.is_empty() {
                        return Ok(used);
                    }
                    let take = rest.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    out.extend_from_slice(&rest[..take]);
                    used += take;
                    let left = left - take as u64;
                    self.0 = if left == 0 {
                        State::DataEnd
                    } else {
                        State::Data(left)
                    };
                }
                State::DataEnd => {
                    if rest.len() < 2 {
                        return Ok(used);
                    }
                    if &rest[..2] != b"\r\n" {
                        return Err(Malformed);
                    }
                    used += 2;
                    if reframe {
                        out.extend_from_slice(b"\r\n");
                    }
                    self.0 = State::Size;
                }
                State::Trailers(seen) => {
                    let Some(line) = crlf_line(rest)? else {
                        return Ok(used);
                    };
                    used += line.len() + 2;
                    let seen = seen + line.len() + 2;
                    if line.is_empty() {
                        if reframe {
                            out.extend_from_slice(b"\r\n");
                        }
                        self.0 = State::Done;
                    } else if seen > MAX_TRAILERS {
                        return Err(Malformed);
                    } else {
                        self.0 = State::Trailers(seen);
                    }
                }
            }
        }
    }
}

/// The line at the start of `rest` when its CRLF has arrived; a bare CR or
/// LF in it, or a line too long, is malformed.
fn crlf_line(rest: &[u8]) -> Result<Option<&[u8]>, Malformed> {
    let window = &rest[..rest.len().min(MAX_LINE + 2)];
    match window.iter().position(|&b| b == b'\n') {
        Some(at) if at > 0 && window[at - 1] == b'\r' => {
            let line = &window[..at - 1];
            if line.contains(&b'\r') {
                return Err(Malformed);
            }
            Ok(Some(line))
        }
        Some(_) => Err(Malformed),
        None if window.len() > MAX_LINE => Err(Malformed),
        None => Ok(None),
    }
}

/// `1*HEXDIG [ ";" extensions ]`, at most 15 digits (so it fits in a u64).
fn chunk_size(line: &[u8]) -> Result<u64, Malformed> {
    let digits = line.split(|&b| b == b';').next().unwrap_or_default();
    if digits.is_empty() || digits.len() > 15 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return Err(Malformed);
    }
    let text = std::str::from_utf8(digits).map_err(|_| Malformed)?;
    u64::from_str_radix(text, 16).map_err(|_| Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes, as reads would deliver it.
    fn relay_in_steps(input: &[u8], step: usize) -> Result<(Vec<u8>, usize, bool), Malformed> {
        let mut chunks = Chunks::default();
        let (mut out, mut buf, mut used_total) = (Vec::new(), Vec::new(), 0);
        for piece in input.chunks(step) {
            buf.extend_from_slice(piece);
            let used = chunks.relay(&buf, &mut out)?;
            buf.drain(..used);
            used_total += used;
            if chunks.done() {
                break;
            }
        }
        Ok((out, used_total, chunks.done()))
    }

    #[test]
    fn chunks_are_rewritten_whatever_the_read_sizes() {
        let input = b"A;name=value\r\n0123456789\r\n3\r\nabc\r\n0\r\nExpires: never\r\n\r\nNEXT";
        for step in [1, 2, 3, 7, 100] {
            let (out, used, done) = relay_in_steps(input, step).unwrap();
            assert!(done, "step {step}");
            assert_eq!(used, input.len() - 4, "step {step}");
            assert_eq!(
                out, b"a\r\n0123456789\r\n3\r\nabc\r\n0\r\n\r\n",
                "step {step}"
            );
        }
    }

    #[test]
    fn decoding_keeps_only_the_data() {
        let input = b"A;name=value\r\n0123456789\r\n3\r\nabc\r\n0\r\nExpires: never\r\n\r\nNEXT";
        let mut chunks = Chunks::default();
        let mut out = Vec::new();
        let used = chunks.decode(input, &mut out).unwrap();
        assert!(chunks.done());
        assert_eq!(used, input.len() - 4);
        assert_eq!(out, b"0123456789abc");
    }

    #[test]
    fn malformed_framing_is_refused() {
        for input in [
            &b"zz\r\nab\r\n"[..],
            b" 2\r\nab\r\n",
            b"2 \r\nab\r\n",
            b"2\nab\r\n",
            b"2\r\nabX\r\n",
            b"-2\r\nab\r\n",
            b"+2\r\nab\r\n",
            b"0x2\r\nab\r\n",
            b"1000000000000000\r\n",
            b"2;a\rb\r\nab\r\n",
            b"0\r\nX: 1\n\r\n",
        ] {
            assert_eq!(relay_in_steps(input, 1).err(), Some(Malformed), "{input:?}");
            assert_eq!(
                relay_in_steps(input, 64).err(),
                Some(Malformed),
                "{input:?}"
            );
        }
        let endless = vec![b'1'; MAX_LINE + 10];
        assert_eq!(relay_in_steps(&endless, 64).err(), Some(Malformed));
    }

    #[test]
    fn an_unfinished_body_is_not_done() {
        let (out, _, done) = relay_in_steps(b"5\r\nab", 1).unwrap();
        assert!(!done);
        assert_eq!(out, b"5\r\nab");
    }
}
