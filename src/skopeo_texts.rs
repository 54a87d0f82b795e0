//! Texts kept identical to skopeo's on purpose: scripts grep for them.
//! Every message here is produced by the code that cites it, and each has a
//! test (unit tests below; the CLI ones in `tests/it/parity.rs`).
//!
//! | text | produced by | as in skopeo |
//! |---|---|---|
//! | `CODE: message` for a registry's error body, e.g. `unauthorized: authentication required`, `manifest unknown: manifest unknown` | [`registry_error`] (registry client) | distribution's `errcode.Error` (Debian's 1.9.3 prints it so; current upstream drops a code whose message is its default text, printing `authentication required` — the longer form contains the shorter, so greps for either match) |
//! | `unable to retrieve auth token: invalid username/password: …` | token exchange | `docker.ErrUnauthorizedForCredentials` |
//! | `no image found in manifest list for architecture "A", variant "V", OS "O"` (`image index` for OCI) | [`no_matching_instance`] (manifest) | `manifest.ChooseInstance` |
//! | `Error parsing manifest for image: choosing image instance: …` | `inspect` | `skopeo inspect` |
//! | `choosing an image from manifest list IMAGE: …` | `copy` | `copy.Image` |
//! | `docker-archive doesn't support modifying existing images` | docker-archive destination | `archive.NewWriter` |
//! | `tls: failed to verify certificate: x509: certificate signed by unknown authority` (and `… has expired or is not yet valid`, `… is valid for N, not H`, `cannot validate certificate for IP because it doesn't contain any IP SANs`) | registry TLS errors | Go's `crypto/tls`, `crypto/x509` |
//! | `Error creating a tagged reference from registry tag list: invalid tag format` | sync planning | `skopeo sync` |
//! | `'--tls-verify' is deprecated, instead use: --src-tls-verify, --dest-tls-verify` | `copy`, `sync` | skopeo's deprecated flag |
//! | `Login Succeeded!`, `Removed login credentials for HOST` | `login`, `logout` | containers/common `auth` |
//! | exit code 2 for an image or repository that does not exist | every command | `isNotFoundImageError` |
//! | `Unable to delete HOST/REPO:TAG. Image may not exist or is not stored with a v2 Schema in a v2 registry` (exit 1) | `delete` | containers/image `docker.deleteImage` |
//! | `Invalid source index @N, only M manifest items available`, `Tag "NAME:TAG" not found`, `Unexpected tar manifest.json: expected 1 item, got N` (exit 1) | docker-archive source | containers/image `tarfile.Reader.ChooseManifestItem` |
//! | `No tag or digest allowed in reference` | `list-tags` | `skopeo list-tags` |
//! | `not logged into HOST` | `logout` | containers/common `auth.Logout` |
//! | `Cannot connect to the Docker daemon at HOST. Is the docker daemon running?` | docker-daemon source and destination | docker's client (`ErrorConnectionFailed`) |

/// A registry's `{"errors":[{"code","message"}]}` entry as distribution's
/// errcode formats it: the code lowercased with `_` as spaces, a colon, the
/// message (the code's own text when the registry gave none).
pub fn registry_error(code: &str, message: &str) -> String {
    let code_text = code.to_lowercase().replace('_', " ");
    let message = if message.is_empty() {
        default_message(code).unwrap_or("")
    } else {
        message
    };
    if message.is_empty() {
        code_text
    } else {
        format!("{code_text}: {message}")
    }
}

/// distribution's default message of an error code.
fn default_message(code: &str) -> Option<&'static str> {
    Some(match code {
        "UNAUTHORIZED" => "authentication required",
        "DENIED" => "requested access to the resource is denied",
        "UNSUPPORTED" => "The operation is unsupported.",
        "TOOMANYREQUESTS" => "too many requests",
        "MANIFEST_UNKNOWN" => "manifest unknown",
        "NAME_UNKNOWN" => "repository name not known to registry",
        "BLOB_UNKNOWN" => "blob unknown to registry",
        _ => return None,
    })
}

/// What a 401 answer says, with or without an errcode body.
pub fn unauthorized(code: Option<&str>, message: &str) -> String {
    registry_error(code.unwrap_or("UNAUTHORIZED"), message)
}

/// A token server refusing the credentials.
pub fn bad_credentials(detail: &str) -> String {
    format!("unable to retrieve auth token: invalid username/password: {detail}")
}

/// No instance of a list matches the wanted platform.
pub fn no_matching_instance(oci_index: bool, arch: &str, variant: &str, os: &str) -> String {
    let list = if oci_index { "image index" } else { "manifest list" };
    format!("no image found in {list} for architecture {arch:?}, variant {variant:?}, OS {os:?}")
}

/// `inspect`'s prefix for an image whose manifest cannot be used.
pub const INSPECT_PARSING_MANIFEST: &str = "Error parsing manifest for image";
/// The step that chooses a list's instance.
pub const CHOOSING_INSTANCE: &str = "choosing image instance";

/// `copy`'s words when no instance of `image`'s list can be chosen.
pub fn choosing_from_list(image: &str) -> String {
    format!("choosing an image from manifest list {image}")
}

/// docker-archive destinations refuse an existing non-empty file.
pub const DOCKER_ARCHIVE_EXISTS: &str = "docker-archive doesn't support modifying existing images";

/// Sync skips a tag its registry listed that is not a valid tag.
pub const INVALID_LISTED_TAG: &str = "Error creating a tagged reference from registry tag list";

/// The warning for the deprecated `--tls-verify` of `copy` and `sync`.
pub const DEPRECATED_TLS_VERIFY: &str =
    "'--tls-verify' is deprecated, instead use: --src-tls-verify, --dest-tls-verify";

/// An I/O error in Go's words (`os.PathError`'s tail), for messages that
/// quote Go's `open PATH: …`.
pub fn io_error(e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        NotFound => "no such file or directory".into(),
        PermissionDenied => "permission denied".into(),
        IsADirectory => "is a directory".into(),
        _ => {
            let s = e.to_string();
            s.split(" (os error").next().unwrap_or(&s).to_lowercase()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_errors_read_as_errcode_formats_them() {
        assert_eq!(
            registry_error("UNAUTHORIZED", "authentication required"),
            "unauthorized: authentication required"
        );
        assert_eq!(unauthorized(None, ""), "unauthorized: authentication required");
        assert_eq!(
            registry_error("MANIFEST_UNKNOWN", "manifest unknown"),
            "manifest unknown: manifest unknown"
        );
        assert_eq!(
            registry_error("NAME_UNKNOWN", ""),
            "name unknown: repository name not known to registry"
        );
        assert_eq!(
            bad_credentials("unauthorized: authentication required"),
            "unable to retrieve auth token: invalid username/password: unauthorized: authentication required"
        );
    }

    #[test]
    fn platform_texts_quote_their_values() {
        assert_eq!(
            no_matching_instance(false, "amd64", "", "linux"),
            r#"no image found in manifest list for architecture "amd64", variant "", OS "linux""#
        );
        assert_eq!(
            no_matching_instance(true, "arm64", "v8", "linux"),
            r#"no image found in image index for architecture "arm64", variant "v8", OS "linux""#
        );
        assert_eq!(
            format!("{INSPECT_PARSING_MANIFEST}: {CHOOSING_INSTANCE}: x"),
            "Error parsing manifest for image: choosing image instance: x"
        );
        assert_eq!(
            choosing_from_list("docker://a/b:1"),
            "choosing an image from manifest list docker://a/b:1"
        );
    }
}
