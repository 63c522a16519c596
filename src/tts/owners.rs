//! Whose stack session a browser's `_session` cookie is. The stack turns
//! that cookie into full API rights for its user, so a signed-in person's
//! request is forwarded with it only when it is theirs. The owner of a
//! cookie value never changes: it is asked of the stack once
//! (`<account_mount>/api/me`) and kept in a bounded cache, keyed by a
//! digest of the value, so a request costs a cache lookup.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::client::{StackClient, StackError};

/// Cookie values remembered at most.
const MAX_ENTRIES: u64 = 100_000;
/// How long an owner is remembered.
const TTL: Duration = Duration::from_secs(3600);

/// What a request's `_session` is to the signed-in person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// No `_session`, or one of theirs: forward as it is.
    Fine,
    /// Another user's, or one the stack does not know any more.
    Foreign,
    /// Not known yet (the general path asks the stack).
    Unknown,
}

/// Owners of the `_session` values seen; cheap to clone.
#[derive(Clone)]
pub struct Owners {
    /// Digest of the value → the owner's user ID (empty: no session).
    known: moka::sync::Cache<[u8; 32], Arc<str>>,
}

impl Default for Owners {
    fn default() -> Self {
        Self {
            known: moka::sync::Cache::builder()
                .max_capacity(MAX_ENTRIES)
                .time_to_live(TTL)
                .build(),
        }
    }
}

impl Owners {
    /// The standing of `session` for `username`, from the cache alone.
    pub fn standing(&self, session: Carried<'_>, username: &str) -> Standing {
        let value = match session {
            Carried::None => return Standing::Fine,
            Carried::Conflicting => return Standing::Foreign,
            Carried::One(value) => value,
        };
        match self.known.get(&digest(value)) {
            Some(owner) if &*owner == username => Standing::Fine,
            Some(_) => Standing::Foreign,
            None => Standing::Unknown,
        }
    }

    /// The standing of `session` for `username`, asking the stack when the
    /// cache does not know.
    pub async fn check(
        &self,
        client: &StackClient,
        session: Carried<'_>,
        username: &str,
    ) -> Result<Standing, StackError> {
        let standing = self.standing(session, username);
        let (Standing::Unknown, Carried::One(value)) = (standing, session) else {
            return Ok(standing);
        };
        let owner = client
            .session_owner(&String::from_utf8_lossy(value))
            .await?
            .unwrap_or_default();
        let fine = owner == username;
        self.known.insert(digest(value), owner.into());
        Ok(if fine {
            Standing::Fine
        } else {
            Standing::Foreign
        })
    }

    /// Remembers that `session` is `username`'s (it was just made for them).
    pub fn remember(&self, session: &str, username: &str) {
        self.known
            .insert(digest(session.as_bytes()), username.into());
    }
}

fn digest(value: &[u8]) -> [u8; 32] {
    Sha256::digest(value).into()
}

/// The `_session` cookie a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carried<'a> {
    None,
    One(&'a [u8]),
    /// Copies with different values: which one the stack takes is not for
    /// the gateway to guess, so such a request is never forwarded.
    Conflicting,
}

/// The `_session` cookie among `Cookie` header values, read as the stack
/// (Go's `net/http`) reads cookie names: blanks around a name do not count,
/// so `_session =…` is a `_session` too.
pub fn session_cookie<'a>(headers: impl IntoIterator<Item = &'a [u8]>) -> Carried<'a> {
    let mut found = Carried::None;
    for header in headers {
        for pair in header.split(|&b| b == b';') {
            let Some(eq) = pair.iter().position(|&b| b == b'=') else {
                continue;
            };
            if pair[..eq].trim_ascii() != b"_session" {
                continue;
            }
            let value = pair[eq + 1..].trim_ascii();
            found = match found {
                Carried::None => Carried::One(value),
                Carried::One(seen) if seen == value => found,
                _ => return Carried::Conflicting,
            };
        }
    }
    match found {
        Carried::One(b"") => Carried::None,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_read_as_the_stack_reads_it() {
        let one = |h: &'static [u8]| session_cookie([h]);
        assert_eq!(one(b"a=1; _session=abc; x=2"), Carried::One(b"abc"));
        assert_eq!(one(b"a=1;_session =abc"), Carried::One(b"abc"));
        assert_eq!(one(b"a=1; \t_session\t= abc"), Carried::One(b"abc"));
        assert_eq!(one(b"_session=abc; _session=abc"), Carried::One(b"abc"));
        assert_eq!(one(b"_session=abc; _session =xyz"), Carried::Conflicting);
        assert_eq!(one(b"_session=; _session=xyz"), Carried::Conflicting);
        assert_eq!(one(b"x_session=abc; session=1; _sessionx=2"), Carried::None);
        assert_eq!(one(b"_session="), Carried::None);
        let two: [&[u8]; 2] = [b"_session=abc", b"_session=xyz"];
        assert_eq!(session_cookie(two), Carried::Conflicting);
    }

    #[test]
    fn standing_comes_from_the_cache() {
        let owners = Owners::default();
        assert_eq!(owners.standing(Carried::None, "ada"), Standing::Fine);
        assert_eq!(
            owners.standing(Carried::One(b"v"), "ada"),
            Standing::Unknown
        );
        owners.remember("v", "ada");
        assert_eq!(owners.standing(Carried::One(b"v"), "ada"), Standing::Fine);
        assert_eq!(
            owners.standing(Carried::One(b"v"), "bob"),
            Standing::Foreign
        );
        assert_eq!(
            owners.standing(Carried::Conflicting, "ada"),
            Standing::Foreign
        );
    }
}
