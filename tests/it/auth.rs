//! Authentication: htpasswd and token registries, auth files, login/logout,
//! and secrets never reaching output.

use crate::support::image::{Spec, build};
use crate::support::registry::{Mode, PASSWORD, Registry, USER};
use crate::support::token::REFRESH_TOKEN;
use crate::support::{kopeo, kopeo_env, kopeo_with_stdin, tempdir};
use base64::Engine as _;

#[test]
fn htpasswd_registry_accepts_right_and_rejects_wrong_credentials() {
    let home = tempdir();
    let reg = Registry::start(Mode::Htpasswd);
    let built = build(&home.path().join("l"), "x", &Spec::default());
    let creds = format!("--dest-creds={USER}:{PASSWORD}");
    kopeo(
        home.path(),
        &[
            "copy",
            "-q",
            "--dest-tls-verify=false",
            &creds,
            &built.reference(),
            &reg.image("app:1"),
        ],
    )
    .ok();
    let wrong = kopeo(
        home.path(),
        &[
            "inspect",
            "--tls-verify=false",
            &format!("--creds={USER}:nope"),
            &reg.image("app:1"),
        ],
    );
    assert_eq!(wrong.code, 1);
    assert!(
        wrong.stderr.contains("authentication required") && wrong.stderr.contains(&reg.host),
        "{}",
        wrong.stderr
    );
    let anon = kopeo(home.path(), &["inspect", "--tls-verify=false", &reg.image("app:1")]);
    assert_eq!(anon.code, 1, "{}", anon.stderr);
    assert!(
        anon.stderr.contains("unauthorized: authentication required"),
        "{}",
        anon.stderr
    );
    let ok = kopeo(
        home.path(),
        &[
            "inspect",
            "--tls-verify=false",
            &format!("--creds={USER}:{PASSWORD}"),
            "--format",
            "{{.Digest}}",
            &reg.image("app:1"),
        ],
    )
    .ok();
    assert_eq!(ok.stdout.trim(), built.digest);
    assert_eq!(
        reg.digest(home.path(), "app:1"),
        built.digest,
        "skopeo reads what kopeo pushed"
    );
}

#[test]
fn a_tls_registry_with_a_password_works_after_login_with_its_ca() {
    // The usual private registry: TLS with the organisation's CA, and a
    // password. Log in once, then copy both ways with no --creds.
    let home = tempdir();
    let reg = Registry::start(Mode::TlsHtpasswd);
    let certs = format!("--cert-dir={}", reg.cert_dir().display());
    let login = kopeo_with_stdin(
        home.path(),
        &["login", &certs, "-u", USER, "--password-stdin", &reg.host],
        Some(PASSWORD),
    )
    .ok();
    assert!(login.stdout.contains("Login Succeeded!"), "{}", login.stdout);
    let built = build(&home.path().join("l"), "x", &Spec::default());
    kopeo(
        home.path(),
        &[
            "copy",
            "-q",
            &format!("--dest-cert-dir={}", reg.cert_dir().display()),
            &built.reference(),
            &reg.image("private/app:1"),
        ],
    )
    .ok();
    assert_eq!(reg.digest(home.path(), "private/app:1"), built.digest);
    let back = home.path().join("back");
    kopeo(
        home.path(),
        &[
            "copy",
            "-q",
            &format!("--src-cert-dir={}", reg.cert_dir().display()),
            &reg.image("private/app:1"),
            &format!("oci:{}:x", back.display()),
        ],
    )
    .ok();
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(back.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], built.digest.as_str());
    // Without the CA the password does not help: TLS is refused first.
    let r = kopeo(home.path(), &["inspect", &reg.image("private/app:1")]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("x509: certificate signed by unknown authority"),
        "{}",
        r.stderr
    );
    // Logged out, the registry asks for credentials.
    kopeo(home.path(), &["logout", &reg.host]).ok();
    let r = kopeo(home.path(), &["inspect", &certs, &reg.image("private/app:1")]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("unauthorized: authentication required"),
        "{}",
        r.stderr
    );
}

