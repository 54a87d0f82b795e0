//! How a registry wants credentials presented: `WWW-Authenticate`
//! challenges, bearer token exchange (GET, and OAuth2 POST for refresh
//! tokens) and a token cache keyed by scope set. Finding the user's
//! credentials is `crate::auth`'s.

use super::RegistryError;
use crate::auth::Credentials;
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// The registry accepts requests without credentials.
    None,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parse the first challenge of a `WWW-Authenticate` header value.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let params = parse_params(rest);
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => Some(Challenge::Bearer {
            realm: params.get("realm")?.clone(),
            service: params.get("service").cloned(),
            scope: params.get("scope").cloned(),
        }),
        _ => None,
    }
}

fn parse_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ',')).collect();
        if key.is_empty() {
            break;
        }
        if chars.next() != Some('=') {
            continue;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = std::iter::from_fn(|| chars.next_if(|c| *c != ',')).collect();
        }
        out.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    out
}

/// A token scope such as `repository:team/app:pull,push`.
pub fn repo_scope(repo: &str, push: bool) -> String {
    format!("repository:{repo}:{}", if push { "pull,push" } else { "pull" })
}

#[derive(Clone)]
struct CachedToken {
    value: String,
    expires: Instant,
}

/// Bearer tokens by scope set; refreshed when they expire.
#[derive(Default)]
pub struct TokenCache {
    tokens: HashMap<String, CachedToken>,
}

impl TokenCache {
    /// A still-valid token for exactly these scopes.
    pub fn get(&self, key: &str) -> Option<String> {
        self.tokens
            .get(key)
            .filter(|t| t.expires > Instant::now())
            .map(|t| t.value.clone())
    }
    /// Remember a token.
    pub fn put(&mut self, key: String, value: String, lifetime: Duration) {
        // Renew a little early so a token does not expire mid-request.
        let margin = Duration::from_secs(5).min(lifetime / 2);
        self.tokens.insert(
            key,
            CachedToken {
                value,
                expires: Instant::now() + lifetime - margin,
            },
        );
    }
    /// Forget the token for these scopes (after a 401).
    pub fn invalidate(&mut self, key: &str) {
        self.tokens.remove(key);
    }
}

/// The cache key of a scope set: sorted, space-separated.
pub fn scope_key(scopes: &BTreeSet<String>) -> String {
    scopes.iter().cloned().collect::<Vec<_>>().join(" ")
}

/// Largest token answer kopeo reads.
const MAX_TOKEN_BODY: usize = 1 << 20;

#[derive(serde::Deserialize)]
struct TokenReply {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// Exchange credentials for a bearer token at `realm`. Refresh tokens use the
/// OAuth2 POST flow; everything else the Docker GET flow (with basic auth
/// when there are credentials). Errors are reported, never turned into an
/// anonymous request.
pub async fn fetch_token(
    http: &reqwest::Client,
    op: &str,
    realm: &str,
    service: Option<&str>,
    scopes: &BTreeSet<String>,
    creds: &Credentials,
) -> Result<(String, Duration), RegistryError> {
    let err = |reason: String| RegistryError::Token {
        op: op.to_string(),
        realm: realm.to_string(),
        reason,
    };
    let url = reqwest::Url::parse(realm).map_err(|e| err(format!("invalid realm: {e}")))?;
    let request = match creds {
        Credentials::IdentityToken { token, .. } => {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "refresh_token")
                .append_pair("refresh_token", token)
                .append_pair("client_id", "kopeo");
            if let Some(s) = service {
                form.append_pair("service", s);
            }
            if !scopes.is_empty() {
                form.append_pair("scope", &scope_key(scopes));
            }
            http.post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(form.finish())
        }
        _ => {
            let mut url = url;
            {
                let mut q = url.query_pairs_mut();
                if let Some(s) = service {
                    q.append_pair("service", s);
                }
                for s in scopes {
                    q.append_pair("scope", s);
                }
                if let Some(u) = creds.username() {
                    q.append_pair("account", u);
                }
            }
            let r = http.get(url);
            match creds {
                Credentials::Basic { username, password } => r.basic_auth(username, Some(password)),
                _ => r,
            }
        }
    };
    let unavailable = |reason: String| RegistryError::TokenUnavailable {
        op: op.to_string(),
        realm: realm.to_string(),
        reason,
    };
    let resp = request.send().await.map_err(|e| {
        let transient = super::error::transient_http(&e);
        let reason = super::error::causes(&super::error::redact_error(e));
        if transient { unavailable(reason) } else { err(reason) }
    })?;
    let status = resp.status();
    // containers/image reads at most 1 MiB of a token answer (iolimits.MaxAuthTokenBodySize).
    let body = super::response::read_limited(op, resp, MAX_TOKEN_BODY)
        .await
        .map_err(|e| match e {
            RegistryError::Protocol { reason, .. } => err(reason),
            other => err(other.to_string()),
        })?;
    if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
        let (code, message) = super::response::error_body(&body);
        let said = match code {
            Some(c) => crate::skopeo_texts::registry_error(&c, &message),
            None => crate::skopeo_texts::unauthorized(None, ""),
        };
        tracing::debug!(
            realm,
            status = status.as_u16(),
            "the token server refused the credentials"
        );
        return Err(RegistryError::Unauthorized {
            op: op.to_string(),
            detail: crate::skopeo_texts::bad_credentials(&said),
        });
    }
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body);
        let reason = format!(
            "HTTP {}: {}",
            status.as_u16(),
            text.chars().take(200).collect::<String>()
        );
        let s = status.as_u16();
        return Err(if s >= 500 || s == 429 || s == 408 {
            unavailable(reason)
        } else {
            err(reason)
        });
    }
    token_from_reply(&body).map_err(err)
}

/// The token and its lifetime in a token server's answer.
pub(crate) fn token_from_reply(body: &[u8]) -> Result<(String, Duration), String> {
    let reply: TokenReply = serde_json::from_slice(body).map_err(|e| format!("bad token reply: {e}"))?;
    let token = reply
        .token
        .filter(|t| !t.is_empty())
        .or(reply.access_token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| "token reply has no token".to_string())?;
    // Docker's token spec: 60 seconds when the server does not say.
    let lifetime = Duration::from_secs(reply.expires_in.unwrap_or(60).max(10));
    Ok((token, lifetime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_and_basic_challenges() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate"), None);
        let c = parse_challenge(r#"bearer realm="https://x/\"q\"", error="insufficient_scope""#);
        assert!(matches!(c, Some(Challenge::Bearer { realm, .. }) if realm == "https://x/\"q\""));
    }

    #[test]
    fn token_cache_expires() {
        let mut c = TokenCache::default();
        c.put("k".into(), "t".into(), Duration::from_secs(60));
        assert_eq!(c.get("k").as_deref(), Some("t"));
        c.put("z".into(), "t".into(), Duration::from_secs(0));
        assert_eq!(c.get("z"), None);
        c.invalidate("k");
        assert_eq!(c.get("k"), None);
    }
}
