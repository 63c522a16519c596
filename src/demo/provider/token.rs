//! The demo provider's token endpoint: client authentication
//! (`client_secret_basic`, `client_secret_post`) with constant-time secret
//! comparison, single-use code redemption with PKCE S256, and the token
//! response carrying a freshly minted ID token.
//!
//! Demo and test use only.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, PRAGMA, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use constant_time_eq::constant_time_eq;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::codes::Grant;
use super::id_token::{self, Fault};
use super::{is_valid_tenant, json_error, random_token, Params, Provider, RefreshFault};

#[derive(Serialize)]
struct TokenResponse {
    token_type: &'static str,
    scope: &'static str,
    expires_in: u64,
    access_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
}

/// An OAuth error from the token endpoint.
struct TokenError {
    status: StatusCode,
    error: &'static str,
    description: &'static str,
}

impl TokenError {
    fn bad_request(error: &'static str, description: &'static str) -> TokenError {
        TokenError {
            status: StatusCode::BAD_REQUEST,
            error,
            description,
        }
    }

    fn invalid_client(description: &'static str) -> TokenError {
        TokenError {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            description,
        }
    }

    fn invalid_grant(description: &'static str) -> TokenError {
        TokenError::bad_request("invalid_grant", description)
    }
}

impl IntoResponse for TokenError {
    fn into_response(self) -> Response {
        let mut response = json_error(self.status, self.error, self.description);
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Basic realm="demo provider token endpoint""#),
            );
        }
        no_store(headers);
        response
    }
}

fn no_store(headers: &mut HeaderMap) {
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
}

/// `POST /<tenant>/oauth2/v2.0/token`.
pub(super) async fn token(
    State(provider): State<Provider>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    provider
        .inner
        .counters
        .token
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    match exchange(&provider, &tenant, &headers, &Params::parse(&body)).await {
        Ok(tokens) => {
            let mut response = Json(tokens).into_response();
            no_store(response.headers_mut());
            response
        }
        Err(error) => error.into_response(),
    }
}

async fn exchange(
    provider: &Provider,
    tenant: &str,
    headers: &HeaderMap,
    params: &Params,
) -> Result<TokenResponse, TokenError> {
    if !is_valid_tenant(tenant) {
        return Err(TokenError::bad_request("invalid_request", "bad tenant"));
    }
    if params.repeated().is_some() {
        return Err(TokenError::bad_request(
            "invalid_request",
            "a parameter is given more than once",
        ));
    }
    let client_id = authenticate_client(provider, headers, params)?;
    let grant = match params.get("grant_type") {
        Some("authorization_code") => by_code(provider, tenant, &client_id, params)?,
        Some("refresh_token") => by_refresh(provider, tenant, &client_id, params)?,
        None => {
            return Err(TokenError::bad_request(
                "invalid_request",
                "grant_type is required",
            ))
        }
        Some(_) => {
            return Err(TokenError::bad_request(
                "unsupported_grant_type",
                "only authorization_code and refresh_token are supported",
            ))
        }
    };
    let refresh = params.get("grant_type") == Some("refresh_token");
    let mut answer = tokens(provider, grant).await?;
    if refresh && provider.current_refresh_fault() == Some(RefreshFault::NoIdToken) {
        answer.id_token = None;
    }
    Ok(answer)
}

/// The grant an authorization code stands for, once the request proves it.
fn by_code(
    provider: &Provider,
    tenant: &str,
    client_id: &str,
    params: &Params,
) -> Result<Grant, TokenError> {
    let Some(code) = params.get("code") else {
        return Err(TokenError::bad_request(
            "invalid_request",
            "code is required",
        ));
    };
    let grant = provider
        .codes()
        .redeem(code, Instant::now())
        .map_err(|e| TokenError::invalid_grant(e.description()))?;
    if grant.tenant != tenant {
        return Err(TokenError::invalid_grant(
            "code was issued for another tenant",
        ));
    }
    if grant.client_id != client_id {
        return Err(TokenError::invalid_grant(
            "code was issued to another client",
        ));
    }
    if params.get("redirect_uri") != Some(grant.redirect_uri.as_str()) {
        return Err(TokenError::invalid_grant(
            "redirect_uri differs from the authorization request",
        ));
    }
    let Some(verifier) = params.get("code_verifier") else {
        return Err(TokenError::invalid_grant("code_verifier is required"));
    };
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    if !constant_time_eq(challenge.as_bytes(), grant.code_challenge.as_bytes()) {
        return Err(TokenError::invalid_grant("PKCE verification failed"));
    }
    Ok(grant)
}

