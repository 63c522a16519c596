//! Sessions: a 256-bit random ID in a signed cookie, the session record in
//! a moka cache in front of the database (so a restart logs no one out and
//! any replica recognises the cookie), absolute lifetime and idle timeout.
//! A session read from the database is checked against its provider as it
//! is now: one whose provider has another URL or client ID, or whose rules
//! no longer admit its email, is ended; one whose provider this replica
//! does not know is refused (but kept: another replica may know it).

pub mod cookies;
pub mod sealed;

use crate::time::unix_now;
use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use constant_time_eq::constant_time_eq;
use http::{HeaderName, HeaderValue};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::identity::assertion::{AssertedIdentity, AssertionError, Signer};
use crate::identity::email::{self, Vouching};
use crate::identity::Identity;
use crate::oidc::id_token::Sid;
use crate::policy::access::Requirement;
use crate::provider_registry::Registry;
use crate::providers::Provider;
use crate::store::announce::Announcement;
use crate::store::sessions::SessionRow;
use crate::store::{Store, StoreError};
use cookies::CookieCodec;
use sealed::Sealer;

/// How long a cached session is trusted before the database is asked again
/// (so a logout or user deletion on another replica takes effect).
const CACHE_TTL: Duration = Duration::from_secs(30);
/// `last_seen` is written to the database at most this often per session.
const TOUCH_EVERY: i64 = 60;
/// How long a replica holds a session's revalidation before another may
/// take it over (a replica that died mid-refresh).
const REVALIDATION_LEASE: i64 = 30;
/// An assertion is signed again when it has less than this left.
const ASSERTION_REFRESH: i64 = 60;

/// A session in memory.
pub struct Live {
    pub identity: Identity,
    /// What its sign-in went by (absent in rows from before it was kept).
    pub sign_in: Option<SignIn>,
    id_hash: String,
    /// When the provider last vouched for it.
    validated_at: i64,
    /// Whether it has a refresh token to be checked with.
    refreshable: bool,
    /// When to ask the provider again; `i64::MAX` without a refresh token.
    revalidate_at: AtomicI64,
    /// A revalidation of it is under way on this replica.
    revalidating: AtomicBool,
    pub expires_at: i64,
    /// Until when this copy may be used without asking the database again.
    cached_until: Instant,
    last_seen: AtomicI64,
    persisted_seen: AtomicI64,
    assertion: ArcSwapOption<(HeaderValue, i64)>,
    headers: OnceLock<Vec<(HeaderName, HeaderValue)>>,
}

impl Live {
    /// The provider's hint naming the account, for sign-out there.
    pub fn login_hint(&self) -> Option<&str> {
        self.sign_in.as_ref()?.login_hint.as_deref()
    }

    /// Whether the provider is to be asked about it again now (and no one
    /// here is asking yet): a relaxed load and a compare, on every request.
    pub fn due(&self, now: i64) -> bool {
        now >= self.revalidate_at.load(Ordering::Relaxed)
            && !self.revalidating.load(Ordering::Relaxed)
    }

    /// The identity's header values, built once per session by `build`.
    pub fn headers(
        &self,
        build: impl FnOnce(&Identity) -> Vec<(HeaderName, HeaderValue)>,
    ) -> &[(HeaderName, HeaderValue)] {
        self.headers.get_or_init(|| build(&self.identity))
    }

    /// The signed identity assertion as a header value, signed again only
    /// near its expiry (or after a key rotation made it stale); `groups`
    /// gives the groups it carries, asked only when it is signed.
    pub fn assertion<'s>(
        &'s self,
        signer: &Signer,
        groups: impl FnOnce(&'s Identity) -> Cow<'s, [String]>,
    ) -> Result<HeaderValue, AssertionError> {
        let now = unix_now();
        if let Some(cached) = self.assertion.load_full() {
            if cached.1 - now > ASSERTION_REFRESH {
                return Ok(cached.0.clone());
            }
        }
        let groups = groups(&self.identity);
        let id = AssertedIdentity {
            username: &self.identity.username,
            email: &self.identity.email,
            provider: &self.identity.provider_id,
            groups: &groups,
            roles: &self.identity.roles,
        };
        let token = HeaderValue::from_str(&signer.sign(&id, now)?)
            .expect("a compact JWT is a valid header value");
        self.assertion
            .store(Some(Arc::new((token.clone(), signer.expires_at(now)))));
        Ok(token)
    }
}

