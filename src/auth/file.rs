//! auth.json and Docker config files: locations, key matching, editing.

use super::{AuthError, Credentials, helper};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};

/// The files searched for credentials, in containers-auth.json(5) order.
/// An explicit file (`--authfile`, `REGISTRY_AUTH_FILE`) is the only one used.
pub fn lookup_paths(explicit: Option<&Path>) -> Vec<PathBuf> {
    if let Some(p) = explicit {
        return vec![p.to_path_buf()];
    }
    if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|p| !p.is_empty()) {
        return vec![PathBuf::from(p)];
    }
    let mut out = vec![default_login_path()];
    if let Some(home) = std::env::var_os("HOME").map(PathBuf::from) {
        let config = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join(".config"));
        out.push(config.join("containers/auth.json"));
        let docker_config = std::env::var_os("DOCKER_CONFIG")
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join(".docker"));
        out.push(docker_config.join("config.json"));
        out.push(home.join(".dockercfg"));
    }
    out
}

/// Where `login` writes by default: `$XDG_RUNTIME_DIR/containers/auth.json`,
/// or `/run/containers/$UID/auth.json` when that variable is unset.
pub fn default_login_path() -> PathBuf {
    if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|p| !p.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("containers/auth.json"),
        None => {
            use std::os::unix::fs::MetadataExt as _;
            let uid = std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(0);
            PathBuf::from(format!("/run/containers/{uid}/auth.json"))
        }
    }
}

/// One auth file, loaded as JSON so that unknown keys survive an edit.
#[derive(Debug, Clone)]
pub struct AuthFile {
    path: PathBuf,
    root: Map<String, Value>,
    legacy: bool,
}

/// The key an auth.json entry is stored under for a registry, as
/// containers/image and docker read it: the scheme, a trailing `/` and a
/// `/v1` or `/v2` API suffix are dropped, and Docker Hub's names
/// (`index.docker.io`, `registry-1.docker.io`) become `docker.io`.
pub fn normalize_key(k: &str) -> String {
    let k = k
        .strip_prefix("https://")
        .or_else(|| k.strip_prefix("http://"))
        .unwrap_or(k);
    let k = k.strip_suffix('/').unwrap_or(k);
    let k = k.strip_suffix("/v1").or_else(|| k.strip_suffix("/v2")).unwrap_or(k);
    let (host, rest) = k.split_once('/').map_or((k, None), |(h, r)| (h, Some(r)));
    let host = match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io",
        h => h,
    };
    match rest {
        Some(r) => format!("{host}/{r}"),
        None => host.to_string(),
    }
}

