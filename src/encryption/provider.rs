//! ocicrypt's key provider protocol: layer keys wrapped and unwrapped by a
//! separate program (a KMS or HSM client), named in the JSON file
//! `OCICRYPT_KEYPROVIDER_CONFIG` points at. A `cmd` provider gets one JSON
//! request on stdin and answers on stdout, with the field names and base64
//! of ocicrypt's Go structs; a `grpc` one gets the same JSON as the bytes
//! of `keyprovider.KeyProviderService/WrapKey` or `/UnWrapKey` (see
//! `grpc.rs`). Every failure names the provider; nothing of the request is
//! logged (it carries the layer key).

use super::EncryptionError;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// The environment variable naming the providers' configuration file.
pub const CONFIG_ENV: &str = "OCICRYPT_KEYPROVIDER_CONFIG";
/// How long one provider call may take (`KOPEO_KEYPROVIDER_TIMEOUT`, e.g. `30s`).
pub const TIMEOUT_ENV: &str = "KOPEO_KEYPROVIDER_TIMEOUT";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The annotation a provider's wrapped keys go in.
pub fn annotation(name: &str) -> String {
    format!("org.opencontainers.image.enc.keys.provider.{name}")
}

/// A command to run.
#[derive(Debug, Clone, Deserialize)]
pub struct Command {
    pub path: String,
    #[serde(default)]
    pub args: Vec<String>,
}

/// TLS for a gRPC provider.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct GrpcTls {
    #[serde(rename = "root-ca-file", default)]
    pub root_ca_file: Option<PathBuf>,
    #[serde(rename = "cert-file", default)]
    pub cert_file: Option<PathBuf>,
    #[serde(rename = "key-file", default)]
    pub key_file: Option<PathBuf>,
    #[serde(rename = "server-name", default)]
    pub server_name: Option<String>,
    #[serde(rename = "insecure-skip-verify", default)]
    pub insecure_skip_verify: bool,
}

/// How a provider is reached.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Provider {
    #[serde(default)]
    pub cmd: Option<Command>,
    #[serde(default)]
    pub grpc: Option<String>,
    #[serde(rename = "grpc-tls", default)]
    pub grpc_tls: Option<GrpcTls>,
}

/// The configured providers, by name.
#[derive(Debug, Clone, Default)]
pub struct Providers {
    pub by_name: BTreeMap<String, Provider>,
    timeout: Option<Duration>,
}

#[derive(Deserialize)]
struct File {
    #[serde(rename = "key-providers", default)]
    key_providers: BTreeMap<String, Provider>,
}

impl Providers {
    /// The providers `OCICRYPT_KEYPROVIDER_CONFIG` names (none when unset
    /// or when the file does not exist, as in ocicrypt).
    pub fn from_env() -> Result<Providers, EncryptionError> {
        let timeout = match std::env::var(TIMEOUT_ENV) {
            Ok(s) => Some(
                crate::duration::parse_duration(&s).map_err(|e| EncryptionError::ProviderConfig {
                    path: TIMEOUT_ENV.into(),
                    why: e.to_string(),
                })?,
            ),
            Err(_) => None,
        };
        let Some(path) = std::env::var_os(CONFIG_ENV).filter(|p| !p.is_empty()) else {
            return Ok(Providers {
                timeout,
                ..Default::default()
            });
        };
        let mut p = Self::from_file(&PathBuf::from(path))?;
        p.timeout = timeout;
        Ok(p)
    }

    /// The providers of one configuration file.
    pub fn from_file(path: &std::path::Path) -> Result<Providers, EncryptionError> {
        let bad = |why: String| EncryptionError::ProviderConfig {
            path: path.display().to_string(),
            why,
        };
        let data = match std::fs::read(path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Providers::default()),
            Err(e) => return Err(bad(crate::skopeo_texts::io_error(&e))),
        };
        let file: File = serde_json::from_slice(&data).map_err(|e| bad(e.to_string()))?;
        Ok(Providers {
            by_name: file.key_providers,
            timeout: None,
        })
    }

    fn get(&self, name: &str) -> Result<&Provider, EncryptionError> {
        self.by_name
            .get(name)
            .ok_or_else(|| EncryptionError::ProviderNotConfigured(name.to_string()))
    }

    fn timeout(&self) -> Duration {
        self.timeout.unwrap_or(DEFAULT_TIMEOUT)
    }

    /// Wrap `optsdata` with provider `name`; `params` is the EncryptConfig's
    /// parameters (each provider's arguments under its name). The annotation bytes.
    pub async fn wrap(
        &self,
        name: &str,
        params: &BTreeMap<String, Vec<Vec<u8>>>,
        optsdata: &[u8],
    ) -> Result<Vec<u8>, EncryptionError> {
        let input = json!({
            "op": "keywrap",
            "keywrapparams": {
                "ec": {"Parameters": go_params(params), "DecryptConfig": {"Parameters": {}}},
                "optsdata": STANDARD.encode(optsdata),
            },
            "keyunwrapparams": {"dc": null, "annotation": null},
        });
        let out = self.call(name, "WrapKey", &input).await?;
        bytes_at(&out, "keywrapresults", "annotation").map_err(|why| failed(name, why))
    }

    /// Unwrap `annotation` with provider `name`; `params` is the
    /// DecryptConfig's parameters. `None` when the provider gave nothing.
    pub async fn unwrap(
        &self,
        name: &str,
        params: &BTreeMap<String, Vec<Vec<u8>>>,
        annotation: &[u8],
    ) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>, EncryptionError> {
        let input = json!({
            "op": "keyunwrap",
            "keywrapparams": {"ec": null, "optsdata": null},
            "keyunwrapparams": {
                "dc": {"Parameters": go_params(params)},
                "annotation": STANDARD.encode(annotation),
            },
        });
        let out = self.call(name, "UnWrapKey", &input).await?;
        let opts = bytes_at(&out, "keyunwrapresults", "optsdata").map_err(|why| failed(name, why))?;
        Ok((!opts.is_empty()).then(|| zeroize::Zeroizing::new(opts)))
    }

    async fn call(&self, name: &str, method: &str, input: &Value) -> Result<Value, EncryptionError> {
        let provider = self.get(name)?;
        let request = zeroize::Zeroizing::new(serde_json::to_vec(input).map_err(|e| failed(name, e.to_string()))?);
        let answer = tokio::time::timeout(self.timeout(), async {
            match (&provider.cmd, &provider.grpc) {
                (Some(cmd), _) => run(cmd, &request).await,
                (None, Some(addr)) => super::grpc::call(addr, provider.grpc_tls.as_ref(), method, &request).await,
                (None, None) => {
                    Err("Unsupported keyprovider invocation. Supported invocation methods are grpc and cmd".into())
                }
            }
        })
        .await
        .map_err(|_| {
            failed(
                name,
                format!("no answer within {}", crate::duration::format_duration(self.timeout())),
            )
        })?
        .map_err(|why| failed(name, why))?;
        let answer = zeroize::Zeroizing::new(answer);
        serde_json::from_slice(&answer)
            .map_err(|e| failed(name, format!("Error while unmarshalling the provider's output: {e}")))
    }
}