#[test]
fn anonymous_pulls_from_a_token_registry_use_an_anonymous_token() {
    let home = tempdir();
    let reg = Registry::start(Mode::Token);
    let built = build(&home.path().join("l"), "x", &Spec::default());
    let creds = format!("--dest-creds={USER}:{PASSWORD}");
    for repo in ["public/app:1", "private/app:1"] {
        kopeo(
            home.path(),
            &[
                "copy",
                "-q",
                "--dest-tls-verify=false",
                &creds,
                &built.reference(),
                &reg.image(repo),
            ],
        )
        .ok();
    }
    let token = reg.token.as_ref().unwrap();
    let before = token.seen().len();
    // No credentials: a public repository reads with a token asked anonymously.
    let out = home.path().join("pulled");
    kopeo(
        home.path(),
        &[
            "copy",
            "-q",
            "--src-tls-verify=false",
            &reg.image("public/app:1"),
            &format!("oci:{}:x", out.display()),
        ],
    )
    .ok();
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], built.digest.as_str());
    let asked: Vec<_> = token.seen().into_iter().skip(before).collect();
    assert!(!asked.is_empty(), "a token was asked for");
    assert!(
        asked.iter().all(|r| r.method == "GET" && r.granted),
        "anonymous token requests: {asked:?}"
    );
    // An inspect (manifest, config and tag list, the last two at once)
    // asks for one token, not one per concurrent request.
    let before = token.seen().len();
    kopeo(
        home.path(),
        &["inspect", "--tls-verify=false", &reg.image("public/app:1")],
    )
    .ok();
    assert_eq!(token.seen().len() - before, 1, "{:?}", token.seen());
    // The private repository and any push stay refused, in the registry's words.
    let r = kopeo(
        home.path(),
        &["inspect", "--tls-verify=false", &reg.image("private/app:1")],
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("unauthorized: authentication required"),
        "{}",
        r.stderr
    );
    let r = kopeo(
        home.path(),
        &[
            "copy",
            "--dest-tls-verify=false",
            &built.reference(),
            &reg.image("public/app:2"),
        ],
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("unauthorized: authentication required"),
        "{}",
        r.stderr
    );
    assert_eq!(
        crate::support::skopeo(
            home.path(),
            &["inspect", "--raw", "--tls-verify=false", &reg.image("public/app:1")]
        )
        .ok()
        .stdout
        .len() as u64,
        std::fs::metadata(
            out.join("blobs/sha256")
                .join(built.digest.trim_start_matches("sha256:"))
        )
        .unwrap()
        .len(),
        "skopeo pulls it anonymously too"
    );
}

#[test]
fn token_registry_uses_bearer_tokens_with_source_pull_scope_for_mounts() {
    let home = tempdir();
    let reg = Registry::start(Mode::Token);
    let built = build(&home.path().join("l"), "x", &Spec::default());
    let creds = format!("{USER}:{PASSWORD}");
    kopeo(
        home.path(),
        &[
            "copy",
            "-q",
            "--dest-tls-verify=false",
            "--dest-creds",
            &creds,
            &built.reference(),
            &reg.image("src/app:1"),
        ],
    )
    .ok();
    kopeo(
        home.path(),
        &[
            "copy",
            "-q",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--src-creds",
            &creds,
            "--dest-creds",
            &creds,
            &reg.image("src/app:1"),
            &reg.image("dst/app:1"),
        ],
    )
    .ok();
    assert_eq!(
        reg.requests("PUT", "/v2/dst/app/blobs/uploads/"),
        0,
        "blobs were mounted, not uploaded"
    );
    let token = reg.token.as_ref().unwrap();
    let mount_scopes = token.seen().iter().any(|r| {
        let scopes: Vec<_> = r
            .params
            .iter()
            .filter(|(k, _)| k == "scope")
            .map(|(_, v)| v.as_str())
            .collect();
        scopes.contains(&"repository:src/app:pull") && scopes.contains(&"repository:dst/app:pull,push")
    });
    assert!(mount_scopes, "one token carried both scopes: {:?}", token.seen());
    let wrong = kopeo(
        home.path(),
        &[
            "inspect",
            "--tls-verify=false",
            "--creds",
            "kopeo-user:wrong",
            &reg.image("src/app:1"),
        ],
    );
    assert_eq!(wrong.code, 1);
    assert!(wrong.stderr.contains("invalid username/password"), "{}", wrong.stderr);
}

