//! Single-use authorization codes of the demo provider: what each code is
//! bound to, expiry after five minutes, and a hard cap on how many are held.
//!
//! Demo and test use only: codes live in memory.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::id_token::{Fault, UserClaims};

/// How long a code may be redeemed after it was issued.
pub(super) const CODE_TTL: Duration = Duration::from_secs(5 * 60);

/// Most codes held at once, redeemed ones included until they expire.
pub(super) const MAX_CODES: usize = 10_000;

/// Everything an authorization code stands for.
pub(super) struct Grant {
    pub(super) tenant: String,
    pub(super) client_id: String,
    pub(super) redirect_uri: String,
    pub(super) nonce: String,
    /// BASE64URL(SHA256(code_verifier)), from the authorization request.
    pub(super) code_challenge: String,
    pub(super) user: UserClaims,
    pub(super) fault: Option<Fault>,
    /// Asked for `offline_access`: a refresh token comes with the tokens.
    pub(super) offline: bool,
    pub(super) expires_at: Instant,
}

enum Entry {
    Pending(Box<Grant>),
    /// Kept until expiry so a second use is told apart from a made-up code.
    Redeemed {
        expires_at: Instant,
    },
}

impl Entry {
    fn expires_at(&self) -> Instant {
        match self {
            Entry::Pending(grant) => grant.expires_at,
            Entry::Redeemed { expires_at } => *expires_at,
        }
    }
}

/// Why a code could not be redeemed.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum RedeemError {
    Unknown,
    AlreadyRedeemed,
    Expired,
}

impl RedeemError {
    pub(super) fn description(&self) -> &'static str {
        match self {
            RedeemError::Unknown => "unknown authorization code",
            RedeemError::AlreadyRedeemed => "authorization code already redeemed",
            RedeemError::Expired => "authorization code expired",
        }
    }
}

/// The store is at its cap even after purging expired codes.
#[derive(Debug)]
pub(super) struct StoreFull;

/// Codes by value, bounded by a capacity.
pub(super) struct CodeStore {
    entries: HashMap<String, Entry>,
    capacity: usize,
}

impl CodeStore {
    pub(super) fn new(capacity: usize) -> CodeStore {
        CodeStore {
            entries: HashMap::new(),
            capacity,
        }
    }

    /// Stores a new code, first purging expired ones; refuses when full.
    pub(super) fn insert(
        &mut self,
        code: String,
        grant: Grant,
        now: Instant,
    ) -> Result<(), StoreFull> {
        self.entries.retain(|_, entry| entry.expires_at() > now);
        if self.entries.len() >= self.capacity {
            return Err(StoreFull);
        }
        self.entries.insert(code, Entry::Pending(Box::new(grant)));
        Ok(())
    }

    /// Takes the grant behind `code`; any later attempt fails.
    pub(super) fn redeem(&mut self, code: &str, now: Instant) -> Result<Grant, RedeemError> {
        let entry = self.entries.get_mut(code).ok_or(RedeemError::Unknown)?;
        let expires_at = entry.expires_at();
        if expires_at <= now {
            self.entries.remove(code);
            return Err(RedeemError::Expired);
        }
        match std::mem::replace(entry, Entry::Redeemed { expires_at }) {
            Entry::Pending(grant) => Ok(*grant),
            Entry::Redeemed { .. } => Err(RedeemError::AlreadyRedeemed),
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(expires_at: Instant) -> Grant {
        Grant {
            tenant: "contoso".into(),
            client_id: "app".into(),
            redirect_uri: "http://127.0.0.1/cb".into(),
            nonce: "n".into(),
            code_challenge: "c".into(),
            user: UserClaims {
                sub: "s".into(),
                sid: "sid".into(),
                login_hint: "hint".into(),
                groups: vec![],
                roles: vec![],
                overage: None,
                graph_page: 100,
                graph_status: None,
                oid: "o".into(),
                tid: "contoso".into(),
                name: "Ada Lovelace".into(),
                given_name: "Ada".into(),
                family_name: "Lovelace".into(),
                preferred_username: "ada@example.com".into(),
                email: None,
                xms_edov: None,
            },
            fault: None,
            offline: false,
            expires_at,
        }
    }

    #[test]
    fn a_code_redeems_once() {
        let now = Instant::now();
        let mut store = CodeStore::new(10);
        store
            .insert("a".into(), grant(now + CODE_TTL), now)
            .unwrap();
        assert_eq!(store.redeem("a", now).unwrap().client_id, "app");
        assert_eq!(
            store.redeem("a", now).err(),
            Some(RedeemError::AlreadyRedeemed)
        );
        assert_eq!(store.redeem("b", now).err(), Some(RedeemError::Unknown));
    }

    #[test]
    fn an_expired_code_is_refused_and_forgotten() {
        let now = Instant::now();
        let mut store = CodeStore::new(10);
        store
            .insert("a".into(), grant(now + CODE_TTL), now)
            .unwrap();
        let later = now + CODE_TTL;
        assert_eq!(store.redeem("a", later).err(), Some(RedeemError::Expired));
        assert_eq!(store.len(), 0);
    }

    #[test]
    fn the_store_is_capped_and_purges_expired_codes() {
        let now = Instant::now();
        let mut store = CodeStore::new(2);
        store
            .insert("a".into(), grant(now + CODE_TTL), now)
            .unwrap();
        store
            .insert("b".into(), grant(now + Duration::from_secs(1)), now)
            .unwrap();
        assert!(store
            .insert("c".into(), grant(now + CODE_TTL), now)
            .is_err());
        // Once "b" has expired there is room again.
        let later = now + Duration::from_secs(2);
        store
            .insert("c".into(), grant(later + CODE_TTL), later)
            .unwrap();
        assert_eq!(store.len(), 2);
        // A redeemed code still holds its place until it expires.
        store.redeem("a", later).unwrap();
        assert!(store
            .insert("d".into(), grant(later + CODE_TTL), later)
            .is_err());
    }
}
