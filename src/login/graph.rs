//! The groups of a person in too many for the ID token (Entra's "groups
//! overage"), asked of Microsoft Graph with the sign-in's own access token:
//! `GET <graph_url>/v1.0/me/transitiveMemberOf`, transitive memberships,
//! every page (`@odata.nextLink`, followed only while it stays at
//! `graph_url`), group objects only (directory roles and administrative
//! units are listed too, and are not groups). The address a token names
//! in `_claim_sources` is never called. Needs the delegated permission
//! `User.Read`, the least one Graph documents for this call.

use serde::Deserialize;

use crate::oidc::{OidcCache, OidcError};

/// Pages followed at most (999 objects a page).
const MAX_PAGES: usize = 50;

const GROUP: &str = "#microsoft.graph.group";

/// One page of a Graph collection.
#[derive(Deserialize)]
struct Page {
    value: Vec<DirectoryObject>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
}

#[derive(Deserialize)]
struct DirectoryObject {
    #[serde(rename = "@odata.type")]
    kind: Option<String>,
    id: Option<String>,
}

/// Why the groups could not be had.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("the sign-in gave no access token to ask Microsoft Graph with")]
    NoAccessToken,
    #[error(transparent)]
    Call(#[from] OidcError),
    #[error("Microsoft Graph pointed to a next page outside {0}")]
    ForeignNextLink(String),
    #[error("Microsoft Graph listed more than {MAX_PAGES} pages of memberships")]
    TooManyPages,
}

/// The scope that lets the access token read the person's memberships.
pub fn scope(graph_url: &str) -> String {
    format!("{}/User.Read", graph_url.trim_end_matches('/'))
}

/// The IDs of every group the access token's person is a member of,
/// directly or through other groups.
pub async fn transitive_groups(
    cache: &OidcCache,
    graph_url: &str,
    access_token: Option<&str>,
) -> Result<Vec<String>, GraphError> {
    let token = access_token.ok_or(GraphError::NoAccessToken)?;
    let base = graph_url.trim_end_matches('/');
    let mut url = format!("{base}/v1.0/me/transitiveMemberOf?$select=id&$top=999");
    let mut groups = Vec::new();
    for _ in 0..MAX_PAGES {
        let page: Page = cache.get_with_bearer(&url, token).await?;
        groups.extend(
            page.value
                .into_iter()
                .filter_map(|o| (o.kind.as_deref() == Some(GROUP)).then_some(o.id).flatten()),
        );
        match page.next_link {
            None => return Ok(groups),
            Some(next) if next.starts_with(&format!("{base}/")) => url = next,
            Some(_) => return Err(GraphError::ForeignNextLink(base.to_string())),
        }
    }
    Err(GraphError::TooManyPages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scope_names_graph_at_its_configured_address() {
        assert_eq!(
            scope("https://graph.microsoft.com/"),
            "https://graph.microsoft.com/User.Read"
        );
    }
}
