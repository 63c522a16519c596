//! The demo provider's sign-out endpoint, shaped like Entra's
//! `/<tenant>/oauth2/v2.0/logout`: it takes `post_logout_redirect_uri`,
//! `client_id` and `logout_hint`, and sends the browser back to the
//! application when the address belongs to it (Entra wants it registered;
//! here it must have the origin of one of the client's redirect URIs),
//! else shows its own signed-out page. As Entra does, it first loads the
//! front-channel logout URL of the application (when one is registered)
//! in hidden frames, once for each provider session (`sid`) of the person
//! `logout_hint` names.
//!
//! Demo and test use only.

use std::sync::atomic::Ordering;

use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::header::LOCATION;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use url::Url;

use super::{html, is_valid_tenant, Params, Provider};

/// The provider's own page after a sign-out it cannot send back.
#[derive(Template)]
#[template(
    ext = "html",
    source = r#"{% extends "base.html" %}
{% block title %}Signed out{% endblock %}
{% block content %}
<h1>Signed out</h1>
<p>{{ message }}</p>
<p class="code">Demo identity provider</p>
{% endblock %}"#
)]
struct SignedOutPage<'a> {
    message: &'a str,
}

/// The page that loads the front-channel logout frames, then returns.
#[derive(Template)]
#[template(
    ext = "html",
    source = r#"{% extends "base.html" %}
{% block title %}Signing out{% endblock %}
{% block content %}
<h1>Signing out</h1>
<p>Signing you out of the applications you used.</p>
{% for frame in frames %}<iframe src="{{ frame }}" hidden></iframe>
{% endfor %}<p><a id="back" href="{{ back }}">Back to the application</a></p>
<script>window.addEventListener("load", function () { location.replace(document.getElementById("back").href); });</script>
{% endblock %}"#
)]
struct FramesPage<'a> {
    frames: Vec<String>,
    back: &'a str,
}

/// `GET /<tenant>/oauth2/v2.0/logout`.
pub(super) async fn logout(
    State(provider): State<Provider>,
    Path(tenant): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    provider
        .inner
        .counters
        .logout
        .fetch_add(1, Ordering::Relaxed);
    let page = |status, message| html(status, SignedOutPage { message }.render());
    if !is_valid_tenant(&tenant) {
        return page(
            StatusCode::BAD_REQUEST,
            "The tenant in the address is not valid.",
        );
    }
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    let Some(back) = params.get("post_logout_redirect_uri") else {
        return page(StatusCode::OK, "You signed out. You may close this window.");
    };
    let client = params.get("client_id").and_then(|id| provider.client(id));
    let Some(client) = client else {
        return page(
            StatusCode::BAD_REQUEST,
            "You signed out, but the request names no registered application to return to.",
        );
    };
    let origin = |uri: &str| Url::parse(uri).ok().map(|u| u.origin());
    let belongs = origin(back).is_some_and(|o| {
        o.is_tuple()
            && client
                .redirect_uris
                .iter()
                .any(|uri| origin(uri).as_ref() == Some(&o))
    });
    if !belongs {
        return page(
            StatusCode::BAD_REQUEST,
            "You signed out, but the address to return to does not belong to the application.",
        );
    }
    let sids = params
        .get("logout_hint")
        .map(|hint| provider.sign_out_sessions(hint))
        .unwrap_or_default();
    match provider.front_channel_logout_uri(&client.client_id) {
        Some(uri) if !sids.is_empty() => {
            let frames = sids
                .iter()
                .filter_map(|(sid, iss)| {
                    let mut frame = Url::parse(&uri).ok()?;
                    frame
                        .query_pairs_mut()
                        .append_pair("sid", sid)
                        .append_pair("iss", iss);
                    Some(frame.into())
                })
                .collect();
            html(StatusCode::OK, FramesPage { frames, back }.render())
        }
        _ => (StatusCode::FOUND, [(LOCATION, back.to_owned())]).into_response(),
    }
}
