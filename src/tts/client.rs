//! A small client of The Things Stack's HTTP API: the calls the console
//! sign-in makes, each with the stack's own answers (200 on create, zero
//! values left out, errors named in `details[].name`) turned into what they
//! mean to the gateway. The admin API key is sent on the API calls only,
//! never on the account app's, and never logged.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

/// Why a call to the stack did not give an answer the gateway can use.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StackError {
    #[error("The Things Stack is not reachable at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("The Things Stack did not answer within {0:?}")]
    TimedOut(Duration),
    #[error("The Things Stack refused idgate's API key ({name})")]
    KeyRefused { name: String },
    #[error("idgate's API key is not an administrator's (it belongs to {owner:?})")]
    KeyNotAdmin { owner: String },
    #[error("login tokens are disabled in The Things Stack (is.login-tokens.enabled is false)")]
    TokensDisabled,
    #[error("The Things Stack gave no login token for a user who is not an administrator: it does not take idgate's API key as an administrator's")]
    NoToken,
    #[error("The Things Stack answered {status} {name} to {call}: {message}")]
    Failed {
        call: &'static str,
        status: u16,
        name: String,
        message: String,
    },
}

/// The stack's error answer: `details[0].name` and the message.
#[derive(Debug, Clone, Default)]
struct ApiError {
    status: u16,
    name: String,
    message: String,
}

impl ApiError {
    fn read(status: u16, body: &[u8]) -> Self {
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let name = v["details"][0]["name"].as_str().unwrap_or_default();
        let message = v["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into());
        Self {
            status,
            name: name.to_string(),
            message,
        }
    }

    fn into_error(self, call: &'static str) -> StackError {
        match (self.status, self.name.as_str()) {
            (401, _) => StackError::KeyRefused { name: self.name },
            (_, "login_tokens_disabled") => StackError::TokensDisabled,
            _ => StackError::Failed {
                call,
                status: self.status,
                name: self.name,
                message: self.message,
            },
        }
    }
}

/// What the stack holds for a user ID.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct StackUser {
    pub name: String,
    pub primary_email_address: String,
    pub primary_email_address_validated_at: Option<String>,
    pub admin: bool,
    /// Absent (zero) means `STATE_REQUESTED`.
    pub state: Option<String>,
}

impl StackUser {
    pub fn approved(&self) -> bool {
        self.state.as_deref() == Some("STATE_APPROVED")
    }
}

/// A user the gateway asks the stack to create.
pub struct NewUser<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub email: &'a str,
    /// When the gateway vouches for the email: the validation time.
    pub validated_at: Option<&'a str>,
    pub password: &'a str,
}

/// How the stack answered a create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    Yes,
    /// 409 `already_exists`: the ID or the email is held (the stack does not
    /// say which).
    AlreadyExists,
    /// The stack will not have this ID (reserved, or invalid to it).
    IdRefused(String),
}

/// The calls the bridge makes.
#[derive(Clone)]
pub struct StackClient {
    http: reqwest::Client,
    base: String,
    key: String,
    account: String,
    timeout: Duration,
}

type Answer = (u16, Vec<u8>, Vec<String>);