#[test]
fn identity_token_in_auth_file_uses_oauth2_post() {
    let home = tempdir();
    let reg = Registry::start(Mode::Token);
    let built = build(&home.path().join("l"), "x", &Spec::default());
    let auth = home.path().join("auth.json");
    let entry = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:"));
    std::fs::write(
        &auth,
        serde_json::json!({"auths": {&reg.host: {"auth": entry, "identitytoken": REFRESH_TOKEN}}}).to_string(),
    )
    .unwrap();
    kopeo(
        home.path(),
        &[
            "copy",
            "-q",
            "--authfile",
            auth.to_str().unwrap(),
            "--dest-tls-verify=false",
            &built.reference(),
            &reg.image("id/app:1"),
        ],
    )
    .ok();
    let seen = reg.token.as_ref().unwrap().seen();
    assert!(
        seen.iter().any(|r| r.method == "POST"
            && r.granted
            && r.params.iter().any(|(k, v)| k == "grant_type" && v == "refresh_token")),
        "{seen:?}"
    );
}

#[test]
fn login_writes_a_private_auth_file_that_later_commands_use() {
    use std::os::unix::fs::PermissionsExt as _;
    let home = tempdir();
    let reg = Registry::start(Mode::Htpasswd);
    let bad = kopeo_with_stdin(
        home.path(),
        &["login", "--tls-verify=false", "-u", USER, "--password-stdin", &reg.host],
        Some("wrong\n"),
    );
    assert_eq!(bad.code, 1, "{}", bad.stderr);
    assert!(
        bad.stderr.contains("unauthorized: authentication required"),
        "{}",
        bad.stderr
    );
    let auth = home.path().join("run/containers/auth.json");
    assert!(!auth.exists(), "a failed login writes nothing");
    let ok = kopeo_with_stdin(
        home.path(),
        &["login", "--tls-verify=false", "-u", USER, "--password-stdin", &reg.host],
        Some(&format!("{PASSWORD}\n")),
    )
    .ok();
    assert!(ok.stdout.contains("Login Succeeded!"));
    assert_eq!(std::fs::metadata(&auth).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(
        kopeo(home.path(), &["login", "--get-login", &reg.host])
            .ok()
            .stdout
            .trim(),
        USER
    );
    let built = build(&home.path().join("l"), "x", &Spec::default());
    kopeo(
        home.path(),
        &[
            "copy",
            "-q",
            "--dest-tls-verify=false",
            &built.reference(),
            &reg.image("app:1"),
        ],
    )
    .ok();
    let out = kopeo(home.path(), &["logout", &reg.host]).ok();
    assert!(
        out.stdout
            .contains(&format!("Removed login credentials for {}", reg.host))
    );
    for again in [vec!["logout", &reg.host], vec!["login", "--get-login", &reg.host]] {
        let r = kopeo(home.path(), &again);
        assert_eq!(r.code, 1, "{again:?}");
        assert!(
            r.stderr.contains(&format!("not logged into {}", reg.host)),
            "{again:?}: {}",
            r.stderr
        );
    }
}

#[test]
fn secrets_never_reach_logs_even_with_debug() {
    let home = tempdir();
    let reg = Registry::start(Mode::Token);
    let built = build(&home.path().join("l"), "x", &Spec::default());
    let r = kopeo(
        home.path(),
        &[
            "--debug",
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            &format!("{USER}:{PASSWORD}"),
            &built.reference(),
            &reg.image("app:1"),
        ],
    )
    .ok();
    let wrong = kopeo(
        home.path(),
        &[
            "--debug",
            "inspect",
            "--tls-verify=false",
            "--creds",
            &format!("{USER}:{PASSWORD}x"),
            &reg.image("app:1"),
        ],
    );
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    for out in [&r.stdout, &r.stderr, &wrong.stdout, &wrong.stderr] {
        assert!(!out.contains(PASSWORD), "password leaked: {out}");
        assert!(!out.contains(&basic), "basic auth header leaked");
        assert!(!out.contains("eyJ"), "a JWT leaked: {out}");
        assert!(!out.contains(REFRESH_TOKEN));
    }
    assert!(r.stderr.contains("DEBUG"), "debug logging was on: {}", r.stderr);
}

fn basic_entry(user: &str, pass: &str) -> serde_json::Value {
    serde_json::json!({"auth": base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))})
}

