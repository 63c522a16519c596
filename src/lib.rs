//! idgate: an identity-aware reverse proxy that runs the Microsoft Entra ID
//! OpenID Connect login in front of The Things Stack console or any web app,
//! and forwards verified identity upstream.

pub mod admin;
pub mod cli;
pub mod config;
pub mod demo;
pub mod identity;
pub mod logging;
pub mod metrics;
pub mod oidc;
pub mod pages;
pub mod paths;
pub mod policy;
pub mod providers;
pub mod proxy;
pub mod server;
pub mod session;
pub mod shutdown;
pub mod store;
pub mod time;
pub mod tts;