fn failed(name: &str, why: String) -> EncryptionError {
    EncryptionError::Provider {
        name: name.to_string(),
        why,
    }
}

/// `map[string][][]byte` as Go marshals it.
fn go_params(params: &BTreeMap<String, Vec<Vec<u8>>>) -> Value {
    let m: Map<String, Value> = params
        .iter()
        .map(|(k, vs)| (k.clone(), vs.iter().map(|v| Value::from(STANDARD.encode(v))).collect()))
        .collect();
    Value::Object(m)
}

/// What an answer (a provider's stdout) wraps or unwraps to, read as the
/// two calls read it (for fuzzing the reader).
pub fn parse_answer(answer: &[u8]) -> Result<(Vec<u8>, Vec<u8>), String> {
    let v: Value = serde_json::from_slice(answer).map_err(|e| e.to_string())?;
    Ok((
        bytes_at(&v, "keywrapresults", "annotation")?,
        bytes_at(&v, "keyunwrapresults", "optsdata")?,
    ))
}

/// A `[]byte` field of an answer: base64 as Go writes it, or an array of
/// numbers as some providers send; absent or null is empty.
fn bytes_at(v: &Value, outer: &str, field: &str) -> Result<Vec<u8>, String> {
    match v.get(outer).and_then(|o| o.get(field)) {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::String(s)) => STANDARD.decode(s).map_err(|_| format!("{outer}.{field} is not base64")),
        Some(Value::Array(a)) => a
            .iter()
            .map(|b| b.as_u64().and_then(|n| u8::try_from(n).ok()))
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(|| format!("{outer}.{field} is not an array of bytes")),
        Some(_) => Err(format!("{outer}.{field} is neither base64 nor bytes")),
    }
}

/// Run a command provider: the request on stdin, the answer from stdout
/// (ocicrypt's `Runner.Exec` and its error text).
async fn run(cmd: &Command, input: &[u8]) -> Result<Vec<u8>, String> {
    use tokio::io::AsyncWriteExt as _;
    let mut child = tokio::process::Command::new(&cmd.path)
        .args(&cmd.args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            format!(
                "Error while running command: {}: {}",
                cmd.path,
                crate::skopeo_texts::io_error(&e)
            )
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A provider that exits without reading is judged by its exit status.
        let _ = stdin.write_all(input).await;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| format!("Error while running command: {}: {e}", cmd.path))?;
    if !out.status.success() {
        let status = match out.status.code() {
            Some(c) => format!("exit status {c}"),
            None => "killed by a signal".to_string(),
        };
        return Err(format!(
            "Error while running command: {}. stderr: {}: {status}",
            cmd.path,
            String::from_utf8_lossy(&out.stderr).trim_end()
        ));
    }
    Ok(out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_as_base64_or_byte_arrays() {
        let v = json!({"keywrapresults": {"annotation": "AQI="}});
        assert_eq!(bytes_at(&v, "keywrapresults", "annotation").unwrap(), vec![1, 2]);
        let v = json!({"keywrapresults": {"annotation": [1, 2, 255]}});
        assert_eq!(bytes_at(&v, "keywrapresults", "annotation").unwrap(), vec![1, 2, 255]);
        let v = json!({"keywrapresults": {"annotation": [256]}});
        assert!(bytes_at(&v, "keywrapresults", "annotation").is_err());
        assert!(bytes_at(&json!({}), "keyunwrapresults", "optsdata").unwrap().is_empty());
    }

    #[test]
    fn parameters_as_go_marshals_them() {
        let p: BTreeMap<String, Vec<Vec<u8>>> = [("kms".to_string(), vec![b"Enabled".to_vec()])].into();
        assert_eq!(go_params(&p).to_string(), r#"{"kms":["RW5hYmxlZA=="]}"#);
    }
}