#[test]
fn auth_files_are_searched_in_containers_order_most_specific_key_first() {
    let home = tempdir();
    let reg = Registry::start(Mode::Htpasswd);
    let built = build(&home.path().join("l"), "x", &Spec::default());
    kopeo(
        home.path(),
        &[
            "copy",
            "-q",
            "--dest-tls-verify=false",
            &format!("--dest-creds={USER}:{PASSWORD}"),
            &built.reference(),
            &reg.image("ns/app:1"),
        ],
    )
    .ok();
    kopeo(
        home.path(),
        &[
            "copy",
            "-q",
            "--dest-tls-verify=false",
            &format!("--dest-creds={USER}:{PASSWORD}"),
            &built.reference(),
            &reg.image("other/app:1"),
        ],
    )
    .ok();
    let docker_cfg = home.path().join(".docker/config.json");
    let xdg = home.path().join("run/containers/auth.json");
    std::fs::create_dir_all(docker_cfg.parent().unwrap()).unwrap();
    std::fs::create_dir_all(xdg.parent().unwrap()).unwrap();
    let inspect = |img: &str, extra: &[&str]| {
        let mut a = vec!["inspect", "--tls-verify=false", "--no-tags"];
        a.extend_from_slice(extra);
        a.push(img);
        kopeo(home.path(), &a).code
    };
    // $XDG_RUNTIME_DIR/containers/auth.json comes before ~/.docker/config.json.
    std::fs::write(
        &docker_cfg,
        serde_json::json!({"auths": {&reg.host: basic_entry(USER, "wrong")}}).to_string(),
    )
    .unwrap();
    std::fs::write(
        &xdg,
        serde_json::json!({"auths": {&reg.host: basic_entry(USER, PASSWORD)}}).to_string(),
    )
    .unwrap();
    assert_eq!(inspect(&reg.image("ns/app:1"), &[]), 0);
    std::fs::remove_file(&xdg).unwrap();
    assert_eq!(
        inspect(&reg.image("ns/app:1"), &[]),
        1,
        "now the wrong docker credentials are used"
    );
    // Explicit flags override every file.
    assert_eq!(
        inspect(&reg.image("ns/app:1"), &["--creds", &format!("{USER}:{PASSWORD}")]),
        0
    );
    // registry/namespace beats registry.
    std::fs::write(
        &docker_cfg,
        serde_json::json!({"auths": {
            &reg.host: basic_entry(USER, "wrong"),
            format!("{}/ns", reg.host): basic_entry(USER, PASSWORD),
        }})
        .to_string(),
    )
    .unwrap();
    assert_eq!(inspect(&reg.image("ns/app:1"), &[]), 0);
    assert_eq!(inspect(&reg.image("other/app:1"), &[]), 1);
    // --authfile replaces the search.
    let only = home.path().join("only.json");
    std::fs::write(
        &only,
        serde_json::json!({"auths": {&reg.host: basic_entry(USER, PASSWORD)}}).to_string(),
    )
    .unwrap();
    assert_eq!(
        inspect(&reg.image("other/app:1"), &["--authfile", only.to_str().unwrap()]),
        0
    );
}

