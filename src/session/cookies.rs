//! Cookie codecs: the session cookie (an ID signed with HMAC, so a forged
//! value is refused without a lookup) and the in-flight login cookie
//! (encrypted and authenticated, bound to the browser that started the
//! login, so any replica can finish it).

use cookie::time::Duration as CookieDuration;
use cookie::{Cookie, CookieJar, Key, SameSite};
use http::HeaderValue;
use serde::{Deserialize, Serialize};

/// Cookie names and attributes, which depend on whether browsers reach the
/// gateway over https.
#[derive(Clone)]
pub struct CookieCodec {
    key: Key,
    https: bool,
}

const SESSION: &str = "idgate_session";
const SESSION_HTTPS: &str = "__Host-idgate_session";
const LOGIN_PREFIX: &str = "idgate_login_";
const LOGIN_PREFIX_HTTPS: &str = "__Host-idgate_login_";
/// How much of the state names the login cookie (tabs don't collide).
const STATE_PREFIX_LEN: usize = 16;

/// An authorization-code flow in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingLogin {
    pub provider: String,
    pub state: String,
    pub nonce: String,
    pub verifier: String,
    pub rd: String,
    /// Unix seconds after which the login is refused as expired.
    pub expires: i64,
}

impl CookieCodec {
    /// `master` must be 64 bytes of secret randomness.
    pub fn new(master: &[u8], https: bool) -> Self {
        Self {
            key: Key::from(master),
            https,
        }
    }

    pub fn session_name(&self) -> &'static str {
        if self.https {
            SESSION_HTTPS
        } else {
            SESSION
        }
    }

    /// `Set-Cookie` for a new session ID.
    pub fn session_cookie(&self, id: &str, max_age_secs: i64) -> String {
        let mut jar = CookieJar::new();
        let c = Cookie::build((self.session_name(), id.to_string()))
            .http_only(true)
            .same_site(SameSite::Lax)
            .path("/")
            .secure(self.https)
            .max_age(CookieDuration::seconds(max_age_secs));
        jar.signed_mut(&self.key).add(c);
        jar.get(self.session_name())
            .expect("just added")
            .encoded()
            .to_string()
    }

    /// `Set-Cookie` that removes the session cookie.
    pub fn clear_session(&self) -> String {
        removal(self.session_name(), self.https, SameSite::Lax)
    }

    /// The session ID of a request, when its cookie carries a valid MAC.
    pub fn session_id<'a>(
        &self,
        cookie_headers: impl Iterator<Item = &'a HeaderValue>,
    ) -> Option<String> {
        let raw = find(cookie_headers, self.session_name())?;
        let jar = CookieJar::new();
        let verified = jar
            .signed(&self.key)
            .verify(Cookie::new(self.session_name(), raw))?;
        Some(verified.value().to_string())
    }

    fn login_name(&self, state: &str) -> String {
        let prefix = if self.https {
            LOGIN_PREFIX_HTTPS
        } else {
            LOGIN_PREFIX
        };
        let short: String = state.chars().take(STATE_PREFIX_LEN).collect();
        format!("{prefix}{short}")
    }

    /// `Set-Cookie` carrying a pending login. A `form_post` callback is a
    /// cross-site POST: on https the cookie is `SameSite=None; Secure` so it
    /// comes back; on plain http no SameSite is set (browsers then apply
    /// their default, which still sends it on a top-level POST shortly after).
    pub fn login_cookie(&self, login: &PendingLogin, max_age_secs: i64) -> String {
        let name = self.login_name(&login.state);
        let value = serde_json::to_string(login).expect("pending login serialises");
        let mut c = Cookie::build((name.clone(), value))
            .http_only(true)
            .path("/")
            .secure(self.https)
            .max_age(CookieDuration::seconds(max_age_secs));
        if self.https {
            c = c.same_site(SameSite::None);
        }
        let mut jar = CookieJar::new();
        jar.private_mut(&self.key).add(c);
        jar.get(&name).expect("just added").encoded().to_string()
    }

    /// The pending login for `state`, if this browser holds one that decrypts.
    pub fn pending_login<'a>(
        &self,
        cookie_headers: impl Iterator<Item = &'a HeaderValue>,
        state: &str,
    ) -> Option<PendingLogin> {
        let name = self.login_name(state);
        let raw = find(cookie_headers, &name)?;
        let jar = CookieJar::new();
        let opened = jar.private(&self.key).decrypt(Cookie::new(name, raw))?;
        serde_json::from_str(opened.value()).ok()
    }

    /// `Set-Cookie` that removes the login cookie for `state`.
    pub fn clear_login(&self, state: &str) -> String {
        self.clear_login_named(&self.login_name(state))
    }

    fn clear_login_named(&self, name: &str) -> String {
        let same_site = if self.https {
            SameSite::None
        } else {
            SameSite::Lax
        };
        removal(name, self.https, same_site)
    }

    /// `Set-Cookie` values removing every pending-login cookie a request
    /// carries (abandoned logins must not pile up until requests get 431).
    pub fn clear_all_logins<'a>(
        &self,
        cookie_headers: impl Iterator<Item = &'a HeaderValue>,
    ) -> Vec<String> {
        self.login_names(cookie_headers)
            .map(|name| self.clear_login_named(name))
            .collect()
    }

    /// Whether a request's browser holds an unfinished login.
    pub fn holds_login<'a>(&self, cookie_headers: impl Iterator<Item = &'a HeaderValue>) -> bool {
        self.login_names(cookie_headers).next().is_some()
    }

    fn login_names<'a>(
        &self,
        cookie_headers: impl Iterator<Item = &'a HeaderValue>,
    ) -> impl Iterator<Item = &'a str> {
        let prefix = if self.https {
            LOGIN_PREFIX_HTTPS
        } else {
            LOGIN_PREFIX
        };
        cookie_headers
            .filter_map(|h| h.to_str().ok())
            .flat_map(|h| h.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .map(|(name, _)| name)
            .filter(move |name| name.starts_with(prefix))
    }
}

