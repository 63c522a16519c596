//! The providers this gateway serves: those declared in the config file
//! (read-only) and those stored in the database, kept in memory for the
//! request path and refreshed from the database so that other replicas'
//! changes arrive too.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::providers::validate::{self, Rules};
use crate::providers::{Provider, ProviderChange};
use crate::store::providers::InsertError;
use crate::store::{Store, StoreError};
use crate::time::timestamp_now;

/// How often the database is read again for changes made elsewhere.
const REFRESH_EVERY: Duration = Duration::from_secs(5);

/// Why a change to the registry was refused.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{0}")]
    Invalid(String),
    #[error("provider {0:?} not found")]
    NotFound(String),
    #[error("provider {0:?} already exists")]
    Duplicate(String),
    #[error("provider {0:?} is declared in the config file and is read-only through the API; change it there")]
    ReadOnly(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

type Snapshot = BTreeMap<String, Arc<Provider>>;

pub struct Registry {
    store: Store,
    declared: Vec<Provider>,
    rules: Rules,
    current: ArcSwap<Snapshot>,
}

impl Registry {
    /// Loads the stored providers next to the declared ones.
    pub async fn load(
        store: Store,
        declared: Vec<Provider>,
        rules: Rules,
    ) -> Result<Arc<Registry>, StoreError> {
        let registry = Registry {
            store,
            declared,
            rules,
            current: ArcSwap::from_pointee(Snapshot::new()),
        };
        registry.refresh().await?;
        Ok(Arc::new(registry))
    }

    /// Reads the database again.
    pub async fn refresh(&self) -> Result<(), StoreError> {
        let mut next: Snapshot = self
            .store
            .list_providers()
            .await?
            .into_iter()
            .map(|p| (p.id().to_string(), Arc::new(p)))
            .collect();
        for p in &self.declared {
            next.insert(p.id().to_string(), Arc::new(p.clone()));
        }
        self.current.store(Arc::new(next));
        Ok(())
    }

    /// Refreshes for as long as the gateway runs.
    pub async fn keep_fresh(self: Arc<Self>) {
        loop {
            tokio::time::sleep(REFRESH_EVERY).await;
            if let Err(e) = self.refresh().await {
                tracing::warn!(error = %e, "cannot refresh providers from the database; serving the last known set");
            }
        }
    }

    pub fn get(&self, id: &str) -> Option<Arc<Provider>> {
        self.current.load().get(id).cloned()
    }

    /// Every provider, ordered by ID.
    pub fn list(&self) -> Vec<Arc<Provider>> {
        self.current.load().values().cloned().collect()
    }

    fn declared(&self, id: &str) -> bool {
        self.declared.iter().any(|p| p.id() == id)
    }

    pub async fn create(
        &self,
        id: &str,
        change: ProviderChange,
    ) -> Result<Provider, RegistryError> {
        validate::provider_id(id).map_err(RegistryError::Invalid)?;
        if self.declared(id) {
            return Err(RegistryError::ReadOnly(id.to_string()));
        }
        let provider = change.into_new(id, &timestamp_now());
        validate::provider(&provider, self.rules).map_err(RegistryError::Invalid)?;
        match self.store.insert_provider(&provider).await {
            Ok(()) => {}
            Err(InsertError::Duplicate) => return Err(RegistryError::Duplicate(id.to_string())),
            Err(InsertError::Store(e)) => return Err(e.into()),
        }
        self.refresh().await?;
        Ok(provider)
    }

    pub async fn update(
        &self,
        id: &str,
        change: &ProviderChange,
    ) -> Result<Provider, RegistryError> {
        if self.declared(id) {
            return Err(RegistryError::ReadOnly(id.to_string()));
        }
        let current = self
            .store
            .get_provider(id)
            .await?
            .ok_or_else(|| RegistryError::NotFound(id.to_string()))?;
        let updated = change.apply_to(current, &timestamp_now());
        validate::provider(&updated, self.rules).map_err(RegistryError::Invalid)?;
        if !self.store.update_provider(&updated).await? {
            return Err(RegistryError::NotFound(id.to_string()));
        }
        self.refresh().await?;
        Ok(updated)
    }

    pub async fn delete(&self, id: &str) -> Result<(), RegistryError> {
        if self.declared(id) {
            return Err(RegistryError::ReadOnly(id.to_string()));
        }
        if !self.store.delete_provider(id).await? {
            return Err(RegistryError::NotFound(id.to_string()));
        }
        self.refresh().await?;
        Ok(())
    }
}