impl StackClient {
    pub fn new(
        base: &url::Url,
        key: &str,
        account_mount: &str,
        timeout: Duration,
    ) -> reqwest::Result<Self> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .user_agent(concat!("idgate/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            base: base.as_str().trim_end_matches('/').to_string(),
            key: key.to_string(),
            account: account_mount.trim_end_matches('/').to_string(),
            timeout,
        })
    }

    /// Where the stack is, for messages.
    pub fn base(&self) -> &str {
        &self.base
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Answer, StackError> {
        let response = req.send().await.map_err(|e| self.transport(&e))?;
        let status = response.status().as_u16();
        let cookies = response
            .headers()
            .get_all(http::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect();
        let body = response.bytes().await.map_err(|e| self.transport(&e))?;
        Ok((status, body.to_vec(), cookies))
    }

    fn transport(&self, e: &reqwest::Error) -> StackError {
        if e.is_timeout() {
            return StackError::TimedOut(self.timeout);
        }
        let mut reason = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            reason = s.to_string();
            source = s.source();
        }
        StackError::Unreachable {
            url: self.base.clone(),
            reason,
        }
    }

    fn api(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}/api/v3{path}", self.base))
            .bearer_auth(&self.key)
    }

    /// The key's owner, checked to be an administrator of the stack.
    pub async fn check_key(&self) -> Result<String, StackError> {
        let (status, body, _) = self
            .send(self.api(reqwest::Method::GET, "/auth_info"))
            .await?;
        if status != 200 {
            return Err(ApiError::read(status, &body).into_error("auth_info"));
        }
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let owner = v["api_key"]["entity_ids"]["user_ids"]["user_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if v["is_admin"].as_bool() != Some(true) {
            return Err(StackError::KeyNotAdmin { owner });
        }
        Ok(owner)
    }

    /// The user with this ID, `None` when the stack has none (or deleted it).
    pub async fn user(&self, id: &str) -> Result<Option<StackUser>, StackError> {
        let path = format!(
            "/users/{id}?field_mask=name,primary_email_address,primary_email_address_validated_at,admin,state"
        );
        let (status, body, _) = self.send(self.api(reqwest::Method::GET, &path)).await?;
        match status {
            200 => serde_json::from_slice(&body)
                .map(Some)
                .map_err(|e| bad_json("get user", &e)),
            404 => Ok(None),
            _ => Err(ApiError::read(status, &body).into_error("get user")),
        }
    }

    /// Whether an organization holds this ID.
    pub async fn organization_exists(&self, id: &str) -> Result<bool, StackError> {
        let path = format!("/organizations/{id}");
        let (status, body, _) = self.send(self.api(reqwest::Method::GET, &path)).await?;
        match status {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(ApiError::read(status, &body).into_error("get organization")),
        }
    }

    /// Creates an approved, non-admin user.
    pub async fn create_user(&self, u: &NewUser<'_>) -> Result<Created, StackError> {
        let mut user = json!({
            "ids": { "user_id": u.id },
            "name": u.name,
            "primary_email_address": u.email,
            "password": u.password,
            "state": "STATE_APPROVED",
            "admin": false,
        });
        if let Some(at) = u.validated_at {
            user["primary_email_address_validated_at"] = json!(at);
        }
        let req = self
            .api(reqwest::Method::POST, "/users")
            .json(&json!({ "user": user }));
        let (status, body, _) = self.send(req).await?;
        let e = ApiError::read(status, &body);
        match (status, e.name.as_str()) {
            (200 | 201, _) => Ok(Created::Yes),
            (409, _) => Ok(Created::AlreadyExists),
            (400, "forbidden_id") => Ok(Created::IdRefused("reserved by the stack".into())),
            (400, "validation") if e.message.contains("user_id") => {
                Ok(Created::IdRefused(e.message))
            }
            _ => Err(e.into_error("create user")),
        }
    }

    /// Sets the fields named in `paths` from `user`.
    pub async fn update_user(
        &self,
        id: &str,
        user: Value,
        paths: &[&str],
    ) -> Result<(), StackError> {
        let mut user = user;
        user["ids"] = json!({ "user_id": id });
        let req = self
            .api(reqwest::Method::PUT, &format!("/users/{id}"))
            .json(&json!({ "user": user, "field_mask": { "paths": paths } }));
        let (status, body, _) = self.send(req).await?;
        if status == 200 {
            Ok(())
        } else {
            Err(ApiError::read(status, &body).into_error("update user"))
        }
    }

    /// A login token for `id`, sent to no one; `None` when the stack gives
    /// none back (it never does for an administrator). `id` not existing is
    /// a `Failed` with status 404.
    pub async fn mint_token(&self, id: &str) -> Result<Option<String>, StackError> {
        let path = format!("/users/{id}/login-tokens?skip_email=true");
        let (status, body, _) = self.send(self.api(reqwest::Method::POST, &path)).await?;
        if status != 200 {
            return Err(ApiError::read(status, &body).into_error("create login token"));
        }
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        Ok(v["token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .map(str::to_string))
    }

    /// Whether login tokens are enabled, asked without side effects: a
    /// token for `absent`, a user ID the stack does not have, answers "not
    /// found" when they are and "disabled" when not.
    pub async fn tokens_enabled(&self, absent: &str) -> Result<(), StackError> {
        match self.mint_token(absent).await {
            Err(StackError::Failed { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
            Ok(_) => Err(StackError::Failed {
                call: "create login token",
                status: 200,
                name: "unexpected_token".into(),
                message: format!("the stack minted a token for {absent:?}, which does not exist"),
            }),
        }
    }

    /// Trades a login token for an account session; returns the `_session`
    /// cookie's value.
    pub async fn token_login(&self, token: &str) -> Result<String, StackError> {
        let req = self
            .http
            .post(format!(
                "{}{}/api/auth/token-login",
                self.base, self.account
            ))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(json!({ "token": token }).to_string());
        let (status, body, cookies) = self.send(req).await?;
        if !(200..300).contains(&status) {
            return Err(ApiError::read(status, &body).into_error("token login"));
        }
        cookies
            .iter()
            .find_map(|c| session_value(c))
            .ok_or_else(|| StackError::Failed {
                call: "token login",
                status,
                name: "no_session_cookie".into(),
                message: "the answer set no _session cookie".into(),
            })
    }

    /// Whose account session the `_session` value `session` is; `None` when
    /// it is no (longer a) session.
    pub async fn session_owner(&self, session: &str) -> Result<Option<String>, StackError> {
        let req = self
            .http
            .get(format!("{}{}/api/me", self.base, self.account))
            .header(http::header::COOKIE, format!("_session={session}"));
        let (status, body, _) = self.send(req).await?;
        match status {
            200 => {
                let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                Ok(v["user"]["ids"]["user_id"].as_str().map(str::to_string))
            }
            401 | 403 | 404 => Ok(None),
            _ => Err(ApiError::read(status, &body).into_error("who is signed in")),
        }
    }

    /// Ends the account session `session`.
    pub async fn end_session(&self, session: &str) -> Result<(), StackError> {
        let req = self
            .http
            .post(format!("{}{}/api/auth/logout", self.base, self.account))
            .header(http::header::COOKIE, format!("_session={session}"));
        let (status, body, _) = self.send(req).await?;
        match status {
            200..=299 | 401 => Ok(()),
            _ => Err(ApiError::read(status, &body).into_error("sign out")),
        }
    }
}

/// The value of a `Set-Cookie: _session=…` line.
fn session_value(set_cookie: &str) -> Option<String> {
    let c = cookie::Cookie::parse(set_cookie).ok()?;
    (c.name() == "_session" && !c.value().is_empty()).then(|| c.value().to_string())
}

fn bad_json(call: &'static str, e: &serde_json::Error) -> StackError {
    StackError::Failed {
        call,
        status: 200,
        name: "unreadable_answer".into(),
        message: e.to_string(),
    }
}