/// What a session row holds: the identity, and what its sign-in went by.
#[derive(Serialize, Deserialize)]
struct Stored {
    #[serde(flatten)]
    identity: Identity,
    /// Absent in rows written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sign_in: Option<SignIn>,
}

/// What a sign-in went by: the provider's endpoint and client as they were,
/// and what vouched for the email.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SignIn {
    pub provider_url: String,
    pub client_id: String,
    pub vouching: Vouching,
    /// The ID token's `login_hint`, for `logout_hint` at sign-out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_hint: Option<String>,
    /// The ID token's `sid`: kept only as a hash in its own column, for
    /// front-channel logout.
    #[serde(skip)]
    pub sid: Option<Sid>,
    /// The refresh token: kept only sealed, in its own column.
    #[serde(skip)]
    pub refresh_token: Option<String>,
}

/// Without the refresh token or the `sid`, which never print.
impl std::fmt::Debug for SignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignIn")
            .field("provider_url", &self.provider_url)
            .field("client_id", &self.client_id)
            .field("vouching", &self.vouching)
            .field("login_hint", &self.login_hint)
            .finish_non_exhaustive()
    }
}

impl SignIn {
    /// A sign-in at `provider` as it is now.
    pub fn at(provider: &Provider, vouching: Vouching) -> Self {
        let oidc = &provider.configuration.oidc;
        Self {
            provider_url: oidc.provider_url.clone(),
            client_id: oidc.client_id.clone(),
            vouching,
            login_hint: None,
            sid: None,
            refresh_token: None,
        }
    }

    /// Whether `provider` still has the endpoint and client of this sign-in.
    fn same_endpoint(&self, provider: &Provider) -> bool {
        let oidc = &provider.configuration.oidc;
        self.provider_url == oidc.provider_url && self.client_id == oidc.client_id
    }
}

/// Why a session read from the database is not used.
enum SessionCheck {
    /// Its provider's rules, or its endpoint or client, changed: ended.
    Refused(&'static str),
    /// This replica does not know its provider: refused, row kept.
    Unknown,
}

/// What claiming a session's revalidation came to.
pub enum Claim {
    /// Ours: the refresh token, and the claim to record the outcome under.
    Held {
        refresh_token: String,
        claim: String,
    },
    /// Someone else is on it, or the store cannot say: it goes on as it is.
    Busy,
    /// Its refresh token does not open (another master secret): it can
    /// never be checked again.
    Unusable,
}

/// Lifetimes of sessions, in seconds.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    pub absolute: i64,
    pub idle: i64,
    /// How long the provider's word holds before it is asked again.
    pub revalidate_every: i64,
    /// How long past that a session goes on while the provider cannot be
    /// asked (unreachable, slow, 5xx).
    pub revalidate_grace: i64,
}

pub struct Sessions {
    store: Store,
    providers: Arc<Registry>,
    cache: moka::sync::Cache<String, Arc<Live>>,
    cookies: CookieCodec,
    lifetimes: Lifetimes,
    /// `[access]`, checked again whenever a session is read from the store.
    access: Requirement,
    /// Seals refresh tokens at rest.
    sealer: Sealer,
    /// Counts sessions ended here; a connection's remembered session is
    /// used only while no session has ended since it was found.
    revocations: AtomicU64,
    /// Held (shared) by loads from the database, (exclusive) by the end of
    /// sessions while their cached copies are removed.
    ending: tokio::sync::RwLock<()>,
}

/// The session one connection found for the `Cookie` header it sent, so
/// that the same header on its next request needs no MAC check, hash or
/// cache lookup (a keep-alive connection is usually one person's). Boxed:
/// every connection carries one, most of them idle and empty.
#[derive(Default)]
pub struct Remembered(Mutex<Option<Box<Memo>>>);

