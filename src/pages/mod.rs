//! Pages a person sees: rendered from templates that escape every value.

use askama::Template;

/// A readable error page, with an optional way back.
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    pub status: u16,
    pub title: &'a str,
    pub message: &'a str,
    pub back_href: Option<&'a str>,
    pub back_label: &'a str,
}

impl ErrorPage<'_> {
    /// The page as HTML; rendering a page with only string fields cannot fail,
    /// but a plain fallback keeps the gateway answering if it ever did.
    pub fn html(&self) -> String {
        self.render()
            .unwrap_or_else(|_| format!("HTTP {}: {}", self.status, self.title))
    }
}

/// One provider's button on the login page.
pub struct LoginButton {
    pub name: String,
    pub href: String,
}

/// The login page: a **Login to &lt;name&gt;** link per provider; works
/// without JavaScript.
#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub buttons: Vec<LoginButton>,
}

impl LoginPage {
    pub fn html(&self) -> String {
        self.render()
            .unwrap_or_else(|_| "Sign in: the page could not be rendered".to_string())
    }
}

/// A page that tells a person something and offers one way on.
#[derive(Template)]
#[template(path = "notice.html")]
pub struct NoticePage<'a> {
    pub title: &'a str,
    pub message: &'a str,
    pub href: &'a str,
    pub label: &'a str,
}

impl NoticePage<'_> {
    pub fn html(&self) -> String {
        self.render().unwrap_or_else(|_| self.title.to_string())
    }
}
