//! The assertion signing keys over time: the current key and the one it
//! replaced, stored in the database so every replica signs with and
//! publishes the same keys, rotated on request through the admin API.

use crate::time::unix_now;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::assertion::{AssertionError, Signer, SigningKey};
use crate::store::{Store, StoreError};

const CURRENT: &str = "assertion_key";
const PREVIOUS: &str = "assertion_key_previous";
/// How often replicas look for a rotation made elsewhere.
const REFRESH_EVERY: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the stored assertion key is damaged: {0}")]
    Damaged(String),
    #[error(transparent)]
    Key(#[from] AssertionError),
    #[error("the assertion key comes from assertion.key_file; replace that file to rotate")]
    FromFile,
}

/// What every signer is made with.
#[derive(Clone)]
pub struct SignerSettings {
    pub issuer: String,
    pub audience: String,
    pub lifetime: Duration,
}

pub struct AssertionKeys {
    store: Store,
    settings: SignerSettings,
    from_file: bool,
    signer: ArcSwap<Signer>,
}

fn decode(b64: &str) -> Result<SigningKey, KeyError> {
    let der = STANDARD
        .decode(b64)
        .map_err(|e| KeyError::Damaged(e.to_string()))?;
    SigningKey::from_pkcs8_der(&der).map_err(|e| KeyError::Damaged(e.to_string()))
}

impl AssertionKeys {
    /// Keys from the database, created on first start.
    pub async fn load(store: Store, settings: SignerSettings) -> Result<AssertionKeys, KeyError> {
        let generated = SigningKey::generate()?;
        store
            .secret_or_create(CURRENT, || STANDARD.encode(generated.pkcs8_der()))
            .await?;
        let signer = Self::read(&store, &settings).await?;
        Ok(AssertionKeys {
            store,
            settings,
            from_file: false,
            signer: ArcSwap::from_pointee(signer),
        })
    }

    /// A fixed key from `assertion.key_file`.
    pub fn fixed(store: Store, settings: SignerSettings, key: SigningKey) -> AssertionKeys {
        let signer = Signer::new(
            key,
            settings.issuer.clone(),
            settings.audience.clone(),
            settings.lifetime,
        );
        AssertionKeys {
            store,
            settings,
            from_file: true,
            signer: ArcSwap::from_pointee(signer),
        }
    }

    async fn read(store: &Store, s: &SignerSettings) -> Result<Signer, KeyError> {
        let current = store
            .secret(CURRENT)
            .await?
            .ok_or_else(|| KeyError::Damaged("missing".into()))?;
        let mut signer = Signer::new(
            decode(&current)?,
            s.issuer.clone(),
            s.audience.clone(),
            s.lifetime,
        );
        if let Some(previous) = store.secret(PREVIOUS).await? {
            let (key, until) = previous
                .split_once(' ')
                .ok_or_else(|| KeyError::Damaged("previous key without retirement time".into()))?;
            let until: i64 = until
                .parse()
                .map_err(|_| KeyError::Damaged("bad retirement time".into()))?;
            if until >= unix_now() {
                signer.keep_published(decode(key)?, until);
            }
        }
        Ok(signer)
    }

    /// The signer to use now.
    pub fn signer(&self) -> arc_swap::Guard<Arc<Signer>> {
        self.signer.load()
    }

    /// Makes a new key current; the old one stays published until the
    /// assertions it signed have expired. Returns the new `kid`.
    pub async fn rotate(&self) -> Result<String, KeyError> {
        if self.from_file {
            return Err(KeyError::FromFile);
        }
        let old = self.signer.load().current().clone();
        let next = SigningKey::generate()?;
        let now = unix_now();
        let mut signer = Signer::new(
            old.clone(),
            self.settings.issuer.clone(),
            self.settings.audience.clone(),
            self.settings.lifetime,
        );
        let retire = signer.expires_at(now);
        signer.rotate(next.clone(), now);
        self.store
            .put_secret(
                PREVIOUS,
                &format!("{} {retire}", STANDARD.encode(old.pkcs8_der())),
            )
            .await?;
        self.store
            .put_secret(CURRENT, &STANDARD.encode(next.pkcs8_der()))
            .await?;
        self.signer.store(Arc::new(signer));
        tracing::info!(
            kid = next.kid(),
            previous = old.kid(),
            "assertion key rotated"
        );
        Ok(next.kid().to_string())
    }

    /// Picks up rotations made by other replicas, for as long as the gateway runs.
    pub async fn keep_fresh(self: Arc<Self>) {
        if self.from_file {
            return;
        }
        loop {
            tokio::time::sleep(REFRESH_EVERY).await;
            match Self::read(&self.store, &self.settings).await {
                Ok(s) if s.current().kid() != self.signer.load().current().kid() => {
                    self.signer.store(Arc::new(s))
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot read the assertion keys"),
            }
        }
    }
}