impl Remembered {
    /// Lets go of the session found, and the copy of its cookie: an idle
    /// connection holds nothing it can find again at its next request.
    pub fn forget(&self) {
        self.0.lock().expect("remembered session").take();
    }
}

struct Memo {
    cookie: HeaderValue,
    live: Arc<Live>,
    revocations: u64,
}

impl Sessions {
    pub fn new(
        store: Store,
        providers: Arc<Registry>,
        cookies: CookieCodec,
        lifetimes: Lifetimes,
        access: Requirement,
        sealer: Sealer,
    ) -> Self {
        let cache = moka::sync::Cache::builder()
            .max_capacity(200_000)
            .time_to_live(CACHE_TTL)
            .support_invalidation_closures()
            .build();
        Self {
            access,
            sealer,
            store,
            providers,
            cache,
            cookies,
            lifetimes,
            revocations: AtomicU64::new(0),
            ending: tokio::sync::RwLock::new(()),
        }
    }

    pub fn cookies(&self) -> &CookieCodec {
        &self.cookies
    }

    /// Starts a session (always a new ID: no fixation) for an identity
    /// signed in by `sign_in`, and returns its `Set-Cookie` value.
    pub async fn create(&self, identity: Identity, sign_in: SignIn) -> Result<String, StoreError> {
        let id = random_token();
        let id_hash = hash(&id);
        let now = unix_now();
        // The secrets of the sign-in go only into their columns (hashed,
        // sealed), never into the cached session.
        let mut sign_in = sign_in;
        let sid_hash = sign_in.sid.take().map(|s| hash(s.expose()));
        let refresh_token = sign_in
            .refresh_token
            .take()
            .map(|t| self.sealer.seal(&t, &id_hash));
        let revalidate_at = refresh_token
            .as_ref()
            .map(|_| now + self.lifetimes.revalidate_every);
        let stored = Stored {
            identity,
            sign_in: Some(sign_in),
        };
        let row = SessionRow {
            id_hash: id_hash.clone(),
            provider_id: stored.identity.provider_id.clone(),
            sub: stored.identity.sub.clone(),
            identity: serde_json::to_string(&stored).expect("identity serialises"),
            created_at: now,
            expires_at: now + self.lifetimes.absolute,
            last_seen: now,
            sid_hash,
            refresh_token,
            validated_at: now,
            revalidate_at,
        };
        self.store.insert_session(&row).await?;
        self.cache.insert(id_hash, Arc::new(live(stored, &row)));
        Ok(self.cookies.session_cookie(&id, self.lifetimes.absolute))
    }

