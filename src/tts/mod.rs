//! The Things Stack console sign-in: a client of the stack's API
//! (`client`), the step of a login that creates the person's stack user and
//! their console session (`bridge`), and whose stack session a browser's
//! `_session` cookie is (`owners`). `check` is `idgate tts check`.

pub mod bridge;
pub mod check;
pub mod client;
pub mod owners;

/// The stack's account session cookie.
pub const SESSION_COOKIE: &str = "_session";
/// The console's session cookie, scoped to its mount. (Its OAuth state
/// cookie, `_console_state`, is left alone: a browser may be in the middle
/// of the console's own sign-in round trip, which needs it.)
pub const CONSOLE_AUTH_COOKIE: &str = "_console_auth";

/// `Set-Cookie` values that hand the browser `session` and remove the
/// console's own session, so the console signs in again by itself.
pub fn hand_over(session: &str, console_mount: &str, secure: bool) -> Vec<String> {
    let secure = if secure { "; Secure" } else { "" };
    let mut cookies = vec![format!(
        "{SESSION_COOKIE}={session}; Path=/; HttpOnly; SameSite=Lax{secure}"
    )];
    cookies.push(clear_console(console_mount, secure));
    cookies
}

/// `Set-Cookie` values that remove the stack session and the console's
/// cookies from the browser.
pub fn clear_all(console_mount: &str, secure: bool) -> Vec<String> {
    let secure = if secure { "; Secure" } else { "" };
    let mut cookies = vec![format!(
        "{SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax{secure}"
    )];
    cookies.push(clear_console(console_mount, secure));
    cookies
}

fn clear_console(console_mount: &str, secure: &str) -> String {
    format!(
        "{CONSOLE_AUTH_COOKIE}=; Path={console_mount}; Max-Age=0; HttpOnly; SameSite=Lax{secure}"
    )
}
