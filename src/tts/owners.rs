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
    pub fn standing(&self, session: Option<&[u8]>, username: &str) -> Standing {
        let Some(value) = session else {
            return Standing::Fine;
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
        session: Option<&[u8]>,
        username: &str,
    ) -> Result<Standing, StackError> {
        let standing = self.standing(session, username);
        let (Standing::Unknown, Some(value)) = (standing, session) else {
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

/// The value of the `_session` cookie among `Cookie` header values, if any.
pub fn session_cookie<'a>(headers: impl IntoIterator<Item = &'a [u8]>) -> Option<&'a [u8]> {
    headers.into_iter().find_map(|h| {
        h.split(|&b| b == b';').find_map(|pair| {
            let pair = pair.trim_ascii();
            pair.strip_prefix(b"_session=").filter(|v| !v.is_empty())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let h: &[u8] = b"a=1; _session=abc; _console_auth=x";
        assert_eq!(session_cookie([h]), Some(&b"abc"[..]));
        let none: &[u8] = b"x_session=abc; session=1";
        assert_eq!(session_cookie([none]), None);
        let empty: &[u8] = b"_session=";
        assert_eq!(session_cookie([empty]), None);
    }

    #[test]
    fn standing_comes_from_the_cache() {
        let owners = Owners::default();
        assert_eq!(owners.standing(None, "ada"), Standing::Fine);
        assert_eq!(owners.standing(Some(b"v"), "ada"), Standing::Unknown);
        owners.remember("v", "ada");
        assert_eq!(owners.standing(Some(b"v"), "ada"), Standing::Fine);
        assert_eq!(owners.standing(Some(b"v"), "bob"), Standing::Foreign);
    }
}