impl AuthFile {
    /// Load `path`; `None` when it does not exist.
    pub fn load(path: &Path) -> Result<Option<AuthFile>, AuthError> {
        let data = match std::fs::read(path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(AuthError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        if data.iter().all(u8::is_ascii_whitespace) {
            return Ok(Some(AuthFile::empty(path)));
        }
        let value: Value = serde_json::from_slice(&data).map_err(|e| AuthError::Parse {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let Value::Object(root) = value else {
            return Err(AuthError::Parse {
                path: path.to_path_buf(),
                reason: "not a JSON object".into(),
            });
        };
        // ~/.dockercfg keeps entries at the top level, without "auths".
        let legacy = path.file_name().is_some_and(|n| n == ".dockercfg");
        Ok(Some(AuthFile {
            path: path.to_path_buf(),
            root,
            legacy,
        }))
    }

    /// An auth.json document held in memory; `name` stands for its path in messages.
    pub fn from_document(name: &str, doc: Value) -> AuthFile {
        let mut f = AuthFile::empty(Path::new(name));
        f.replace_all(doc);
        f
    }

    /// A new, empty file at `path` (not yet written).
    pub fn empty(path: &Path) -> AuthFile {
        AuthFile {
            path: path.to_path_buf(),
            root: Map::new(),
            legacy: false,
        }
    }

    fn auths(&self) -> Option<&Map<String, Value>> {
        if self.legacy {
            Some(&self.root)
        } else {
            self.root.get("auths").and_then(Value::as_object)
        }
    }

    /// Credentials for `registry`/`repo`: `registry/ns/repo`, then each
    /// shorter namespace, then `registry`; a credential helper for the
    /// registry takes precedence over stored entries, as in Docker.
    pub fn find(&self, registry: &str, repo: &str) -> Result<Option<Credentials>, AuthError> {
        let helper = self
            .root
            .get("credHelpers")
            .and_then(|h| h.get(registry))
            .or_else(|| self.root.get("credsStore"))
            .and_then(Value::as_str);
        if let Some(h) = helper {
            return helper::get(h, registry);
        }
        let Some(auths) = self.auths() else {
            return Ok(None);
        };
        let mut candidates = vec![];
        let mut key = format!("{registry}/{repo}");
        loop {
            candidates.push(key.clone());
            match key.rfind('/') {
                Some(i) => key.truncate(i),
                None => break,
            }
        }
        for want in candidates {
            let entry = auths
                .get(&want)
                .or_else(|| auths.iter().find(|(k, _)| normalize_key(k) == want).map(|(_, v)| v));
            if let Some(e) = entry {
                return self.decode(e).map(Some);
            }
        }
        Ok(None)
    }

    fn decode(&self, entry: &Value) -> Result<Credentials, AuthError> {
        let bad = |reason: &str| AuthError::Parse {
            path: self.path.clone(),
            reason: reason.to_string(),
        };
        let auth = entry.get("auth").and_then(Value::as_str).unwrap_or("");
        let (username, password) = if auth.is_empty() {
            (String::new(), String::new())
        } else {
            let raw = B64
                .decode(auth.trim())
                .map_err(|_| bad("an \"auth\" value is not valid base64"))?;
            let s = String::from_utf8(raw).map_err(|_| bad("an \"auth\" value is not UTF-8"))?;
            let (u, p) = s
                .split_once(':')
                .ok_or_else(|| bad("an \"auth\" value is not user:password"))?;
            (u.to_string(), p.to_string())
        };
        if let Some(t) = entry
            .get("registrytoken")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            return Ok(Credentials::Bearer(t.to_string()));
        }
        if let Some(t) = entry
            .get("identitytoken")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            return Ok(Credentials::IdentityToken {
                username,
                token: t.to_string(),
            });
        }
        if username.is_empty() && password.is_empty() {
            return Ok(Credentials::Anonymous);
        }
        Ok(Credentials::Basic { username, password })
    }

    /// Store `username:password` under `key` (a registry or registry/namespace).
    pub fn set(&mut self, key: &str, username: &str, password: &str) {
        let auths = self.root.entry("auths").or_insert_with(|| Value::Object(Map::new()));
        if !auths.is_object() {
            *auths = Value::Object(Map::new());
        }
        if let Value::Object(m) = auths {
            m.insert(
                key.to_string(),
                json!({ "auth": B64.encode(format!("{username}:{password}")) }),
            );
        }
    }

    /// True when an entry is stored under exactly `key`.
    pub fn find_exact(&self, key: &str) -> bool {
        self.auths().is_some_and(|a| a.contains_key(key))
    }

    /// Remove the entry stored under `key`; false when there was none.
    pub fn remove(&mut self, key: &str) -> bool {
        match self.root.get_mut("auths").and_then(Value::as_object_mut) {
            Some(m) => m.remove(key).is_some(),
            None => false,
        }
    }

    /// Replace the whole document (a rendered auth.json).
    pub fn replace_all(&mut self, doc: Value) {
        if let Value::Object(m) = doc {
            self.root = m;
        }
    }

    /// Remove every stored credential.
    pub fn clear(&mut self) {
        self.root.insert("auths".into(), Value::Object(Map::new()));
    }

    /// Write atomically with mode 0600, creating the directory (0700). The
    /// temporary file has an unpredictable name and is created exclusively,
    /// so a symlink planted beside auth.json is never written through.
    pub fn save(&self) -> Result<(), AuthError> {
        use std::io::Write as _;
        use std::os::unix::fs::DirBuilderExt as _;
        let err = |source| AuthError::Write {
            path: self.path.clone(),
            source,
        };
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(err)?;
        let body =
            serde_json::to_vec_pretty(&Value::Object(self.root.clone())).map_err(|e| err(std::io::Error::other(e)))?;
        let (mut f, tmp) = crate::temp::create_beside(&self.path, 0o600).map_err(err)?;
        let written = f
            .write_all(&body)
            .and_then(|_| f.sync_all())
            .and_then(|_| std::fs::rename(&tmp, &self.path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(err(e));
        }
        crate::temp::sync_dir(dir).map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(v: Value) -> AuthFile {
        let Value::Object(root) = v else { panic!() };
        AuthFile {
            path: "/x".into(),
            root,
            legacy: false,
        }
    }
    fn basic(u: &str, p: &str) -> Value {
        json!({ "auth": B64.encode(format!("{u}:{p}")) })
    }

    #[test]
    fn most_specific_key_wins() {
        let f = file(json!({"auths": {
            "reg.example": basic("host", "1"),
            "reg.example/team": basic("team", "2"),
            "reg.example/team/app": basic("app", "3"),
        }}));
        let user = |repo: &str| {
            f.find("reg.example", repo)
                .unwrap()
                .unwrap()
                .username()
                .unwrap()
                .to_string()
        };
        assert_eq!(user("team/app"), "app");
        assert_eq!(user("team/other"), "team");
        assert_eq!(user("else/x"), "host");
        assert!(f.find("other.example", "a").unwrap().is_none());
    }

    #[test]
    fn legacy_docker_keys_and_identity_tokens() {
        let f = file(json!({"auths": {
            "https://index.docker.io/v1/": basic("hub", "pw"),
            "https://quay.example/v2/": { "auth": B64.encode("u:"), "identitytoken": "refresh" },
        }}));
        assert_eq!(
            f.find("docker.io", "library/alpine").unwrap().unwrap().username(),
            Some("hub")
        );
        assert_eq!(
            f.find("quay.example", "a/b").unwrap().unwrap(),
            Credentials::IdentityToken {
                username: "u".into(),
                token: "refresh".into()
            }
        );
    }

    #[test]
    fn bad_base64_is_an_error_naming_the_file() {
        let f = file(json!({"auths": {"r": {"auth": "%%%"}}}));
        let e = f.find("r", "a").unwrap_err().to_string();
        assert!(e.contains("/x") && e.contains("base64"), "{e}");
    }

    #[test]
    fn save_is_mode_0600_and_keeps_other_keys() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/auth.json");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, r#"{"auths":{},"credHelpers":{}}"#).unwrap();
        let mut f = AuthFile::load(&path).unwrap().unwrap();
        f.set("reg.example", "u", "p");
        f.save().unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let back = AuthFile::load(&path).unwrap().unwrap();
        assert!(back.root.contains_key("credHelpers"));
        assert_eq!(back.find("reg.example", "a").unwrap().unwrap().username(), Some("u"));
    }
}
