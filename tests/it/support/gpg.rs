//! A private GnuPG home with test keys, as a user's keyring is for signing:
//! keys made by gpg itself, the agent asked for passphrases on every use
//! (nothing cached), the agent stopped when the home goes.

use super::require_tool;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A GNUPGHOME of its own.
pub struct GpgHome {
    pub dir: PathBuf,
}

impl GpgHome {
    /// A new, empty home under `parent`.
    pub fn new(parent: &Path) -> GpgHome {
        let dir = parent.join("gnupg");
        std::fs::create_dir_all(&dir).expect("creating GNUPGHOME");
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod GNUPGHOME");
        // No passphrase is remembered: a wrong one is always asked for anew.
        std::fs::write(
            dir.join("gpg-agent.conf"),
            "allow-loopback-pinentry\ndefault-cache-ttl 0\nmax-cache-ttl 0\n",
        )
        .expect("gpg-agent.conf");
        GpgHome { dir }
    }

    /// `("GNUPGHOME", dir)` for a command's environment.
    pub fn env(&self) -> (&'static str, &str) {
        ("GNUPGHOME", self.dir.to_str().unwrap_or_default())
    }

    /// Run gpg here; panics unless it succeeds.
    pub fn gpg(&self, args: &[&str]) -> Vec<u8> {
        let out = Command::new(require_tool("gpg", "gnupg"))
            .args(["--batch", "--no-tty"])
            .args(args)
            .env("GNUPGHOME", &self.dir)
            .output()
            .expect("running gpg");
        assert!(
            out.status.success(),
            "gpg {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Make a key for `email` (RSA, a signing primary; or with `subkey`, a
    /// certify-only primary and a signing subkey), protected by `passphrase`
    /// when not empty. Returns the primary key's fingerprint.
    pub fn key(&self, email: &str, passphrase: &str, subkey: bool) -> String {
        let uid = format!("Test {email} <{email}>");
        let usage = if subkey { "cert" } else { "sign" };
        self.gpg(&[
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            passphrase,
            "--quick-gen-key",
            &uid,
            "rsa2048",
            usage,
            "never",
        ]);
        let fpr = self.fingerprint(email);
        if subkey {
            self.gpg(&[
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                passphrase,
                "--quick-add-key",
                &fpr,
                "rsa2048",
                "sign",
                "never",
            ]);
        }
        fpr
    }

    /// The primary fingerprint of `email`'s key.
    pub fn fingerprint(&self, email: &str) -> String {
        let out = String::from_utf8(self.gpg(&["--with-colons", "--list-keys", email])).expect("utf-8");
        out.lines()
            .find_map(|l| l.strip_prefix("fpr:").map(|r| r.trim_matches(':').to_string()))
            .expect("a fingerprint")
    }

    /// The fingerprint of `email`'s (first) subkey.
    pub fn subkey_fingerprint(&self, email: &str) -> String {
        let out = String::from_utf8(self.gpg(&["--with-colons", "--list-keys", email])).expect("utf-8");
        out.lines()
            .filter_map(|l| l.strip_prefix("fpr:").map(|r| r.trim_matches(':').to_string()))
            .nth(1)
            .expect("a subkey fingerprint")
    }

    /// Make a key for `email` that can be encrypted to (RSA: a sign/certify
    /// primary and an encryption subkey), protected by `passphrase` when not empty.
    pub fn encryption_key(&self, email: &str, passphrase: &str) -> String {
        let uid = format!("Test {email} <{email}>");
        let pin = ["--pinentry-mode", "loopback", "--passphrase", passphrase];
        self.gpg(&[&pin[..], &["--quick-gen-key", &uid, "rsa2048", "sign,cert", "never"]].concat());
        let fpr = self.fingerprint(email);
        self.gpg(&[&pin[..], &["--quick-add-key", &fpr, "rsa2048", "encr", "never"]].concat());
        fpr
    }

    /// `email`'s secret key as gpg exports it (protected as in the keyring), to `path`.
    pub fn export_secret(&self, email: &str, passphrase: &str, armor: bool, path: &Path) {
        let mut args = vec!["--pinentry-mode", "loopback", "--passphrase", passphrase];
        if armor {
            args.push("--armor");
        }
        args.extend(["--export-secret-keys", email]);
        std::fs::write(path, self.gpg(&args)).expect("writing secret key");
    }

    /// `email`'s public key, ASCII-armored, written to `path`.
    pub fn export(&self, email: &str, path: &Path) {
        std::fs::write(path, self.gpg(&["--armor", "--export", email])).expect("writing public key");
    }
}

impl Drop for GpgHome {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .args(["--kill", "gpg-agent"])
            .env("GNUPGHOME", &self.dir)
            .output();
    }
}
