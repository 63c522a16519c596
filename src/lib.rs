//! idgate: an identity-aware reverse proxy that runs the Microsoft Entra ID
//! OpenID Connect login in front of The Things Stack console or any web app,
//! and forwards verified identity upstream.
//!
//! # Layout
//!
//! From the bottom up; a module uses only those above it in this list:
//!
//! - [`time`], [`paths`], [`tls`], [`shutdown`], [`pages`], [`metrics`],
//!   [`memory`]: small helpers (clock, path normal forms, rustls settings,
//!   signals, HTML pages, counters, giving freed memory back).
//! - [`policy`]: every decision both data paths take (routes, headers,
//!   cookies), protocol-neutral.
//! - [`oidc`]: the OpenID Connect core (discovery, keys, ID tokens).
//! - [`providers`]: the provider model and its rules.
//! - [`store`], then [`provider_registry`]: SQLite and PostgreSQL through
//!   sqlx, the notifications replicas exchange; the providers this gateway
//!   serves, kept in memory and refreshed from the store.
//! - [`config`], then [`logging`]: the file and environment, validated; the
//!   log it sets up.
//! - [`tts`]: The Things Stack's API as the console sign-in uses it.
//! - [`identity`], then [`session`]: the identity, usernames, email rules,
//!   the assertion; sessions and cookies.
//! - [`login`]: the sign-in service (the flow, the console step, the user
//!   registry, `rd`).
//! - [`proxy`]: the data plane carrying out the policy (the fast path,
//!   hyper, the upstream).
//! - [`admin`]: the admin listener and API.
//! - [`server`]: startup, wiring all of the above.
//! - [`cli`], [`demo`]: the command line and the local demo stack.

pub mod admin;
pub mod cli;
pub mod config;
pub mod demo;
pub mod identity;
pub mod logging;
pub mod login;
pub mod memory;
pub mod metrics;
pub mod oidc;
pub mod pages;
pub mod paths;
pub mod policy;
pub mod provider_registry;
pub mod providers;
pub mod proxy;
pub mod server;
pub mod session;
pub mod shutdown;
pub mod store;
pub mod time;
pub mod tls;
pub mod tts;