    /// The session of a request, or `None` for a missing, forged, truncated,
    /// expired or idle cookie.
    pub async fn find<'a>(
        &self,
        cookie_headers: impl Iterator<Item = &'a HeaderValue>,
    ) -> Option<Arc<Live>> {
        let id = self.cookies.session_id(cookie_headers)?;
        let id_hash = hash(&id);
        let live = match self.cache.get(&id_hash) {
            Some(l) => l,
            None => self.load(&id_hash).await?,
        };
        self.admit(live, unix_now()).await
    }

    /// As `find`, but first asks what `memo` remembers: when the request
    /// has one `Cookie` header, equal (compared in constant time) to the one
    /// the remembered session was found for, that session is used.
    pub async fn find_remembered(
        &self,
        memo: &Remembered,
        cookie_headers: http::header::GetAll<'_, HeaderValue>,
    ) -> Option<Arc<Live>> {
        let mut headers = cookie_headers.iter();
        match (headers.next(), headers.next()) {
            (Some(cookie), None) => self.find_by_cookie(memo, cookie.as_bytes()).await,
            _ => self.find(cookie_headers.iter()).await,
        }
    }

    /// The session of a request whose one `Cookie` header is `cookie`: the
    /// one `memo` remembers for exactly these bytes, else looked up (and
    /// then remembered).
    pub async fn find_by_cookie(&self, memo: &Remembered, cookie: &[u8]) -> Option<Arc<Live>> {
        let revocations = self.revocations.load(Ordering::Acquire);
        let now = unix_now();
        let hit = memo
            .0
            .lock()
            .expect("remembered session")
            .as_ref()
            .filter(|m| {
                m.revocations == revocations
                    && m.live.cached_until > Instant::now()
                    && constant_time_eq(m.cookie.as_bytes(), cookie)
            })
            .map(|m| m.live.clone());
        if let Some(live) = hit {
            return self.admit(live, now).await;
        }
        let cookie = HeaderValue::from_bytes(cookie).ok()?;
        let live = self.find(std::iter::once(&cookie)).await?;
        *memo.0.lock().expect("remembered session") = Some(Box::new(Memo {
            cookie,
            live: live.clone(),
            revocations,
        }));
        Some(live)
    }

    /// `live` if it has neither expired nor idled out (then it is ended);
    /// records the activity.
    async fn admit(&self, live: Arc<Live>, now: i64) -> Option<Arc<Live>> {
        if live.expires_at <= now
            || now - live.last_seen.load(Ordering::Relaxed) > self.lifetimes.idle
        {
            self.cache.invalidate(&live.id_hash);
            let _ = self.store.delete_session(&live.id_hash).await;
            return None;
        }
        live.last_seen.store(now, Ordering::Relaxed);
        if now - live.persisted_seen.swap(now, Ordering::Relaxed) >= TOUCH_EVERY {
            let store = self.store.clone();
            let id_hash = live.id_hash.clone();
            tokio::spawn(async move {
                if let Err(e) = store.touch_session(&id_hash, now).await {
                    tracing::warn!(error = %e, "cannot record session activity");
                }
            });
        }
        Some(live)
    }

    /// Makes every connection's remembered session be looked up again;
    /// called once the ended sessions are gone from database and cache.
    fn revoke(&self) {
        self.revocations.fetch_add(1, Ordering::AcqRel);
    }

    async fn load(&self, id_hash: &str) -> Option<Arc<Live>> {
        // A session ended while its row was being read must not come back
        // into the cache: ending waits for loads in progress.
        let _loading = self.ending.read().await;
        let row = match self.store.get_session(id_hash).await {
            Ok(row) => row?,
            Err(e) => {
                tracing::error!(error = %e, "session lookup failed; treating as signed out");
                return None;
            }
        };
        let stored: Stored = match serde_json::from_str(&row.identity) {
            Ok(stored) => stored,
            Err(e) => {
                tracing::warn!(error = %e, "a stored session does not decode; treating as signed out");
                return None;
            }
        };
        let (provider, username) = (&stored.identity.provider_id, &stored.identity.username);
        match self.still_admitted(&stored).await {
            Ok(()) => {}
            Err(SessionCheck::Refused(reason)) => {
                tracing::info!(provider = %provider, username = %username, reason, "session ended: its provider no longer admits it");
                if let Err(e) = self.store.delete_session(id_hash).await {
                    tracing::warn!(error = %e, "cannot delete an ended session");
                }
                return None;
            }
            Err(SessionCheck::Unknown) => {
                tracing::info!(provider = %provider, username = %username, "session refused: its provider is not configured here");
                return None;
            }
        }
        let l = Arc::new(live(stored, &row));
        self.cache.insert(id_hash.to_string(), l.clone());
        Some(l)
    }

    /// Whether the session's provider is known here (the providers are
    /// read again once before it is taken as unknown), has the endpoint and
    /// client the sign-in went by, and admits the session's email by its
    /// rules as they are now.
    async fn still_admitted(&self, stored: &Stored) -> Result<(), SessionCheck> {
        let identity = &stored.identity;
        let provider = match self.providers.get(&identity.provider_id) {
            Some(p) => p,
            None => {
                if let Err(e) = self.providers.refresh().await {
                    tracing::warn!(error = %e, "cannot read the providers again");
                }
                self.providers
                    .get(&identity.provider_id)
                    .ok_or(SessionCheck::Unknown)?
            }
        };
        if stored
            .sign_in
            .as_ref()
            .is_some_and(|s| !s.same_endpoint(&provider))
        {
            return Err(SessionCheck::Refused("provider_changed"));
        }
        email::check_again(
            &provider,
            &identity.email,
            identity.tid.as_deref(),
            stored.sign_in.as_ref().map(|s| s.vouching),
        )
        .map_err(|r| SessionCheck::Refused(r.reason()))?;
        // `[access]` as it is now (it may have changed since the sign-in).
        self.access
            .admits(&identity.held())
            .map_err(|r| SessionCheck::Refused(r.reason()))
    }

    /// Ends one session on the server: the row first (so a failure leaves
    /// it working, and the person is told), then every cached copy.
    pub async fn end(&self, live: &Live) -> Result<(), StoreError> {
        self.store.delete_session(&live.id_hash).await?;
        self.forget_session(&live.id_hash).await;
        let ended = Announcement::Session(live.id_hash.clone());
        self.store.announce(&ended).await;
        Ok(())
    }

    /// Claims the revalidation of `live` on this replica and in the store
    /// (one at a time per session, across replicas).
    pub async fn claim_revalidation(&self, live: &Live, now: i64) -> Claim {
        if live.revalidating.swap(true, Ordering::AcqRel) {
            return Claim::Busy;
        }
        let claim = random_token();
        let sealed = self
            .store
            .claim_revalidation(&live.id_hash, now, REVALIDATION_LEASE, &claim)
            .await;
        let outcome = match sealed {
            Ok(Some(sealed)) => match self.sealer.open(&sealed, &live.id_hash) {
                Some(refresh_token) => {
                    return Claim::Held {
                        refresh_token,
                        claim,
                    }
                }
                None => Claim::Unusable,
            },
            // Another replica is on it: not asked again here until its
            // lease would be over (its result reaches this replica sooner).
            Ok(None) => {
                live.revalidate_at
                    .store(now + REVALIDATION_LEASE, Ordering::Relaxed);
                Claim::Busy
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim a session's revalidation");
                Claim::Busy
            }
        };
        live.revalidating.store(false, Ordering::Release);
        outcome
    }

    /// The provider vouched for session `old` again: its identity is
    /// replaced by `identity`, its refresh token by `refresh_token`; every
    /// replica reads it afresh.
    pub async fn renew(
        &self,
        old: &Live,
        claim: &str,
        identity: Identity,
        refresh_token: &str,
        now: i64,
    ) -> Result<Option<Arc<Live>>, StoreError> {
        let stored = Stored {
            identity,
            sign_in: old.sign_in.clone(),
        };
        let json = serde_json::to_string(&stored).expect("identity serialises");
        let sealed = self.sealer.seal(refresh_token, &old.id_hash);
        let revalidate_at = now + self.lifetimes.revalidate_every;
        let stored_row = self
            .store
            .revalidated(&old.id_hash, claim, &json, &sealed, now, revalidate_at)
            .await;
        match stored_row {
            Ok(true) => {}
            // Signed out meanwhile, or the check outlasted its claim: it
            // is not brought back.
            Ok(false) => {
                self.forget_session(&old.id_hash).await;
                return Ok(None);
            }
            Err(e) => {
                old.revalidating.store(false, Ordering::Release);
                return Err(e);
            }
        }
        let times = (old.expires_at, old.last_seen.load(Ordering::Relaxed));
        let renewed = Arc::new(new_live(
            stored,
            old.id_hash.clone(),
            times,
            now,
            Some(revalidate_at),
        ));
        self.forget_session(&old.id_hash).await;
        self.cache.insert(old.id_hash.clone(), renewed.clone());
        self.store
            .announce(&Announcement::Session(old.id_hash.clone()))
            .await;
        Ok(Some(renewed))
    }

    /// The provider could not be asked about `live`: asked again at
    /// `retry_at`, not at every request meanwhile.
    pub async fn postpone(&self, live: &Live, claim: &str, retry_at: i64) {
        live.revalidate_at.store(retry_at, Ordering::Relaxed);
        live.revalidating.store(false, Ordering::Release);
        if let Err(e) = self
            .store
            .revalidation_postponed(&live.id_hash, claim, retry_at)
            .await
        {
            tracing::warn!(error = %e, "cannot record a postponed revalidation");
        }
    }

    /// When `live` will have gone unvouched for longer than the
    /// revalidation interval and its grace: from then on it ends rather
    /// than wait on a provider that cannot be asked.
    pub fn grace_end(&self, live: &Live) -> i64 {
        let l = &self.lifetimes;
        live.validated_at + l.revalidate_every + l.revalidate_grace
    }

    /// Whether `live` can be checked with its provider and has gone
    /// unvouched past its grace (whatever became of its checks): it is not
    /// to be used any more.
    pub fn past_grace(&self, live: &Live, now: i64) -> bool {
        live.refreshable && now >= self.grace_end(live)
    }

    /// Drops this replica's copy of `live` (its row may be gone already,
    /// or could not be deleted): the next request reads the store.
    pub async fn refuse_here(&self, live: &Live) {
        self.forget_session(&live.id_hash).await;
    }

    /// Ends the sessions of `provider_id` that signed in during the
    /// provider's session `sid` (a front-channel logout); returns how many.
    pub async fn end_sid(&self, provider_id: &str, sid: &str) -> Result<usize, StoreError> {
        let ended = self
            .store
            .delete_sessions_of_sid(provider_id, &hash(sid))
            .await?;
        for id_hash in &ended {
            self.forget_session(id_hash).await;
            let announcement = Announcement::Session(id_hash.clone());
            self.store.announce(&announcement).await;
        }
        Ok(ended.len())
    }

    async fn forget_session(&self, id_hash: &str) {
        let _ending = self.ending.write().await;
        self.cache.invalidate(id_hash);
        self.revoke();
    }

    /// What another replica announced: its cached copies here go too.
    pub async fn heard(&self, a: &Announcement) {
        match a {
            Announcement::Session(id_hash) => self.forget_session(id_hash).await,
            Announcement::User { provider_id, sub } => {
                self.forget_user_here(provider_id, sub).await
            }
            Announcement::Provider(id) => self.forget_provider_here(id).await,
        }
    }

    /// Ends every session that came through `provider_id`.
    pub async fn end_provider(&self, provider_id: &str) -> Result<(), StoreError> {
        self.store.delete_sessions_of_provider(provider_id).await?;
        self.forget_provider(provider_id).await;
        Ok(())
    }

    /// Forgets every cached session of `provider_id`, here and on the other
    /// replicas: each is read from the database, and checked against the
    /// provider, at its next request.
    pub async fn forget_provider(&self, provider_id: &str) {
        self.provider_changed(provider_id, true).await;
    }

    /// Tells the other replicas that `provider_id` was created, changed or
    /// deleted (they read it again and check its sessions afresh); here,
    /// its cached sessions are forgotten when `rules_changed`.
    pub async fn provider_changed(&self, provider_id: &str, rules_changed: bool) {
        if rules_changed {
            self.forget_provider_here(provider_id).await;
        }
        let changed = Announcement::Provider(provider_id.to_string());
        self.store.announce(&changed).await;
    }

    async fn forget_provider_here(&self, provider_id: &str) {
        let id = provider_id.to_string();
        self.forget_where(move |l| l.identity.provider_id == id)
            .await;
    }

    /// Forgets every cached session of one person (their rows are gone),
    /// here and on the other replicas.
    pub async fn forget_user(&self, provider_id: &str, sub: &str) {
        self.forget_user_here(provider_id, sub).await;
        let deleted = Announcement::User {
            provider_id: provider_id.to_string(),
            sub: sub.to_string(),
        };
        self.store.announce(&deleted).await;
    }

    async fn forget_user_here(&self, provider_id: &str, sub: &str) {
        let (p, s) = (provider_id.to_string(), sub.to_string());
        self.forget_where(move |l| l.identity.provider_id == p && l.identity.sub == s)
            .await;
    }

    /// Removes the cached sessions `ended` picks, once no load is between
    /// reading a row and caching it, then revokes remembered sessions.
    async fn forget_where(&self, ended: impl Fn(&Live) -> bool + Send + Sync + 'static) {
        let _ending = self.ending.write().await;
        let _ = self.cache.invalidate_entries_if(move |_, l| ended(l));
        self.revoke();
    }

    /// Deletes expired and idle sessions every few minutes.
    pub async fn keep_clean(self: Arc<Self>) {
        loop {
            tokio::time::sleep(Duration::from_secs(300)).await;
            if let Err(e) = self
                .store
                .purge_sessions(unix_now(), self.lifetimes.idle)
                .await
            {
                tracing::warn!(error = %e, "cannot purge old sessions");
            }
        }
    }
}

