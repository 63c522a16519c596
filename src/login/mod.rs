//! The sign-in service: the application flow built on the OpenID Connect
//! core (`oidc`) — starting a sign-in and finishing it at the callback
//! (`flow`), the console sign-in at The Things Stack that goes with it
//! (`console`), who the person is among the gateway's users (`registry`),
//! where they land afterwards (`return_target`), what they are told when
//! it cannot go on (`refusal`), signing out at the provider (`sign_out`),
//! the groups Microsoft Graph knows when a token holds too many (`graph`),
//! and sessions checked again with the provider (`revalidate`).

pub mod console;
pub mod flow;
pub mod graph;
pub mod refusal;
pub mod registry;
pub mod return_target;
pub mod revalidate;
pub mod sign_out;

pub use flow::{AccessSettings, CallbackParams, LoginFlow, Notice, Redirect};
pub use refusal::Refusal;
