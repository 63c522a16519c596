//! How the demo provider's authorization endpoint answers a client once its
//! `redirect_uri` is validated: `query` and `fragment` redirects, and the
//! self-submitting `form_post` page, for codes and OAuth errors alike.
//!
//! Demo and test use only.

use askama::Template;
use axum::http::header::{CACHE_CONTROL, LOCATION};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use url::Url;

use super::html;

/// `response_mode=form_post`: posts the reply to the client by itself.
#[derive(Template)]
#[template(
    ext = "html",
    source = r#"{% extends "base.html" %}
{% block title %}Signing in{% endblock %}
{% block content %}
<h1>Signing you in…</h1>
<form method="post" action="{{ action }}">
{% for (name, value) in fields %}<input type="hidden" name="{{ name }}" value="{{ value }}">
{% endfor %}<noscript><p>JavaScript is off: press Continue to finish signing in.</p></noscript>
<button type="submit">Continue</button>
</form>
<script>document.forms[0].submit();</script>
{% endblock %}"#
)]
struct FormPostPage<'a> {
    action: &'a str,
    fields: &'a [(&'a str, &'a str)],
}

/// How the reply travels to the client (`response_mode`).
pub(super) enum Mode {
    Query,
    Fragment,
    FormPost,
}

impl Mode {
    /// The mode a `response_mode` parameter names; absent means `query`.
    pub(super) fn parse(response_mode: Option<&str>) -> Option<Mode> {
        match response_mode {
            None | Some("query") => Some(Mode::Query),
            Some("fragment") => Some(Mode::Fragment),
            Some("form_post") => Some(Mode::FormPost),
            Some(_) => None,
        }
    }
}

/// The way back to a validated redirect URI.
pub(super) struct Reply<'a> {
    redirect_uri: Url,
    state: Option<&'a str>,
    mode: Mode,
}

impl<'a> Reply<'a> {
    /// The reply to a validated `redirect_uri`, echoing `state`.
    pub(super) fn new(redirect_uri: Url, state: Option<&'a str>, mode: Mode) -> Reply<'a> {
        Reply {
            redirect_uri,
            state,
            mode,
        }
    }

    pub(super) fn error(&self, error: &str, description: &str) -> Response {
        self.send(&[("error", error), ("error_description", description)])
    }

    /// Sends `fields`, and the request's `state`, to the redirect URI.
    pub(super) fn send(&self, fields: &[(&str, &str)]) -> Response {
        let mut fields = fields.to_vec();
        if let Some(state) = self.state {
            fields.push(("state", state));
        }
        let mut target = self.redirect_uri.clone();
        match self.mode {
            Mode::Query => {
                target.query_pairs_mut().extend_pairs(&fields);
            }
            Mode::Fragment => {
                let encoded = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(&fields)
                    .finish();
                target.set_fragment(Some(&encoded));
            }
            Mode::FormPost => {
                let page = FormPostPage {
                    action: target.as_str(),
                    fields: &fields,
                };
                return html(StatusCode::OK, page.render());
            }
        }
        (
            StatusCode::FOUND,
            [(LOCATION, target.as_str()), (CACHE_CONTROL, "no-store")],
        )
            .into_response()
    }
}