/// The session `row` holds, with its decoded `stored` identity.
fn live(stored: Stored, row: &SessionRow) -> Live {
    let revalidation = row
        .refresh_token
        .as_ref()
        .map(|_| row.revalidate_at.unwrap_or(i64::MAX));
    new_live(
        stored,
        row.id_hash.clone(),
        (row.expires_at, row.last_seen),
        row.validated_at,
        revalidation,
    )
}

/// A session in memory: `times` are its expiry and last use;
/// `revalidation` when it is to be checked with its provider again (`None`:
/// it has no refresh token to be checked with).
fn new_live(
    stored: Stored,
    id_hash: String,
    (expires_at, last_seen): (i64, i64),
    validated_at: i64,
    revalidation: Option<i64>,
) -> Live {
    Live {
        identity: stored.identity,
        sign_in: stored.sign_in,
        id_hash,
        validated_at,
        refreshable: revalidation.is_some(),
        revalidate_at: AtomicI64::new(revalidation.unwrap_or(i64::MAX)),
        revalidating: AtomicBool::new(false),
        expires_at,
        cached_until: Instant::now() + CACHE_TTL,
        last_seen: AtomicI64::new(last_seen),
        persisted_seen: AtomicI64::new(last_seen),
        assertion: ArcSwapOption::empty(),
        headers: OnceLock::new(),
    }
}