/// Copy to `reg` with an auth file `config` that names the helper
/// `docker-credential-NAME` (a script answering with the test login):
/// the registries the helper was asked about.
fn copy_with_helper(
    home: &std::path::Path,
    reg: &Registry,
    name: &str,
    config: serde_json::Value,
    tag: &str,
) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt as _;
    let bin = home.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join(format!("docker-credential-{name}"));
    let asked = home.join(format!("asked-{name}"));
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 3\nread server\necho \"$server\" >> \"{}\"\nprintf '{{\"ServerURL\":\"%s\",\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}' \"$server\"\n",
            asked.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let auth = home.join(format!("auth-{name}.json"));
    std::fs::write(&auth, config.to_string()).unwrap();
    let built = build(&home.join(format!("l-{name}")), "x", &Spec::default());
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    kopeo_env(
        home,
        &[
            "copy",
            "-q",
            "--authfile",
            auth.to_str().unwrap(),
            "--dest-tls-verify=false",
            &built.reference(),
            &reg.image(tag),
        ],
        None,
        &[("PATH", &path)],
    )
    .ok();
    assert_eq!(reg.digest(home, tag), built.digest);
    std::fs::read_to_string(&asked)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn credential_helpers_and_a_creds_store_are_asked_for_their_registry() {
    let home = tempdir();
    let reg = Registry::start(Mode::Htpasswd);
    let asked = copy_with_helper(
        home.path(),
        &reg,
        "kopeotest",
        serde_json::json!({"credHelpers": {&reg.host: "kopeotest"}}),
        "helped:1",
    );
    assert!(!asked.is_empty() && asked.iter().all(|h| *h == reg.host), "{asked:?}");
    let asked = copy_with_helper(
        home.path(),
        &reg,
        "kopeostore",
        serde_json::json!({"auths": {}, "credsStore": "kopeostore"}),
        "stored:1",
    );
    assert!(!asked.is_empty() && asked.iter().all(|h| *h == reg.host), "{asked:?}");
}

#[test]
fn a_rejected_token_is_replaced_once_and_the_request_retried() {
    let home = tempdir();
    let reg = Registry::start(Mode::Token);
    let built = build(&home.path().join("l"), "x", &Spec::default());
    let creds = format!("{USER}:{PASSWORD}");
    kopeo(
        home.path(),
        &[
            "copy",
            "-q",
            "--dest-tls-verify=false",
            "--dest-creds",
            &creds,
            &built.reference(),
            &reg.image("re/app:1"),
        ],
    )
    .ok();
    let token = reg.token.as_ref().unwrap();
    let before = token.seen().len();
    token.useless_tokens.store(1, std::sync::atomic::Ordering::SeqCst);
    let out = kopeo(
        home.path(),
        &[
            "inspect",
            "--no-tags",
            "--tls-verify=false",
            "--creds",
            &creds,
            "--format",
            "{{.Digest}}",
            &reg.image("re/app:1"),
        ],
    )
    .ok();
    assert_eq!(out.stdout.trim(), built.digest);
    assert_eq!(token.seen().len() - before, 2, "one useless token, then a fresh one");
}

#[test]
fn a_push_of_many_layers_asks_for_one_token_per_scope_not_one_per_blob() {
    let home = tempdir();
    let reg = Registry::start(Mode::Token);
    let built = build(
        &home.path().join("l"),
        "x",
        &Spec {
            layers: vec![3_000; 8],
            ..Spec::default()
        },
    );
    let token = reg.token.as_ref().unwrap();
    let creds = format!("--dest-creds={USER}:{PASSWORD}");
    kopeo(
        home.path(),
        &[
            "copy",
            "-q",
            "--dest-tls-verify=false",
            &creds,
            &built.reference(),
            &reg.image("team/app:1"),
        ],
    )
    .ok();
    // Nine blobs looked up and uploaded at once, six at a time: the first
    // requests of all of them wait for the one token their scope needs.
    let asked = token.seen();
    assert_eq!(asked.len(), 1, "{asked:?}");
    // Within the registry, to another repository: one token at the source
    // (pull), one at the destination (pull and push), and one for the
    // mounts (push here, pull where the blobs are), each asked once.
    let before = token.seen().len();
    kopeo(
        home.path(),
        &[
            "copy",
            "-q",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &format!("--src-creds={USER}:{PASSWORD}"),
            &creds,
            &reg.image("team/app:1"),
            &reg.image("other/app:1"),
        ],
    )
    .ok();
    let asked: Vec<_> = token.seen().into_iter().skip(before).collect();
    let scopes: Vec<Vec<&str>> = asked
        .iter()
        .map(|r| {
            r.params
                .iter()
                .filter(|(k, _)| k == "scope")
                .map(|(_, v)| v.as_str())
                .collect()
        })
        .collect();
    assert_eq!(scopes.len(), 3, "{asked:?}");
    for want in [
        vec!["repository:team/app:pull"],
        vec!["repository:other/app:pull,push"],
        vec!["repository:other/app:pull,push", "repository:team/app:pull"],
    ] {
        assert!(scopes.contains(&want), "{want:?} not in {scopes:?}");
    }
}
