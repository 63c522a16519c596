//! The OpenID Connect verification core of the login: provider metadata from
//! discovery, signing keys from the JWKS (both cached and shared), and ID
//! token verification that fails closed with a distinct reason per failure.
//! The sign-in service (`login`) builds on it.

pub mod client;
pub mod discovery;
pub mod error;
pub mod id_token;
pub mod jwks;

pub use client::{CacheConfig, OidcCache};
pub use discovery::Metadata;
pub use error::OidcError;
pub use id_token::{verify, Expectations, IdClaims};
pub use jwks::Jwk;