fn removal(name: &str, https: bool, same_site: SameSite) -> String {
    Cookie::build((name.to_string(), ""))
        .http_only(true)
        .path("/")
        .secure(https)
        .same_site(same_site)
        .max_age(CookieDuration::ZERO)
        .build()
        .to_string()
}

/// The raw value of cookie `name` in the request's `Cookie` headers.
fn find<'a>(headers: impl Iterator<Item = &'a HeaderValue>, name: &str) -> Option<String> {
    headers
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec(https: bool) -> CookieCodec {
        CookieCodec::new(&[7u8; 64], https)
    }

    fn header(set_cookie: &str) -> HeaderValue {
        HeaderValue::from_str(set_cookie.split(';').next().unwrap()).unwrap()
    }

    #[test]
    fn session_cookie_round_trips_and_refuses_forgeries() {
        let c = codec(false);
        let set = c.session_cookie("abc123", 3600);
        assert!(set.starts_with("idgate_session="));
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Lax") && set.contains("Path=/"));
        assert!(!set.contains("Secure"));
        let h = header(&set);
        assert_eq!(c.session_id([&h].into_iter()).as_deref(), Some("abc123"));

        let forged = HeaderValue::from_static("idgate_session=abc123");
        assert_eq!(c.session_id([&forged].into_iter()), None);
        let truncated = HeaderValue::from_str(&h.to_str().unwrap()[..30]).unwrap();
        assert_eq!(c.session_id([&truncated].into_iter()), None);
        let other_key = CookieCodec::new(&[8u8; 64], false);
        assert_eq!(other_key.session_id([&h].into_iter()), None);
    }

    #[test]
    fn https_cookies_use_the_host_prefix() {
        let c = codec(true);
        let set = c.session_cookie("id", 60);
        assert!(set.starts_with("__Host-idgate_session="), "{set}");
        assert!(set.contains("Secure"));
        let login = PendingLogin {
            provider: "p".into(),
            state: "s".repeat(43),
            nonce: "n".into(),
            verifier: "v".into(),
            rd: "/".into(),
            expires: 0,
        };
        let set = c.login_cookie(&login, 600);
        assert!(set.starts_with("__Host-idgate_login_"), "{set}");
        assert!(
            set.contains("SameSite=None") && set.contains("Secure"),
            "{set}"
        );
    }

    #[test]
    fn login_cookie_is_encrypted_and_bound_to_its_state() {
        let c = codec(false);
        let login = PendingLogin {
            provider: "entra".into(),
            state: "state-0123456789abcdef-xyz".into(),
            nonce: "nonce-secret".into(),
            verifier: "verifier-secret".into(),
            rd: "/console".into(),
            expires: 99,
        };
        let set = c.login_cookie(&login, 600);
        assert!(
            !set.contains("verifier-secret") && !set.contains("nonce-secret"),
            "{set}"
        );
        let h = header(&set);
        assert_eq!(
            c.pending_login([&h].into_iter(), &login.state),
            Some(login.clone())
        );
        assert_eq!(
            c.pending_login([&h].into_iter(), "another-state-entirely"),
            None
        );
        let other_key = CookieCodec::new(&[9u8; 64], false);
        assert_eq!(
            other_key.pending_login([&h].into_iter(), &login.state),
            None
        );
    }
}