/// A refresh: the person as the directory has them now. Revoked: Entra's
/// `invalid_grant` (AADSTS50173); an outage: 503 `temporarily_unavailable`.
fn by_refresh(
    provider: &Provider,
    tenant: &str,
    client_id: &str,
    params: &Params,
) -> Result<Grant, TokenError> {
    provider
        .inner
        .counters
        .refresh
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let fault = provider.current_refresh_fault();
    if fault == Some(RefreshFault::Outage) {
        return Err(TokenError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            error: "temporarily_unavailable",
            description: "AADSTS90033: A transient error has occurred. Please try again.",
        });
    }
    let Some(token) = params.get("refresh_token") else {
        return Err(TokenError::bad_request(
            "invalid_request",
            "refresh_token is required",
        ));
    };
    let revoked = "AADSTS50173: The provided grant has expired due to it being revoked.";
    let refreshed = provider
        .refreshed(token)
        .ok_or(TokenError::invalid_grant(revoked))?;
    if refreshed.tenant != tenant || refreshed.client_id != client_id {
        return Err(TokenError::invalid_grant(
            "refresh_token was issued to another client or tenant",
        ));
    }
    let mut user = refreshed.user;
    if fault == Some(RefreshFault::OtherSub) {
        user.sub = format!("{}-someone-else", user.sub);
    }
    Ok(Grant {
        tenant: refreshed.tenant,
        client_id: refreshed.client_id,
        redirect_uri: String::new(),
        nonce: String::new(),
        code_challenge: String::new(),
        user,
        fault: None,
        offline: true,
        expires_at: Instant::now(),
    })
}

/// The tokens of `grant`: an ID token, an access token for the small
/// Graph, and a refresh token when `offline_access` was asked for.
async fn tokens(provider: &Provider, grant: Grant) -> Result<TokenResponse, TokenError> {
    let key = if grant.fault == Some(Fault::UnknownKid) {
        let unpublished = provider.clone();
        tokio::task::spawn_blocking(move || unpublished.unpublished_key())
            .await
            .map_err(|_| server_error())?
    } else {
        provider.current_key()
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| server_error())?
        .as_secs();
    let id_token = id_token::mint(provider.base_url(), &grant, &key, now, &random_token(16))
        .map_err(|_| server_error())?;
    let access_token = random_token(32);
    provider.issued(
        &access_token,
        super::graph::GraphUser {
            groups: grant.user.groups.clone(),
            page: grant.user.graph_page,
            status: grant.user.graph_status,
        },
    );
    provider.signed_in(&grant.user.login_hint, &grant.user.sid, &grant.user.tid);
    let refresh_token = grant.offline.then(|| provider.issue_refresh(&grant));
    Ok(TokenResponse {
        token_type: "Bearer",
        scope: "openid profile email",
        expires_in: 3600,
        access_token,
        id_token: Some(id_token),
        refresh_token,
    })
}

fn server_error() -> TokenError {
    TokenError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        error: "server_error",
        description: "could not issue the token",
    }
}

/// Authenticates the client by exactly one of HTTP Basic or form
/// parameters; returns its id.
fn authenticate_client(
    provider: &Provider,
    headers: &HeaderMap,
    params: &Params,
) -> Result<String, TokenError> {
    let basic = match headers.get(AUTHORIZATION) {
        None => None,
        Some(value) => Some(basic_credentials(value).ok_or(TokenError::invalid_client(
            "malformed HTTP Basic client credentials",
        ))?),
    };
    let (client_id, secret) = match (basic, params.get("client_secret")) {
        (Some(_), Some(_)) => {
            return Err(TokenError::bad_request(
                "invalid_request",
                "use only one client authentication method",
            ))
        }
        (Some((id, secret)), None) => {
            if params.get("client_id").is_some_and(|body_id| body_id != id) {
                return Err(TokenError::invalid_client(
                    "client_id differs from the HTTP Basic credentials",
                ));
            }
            (id, secret)
        }
        (None, Some(secret)) => match params.get("client_id") {
            Some(id) => (id.to_owned(), secret.to_owned()),
            None => return Err(TokenError::invalid_client("client_id is required")),
        },
        (None, None) => {
            return Err(TokenError::invalid_client(
                "client authentication is required",
            ))
        }
    };
    let registered = provider
        .client(&client_id)
        .map(|client| client.client_secret);
    // Compare digests, so neither content nor length of the secret leaks
    // through timing; an unknown client costs the same work.
    let expected = Sha256::digest(registered.as_deref().unwrap_or_default().as_bytes());
    let presented = Sha256::digest(secret.as_bytes());
    let matches = constant_time_eq(expected.as_slice(), presented.as_slice());
    if registered.is_some() && matches {
        Ok(client_id)
    } else {
        Err(TokenError::invalid_client("client authentication failed"))
    }
}

/// `client_id` and `client_secret` from `Authorization: Basic …`, each
/// form-urlencoded as RFC 6749 §2.3.1 requires.
fn basic_credentials(value: &HeaderValue) -> Option<(String, String)> {
    let value = value.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((form_decode(id)?, form_decode(secret)?))
}

/// Decodes one application/x-www-form-urlencoded component.
fn form_decode(component: &str) -> Option<String> {
    if component.contains('&') {
        return None;
    }
    let pair = format!("v={component}");
    let mut pairs = url::form_urlencoded::parse(pair.as_bytes());
    Some(pairs.next()?.1.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(credentials: &str) -> HeaderValue {
        HeaderValue::from_str(&format!("Basic {}", STANDARD.encode(credentials))).unwrap()
    }

    #[test]
    fn basic_credentials_are_form_urldecoded() {
        assert_eq!(
            basic_credentials(&header("my%20app:s3cr%3At+%2B%25")),
            Some(("my app".into(), "s3cr:t +%".into()))
        );
    }

    #[test]
    fn malformed_basic_credentials_are_refused() {
        assert_eq!(basic_credentials(&header("no-colon")), None);
        assert_eq!(basic_credentials(&header("a:b&c")), None);
        let bearer = HeaderValue::from_static("Bearer abc");
        assert_eq!(basic_credentials(&bearer), None);
    }
}
