//! Listing endpoints: a repository's tags and the registry's catalog,
//! following `Link: rel="next"` pages.

use super::RegistryError;
use super::client::RegistryClient;
use super::response::{error_from, read_limited};
use reqwest::header::LINK;
use std::collections::BTreeSet;

impl RegistryClient {
    /// All tags of `repo`, following `Link` pagination.
    pub async fn list_tags(&self, repo: &str) -> Result<Vec<String>, RegistryError> {
        self.list_tags_paged(repo, None).await
    }

    /// All tags of `repo`, asking for pages of `page_size` (the registry's
    /// default when `None`) and following `Link` headers.
    pub async fn list_tags_paged(&self, repo: &str, page_size: Option<usize>) -> Result<Vec<String>, RegistryError> {
        let op = format!("listing tags of {}/{repo}", self.registry);
        let first = match page_size {
            Some(n) => format!("v2/{repo}/tags/list?n={n}"),
            None => format!("v2/{repo}/tags/list"),
        };
        self.paged_list(&op, repo, Self::scopes(repo, false), first, "tags")
            .await
    }

    /// Repository names from the registry's `_catalog` (where it offers one).
    pub async fn list_repositories(&self) -> Result<Vec<String>, RegistryError> {
        let op = format!("listing repositories of {}", self.registry);
        let scopes = BTreeSet::from(["registry:catalog:*".to_string()]);
        self.paged_list(&op, "", scopes, "v2/_catalog?n=1000".into(), "repositories")
            .await
    }

    /// GET `first` and every `Link: rel="next"` page after it; collect the
    /// string array `field` of each JSON page.
    async fn paged_list(
        &self,
        op: &str,
        repo: &str,
        scopes: BTreeSet<String>,
        first: String,
        field: &str,
    ) -> Result<Vec<String>, RegistryError> {
        let mut items = vec![];
        let mut next = Some(first);
        let mut pages = 0;
        while let Some(path) = next.take() {
            pages += 1;
            if pages > 10_000 {
                return Err(RegistryError::Protocol {
                    op: op.to_string(),
                    reason: "too many pages".into(),
                });
            }
            let resp = self
                .send(op, repo, scopes.clone(), |c, base| Ok(c.get(self.url(base, &path)?)))
                .await?;
            if !resp.status().is_success() {
                return Err(error_from(op, resp).await);
            }
            next = resp
                .headers()
                .get(LINK)
                .and_then(|h| h.to_str().ok())
                .and_then(parse_next_link)
                .map(|l| l.trim_start_matches('/').to_string());
            let body = read_limited(op, resp, 64 << 20).await?;
            let page: serde_json::Value = serde_json::from_slice(&body).map_err(|e| RegistryError::Protocol {
                op: op.to_string(),
                reason: format!("bad list: {e}"),
            })?;
            match page.get(field) {
                Some(serde_json::Value::Array(a)) => {
                    items.extend(a.iter().filter_map(|v| v.as_str().map(str::to_string)));
                }
                None | Some(serde_json::Value::Null) => {}
                Some(_) => {
                    return Err(RegistryError::Protocol {
                        op: op.to_string(),
                        reason: format!("{field} is not a list"),
                    });
                }
            }
        }
        Ok(items)
    }
}

/// The `rel="next"` target of a `Link` header.
pub(crate) fn parse_next_link(h: &str) -> Option<String> {
    h.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"" || p.trim() == "rel=next")
            .then(|| target.trim().trim_start_matches('<').trim_end_matches('>').to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_link_next() {
        assert_eq!(
            parse_next_link(r#"</v2/a/tags/list?n=2&last=b>; rel="next""#).as_deref(),
            Some("/v2/a/tags/list?n=2&last=b")
        );
        assert_eq!(parse_next_link(r#"<x>; rel="prev""#), None);
    }
}
