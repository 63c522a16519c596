//! A sign-in that cannot go on: its status, the page the person sees and
//! the stable reason the operator's log gets, for every refusal of the
//! sign-in service.

use crate::oidc::OidcError;

/// A login that cannot go on: what the person sees and what the log says.
#[derive(Debug)]
pub struct Refusal {
    pub status: u16,
    pub code: &'static str,
    pub title: &'static str,
    pub message: String,
    /// Stable, for logs and metrics.
    pub reason: &'static str,
    /// `Set-Cookie` values to send with the refusal (clearing a used login).
    pub cookies: Vec<String>,
}

impl Refusal {
    pub(crate) fn new(
        status: u16,
        code: &'static str,
        title: &'static str,
        message: impl Into<String>,
        reason: &'static str,
    ) -> Self {
        Self {
            status,
            code,
            title,
            message: message.into(),
            reason,
            cookies: Vec::new(),
        }
    }

    pub(crate) fn broken(reason: &'static str, message: &str) -> Self {
        Self::new(
            400,
            "login_failed",
            "Sign-in could not be completed",
            message,
            reason,
        )
    }

    /// The stack could not say whose session a browser holds.
    pub fn stack_unreachable() -> Self {
        Self::new(
            502,
            "stack_failed",
            "The Things Stack is not answering",
            "The gateway could not check your console session with The Things Stack. Try again in a moment.",
            "stack_unreachable",
        )
    }

    /// The session could not be ended.
    pub fn logout_failed() -> Self {
        Self::new(
            500,
            "logout_failed",
            "Sign-out failed",
            "The gateway could not end your session. Try again in a moment.",
            "logout_failed",
        )
    }

    pub fn unknown_provider() -> Self {
        Self::new(
            404,
            "unknown_provider",
            "Unknown sign-in provider",
            "This sign-in provider does not exist (any more). Choose one on the sign-in page.",
            "unknown_provider",
        )
    }

    pub(crate) fn from_oidc(e: &OidcError) -> Self {
        if e.is_provider_failure() {
            Self::new(
                502,
                "provider_failed",
                "The sign-in provider is not answering",
                "The sign-in provider could not be reached or gave an unusable answer. Try again in a moment.",
                e.reason(),
            )
        } else {
            Self::broken(
                e.reason(),
                "The answer from the sign-in provider could not be verified. Start the sign-in again.",
            )
        }
    }
}

/// The refusal for a failure inside the gateway.
pub(crate) fn internal() -> Refusal {
    Refusal::new(
        500,
        "internal",
        "Something went wrong",
        "The gateway could not complete the sign-in. Try again; if it keeps failing, tell the operator.",
        "internal",
    )
}