/// 256 random bits, base64url: a session ID, a revalidation claim, a
/// login's state, nonce and PKCE verifier.
pub fn random_token() -> String {
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    URL_SAFE_NO_PAD.encode(raw)
}

/// Hex SHA-256 of a session ID: what the database and the cache key on.
fn hash(id: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(64);
    for b in Sha256::digest(id.as_bytes()) {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row written before sign-ins were kept with sessions still reads,
    /// as one with no sign-in evidence.
    #[test]
    fn rows_from_before_sign_ins_were_kept_still_read() {
        let old = r#"{"provider_id":"entra","sub":"s1","username":"ada","email":"ada@example.com","tid":"t1"}"#;
        let stored: Stored = serde_json::from_str(old).unwrap();
        assert_eq!(stored.identity.username, "ada");
        assert_eq!(stored.identity.tid.as_deref(), Some("t1"));
        assert!(stored.sign_in.is_none());
    }

    #[test]
    fn a_sign_in_is_kept_beside_the_identity() {
        let stored = Stored {
            identity: serde_json::from_str(
                r#"{"provider_id":"entra","sub":"s1","username":"ada","email":"ada@example.com"}"#,
            )
            .unwrap(),
            sign_in: Some(SignIn {
                provider_url: "https://login.example/t/v2.0".into(),
                client_id: "c".into(),
                vouching: Vouching {
                    multi_tenant: true,
                    email_verified: None,
                    xms_edov: Some(true),
                },
                login_hint: Some("hint".into()),
                sid: Some(Sid::new("a bearer secret")),
                refresh_token: Some("a refresh secret".into()),
            }),
        };
        let json = serde_json::to_string(&stored).unwrap();
        assert!(!json.contains("a bearer secret"), "{json}");
        assert!(!json.contains("a refresh secret"), "{json}");
        let debug = format!("{:?}", stored.sign_in);
        assert!(!debug.contains("a bearer secret"), "{debug}");
        assert!(!debug.contains("a refresh secret"), "{debug}");
        let again: Stored = serde_json::from_str(&json).unwrap();
        assert_eq!(
            again.sign_in.as_ref().unwrap().login_hint.as_deref(),
            Some("hint")
        );
        let sign_in = again.sign_in.unwrap();
        assert_eq!(sign_in.client_id, "c");
        assert!(sign_in.vouching.multi_tenant);
        assert_eq!(sign_in.vouching.xms_edov, Some(true));
        assert_eq!(again.identity.email, "ada@example.com");
    }
}
