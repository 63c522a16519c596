//! `idgate demo` and end-to-end test support. Nothing here is for production.

pub mod provider;
