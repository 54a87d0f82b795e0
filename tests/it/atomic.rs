//! `atomic:` — OpenShift's integrated registry: the test API server serves
//! OpenShift's image API (image streams, images, signatures) and fronts a
//! real Distribution registry as OpenShift's registry does (tokens as
//! passwords, the pushed tag registered in the stream before the push is
//! answered). Debian's skopeo is built without its openshift transport
//! (`unknown transport "atomic"`), so it judges the parts it can read: the
//! images through the registry as `docker://`, and the simple-signing
//! signatures stored in the API with `standalone-verify` / written with
//! `standalone-sign`.

use crate::signing::Setup;
use crate::support::cluster::runtime;
use crate::support::image::{Spec, build};
use crate::support::registry::{Mode, Registry};
use crate::support::{Run, kopeo_env};
use base64::Engine as _;
use kopeo_test_apiserver::openshift::{ImageApi, Paths};
use kopeo_test_apiserver::{ApiServer, Options};
use serde_json::Value;

pub(crate) const ADMIN: &str = "openshift-admin-token";
const INTERNAL: &str = "image-registry.openshift-image-registry.svc:5000";

pub(crate) struct OpenShift {
    pub(crate) server: ApiServer,
    /// The integrated registry's `HOST:PORT`.
    pub(crate) registry: String,
    pub(crate) kubeconfig: std::path::PathBuf,
    /// Where the image API is served.
    pub(crate) prefix: &'static str,
    /// The Distribution registry behind the front.
    pub(crate) distribution: Registry,
}

fn openshift(t: &Setup, paths: Paths) -> OpenShift {
    openshift_with(&t.path("kubeconfig"), paths, Options::default())
}

/// An OpenShift cluster of the test API server (with `extra` options: users,
/// RBAC, an audit log) whose administrator's kubeconfig is written to `kubeconfig`.
pub(crate) fn openshift_with(kubeconfig: &std::path::Path, paths: Paths, extra: Options) -> OpenShift {
    let distribution = Registry::start(Mode::Plain);
    let server = ApiServer::start(Options {
        token: Some(ADMIN.into()),
        openshift: Some(ImageApi {
            paths,
            internal_registry: INTERNAL.into(),
        }),
        ..extra
    });
    let registry = server.integrated_registry(&distribution.host).host;
    let kubeconfig = server.write_kubeconfig(kubeconfig);
    OpenShift {
        server,
        registry,
        kubeconfig,
        prefix: match paths {
            Paths::Group => "/apis/image.openshift.io/v1",
            Paths::LegacyOnly => "/oapi/v1",
        },
        distribution,
    }
}

impl OpenShift {
    fn kopeo(&self, t: &Setup, args: &[&str]) -> Run {
        let kc = self.kubeconfig.display().to_string();
        kopeo_env(t.home.path(), args, None, &[t.gpg.env(), ("KUBECONFIG", &kc)])
    }
    fn skopeo(&self, t: &Setup, args: &[&str]) -> Run {
        let kc = self.kubeconfig.display().to_string();
        crate::support::skopeo_env(t.home.path(), args, &[t.gpg.env(), ("KUBECONFIG", &kc)])
    }
    /// GET a path of the API server as its administrator.
    pub(crate) fn get(&self, path: &str) -> (u16, Value) {
        let url = format!("{}{path}", self.server.url());
        runtime().block_on(async {
            let r = reqwest::Client::new().get(url).bearer_auth(ADMIN).send().await.unwrap();
            let code = r.status().as_u16();
            (code, r.json().await.unwrap_or(Value::Null))
        })
    }
    /// POST a JSON body to a path of the API server as its administrator.
    pub(crate) fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let url = format!("{}{path}", self.server.url());
        runtime().block_on(async {
            let r = reqwest::Client::new()
                .post(url)
                .bearer_auth(ADMIN)
                .json(&body)
                .send()
                .await
                .unwrap();
            let code = r.status().as_u16();
            (code, r.json().await.unwrap_or(Value::Null))
        })
    }
    pub(crate) fn atomic(&self, stream: &str) -> String {
        format!("atomic:{}/{stream}", self.registry)
    }
}

/// The tag's history in `ns/stream`: the images, newest first.
pub(crate) fn history(os: &OpenShift, ns: &str, stream: &str, tag: &str) -> Vec<String> {
    let (code, is) = os.get(&format!("{}/namespaces/{ns}/imagestreams/{stream}", os.prefix));
    assert_eq!(code, 200, "{is}");
    is["status"]["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["tag"] == tag)
        .flat_map(|t| t["items"].as_array().cloned().unwrap_or_default())
        .map(|e| {
            let reference = e["dockerImageReference"].as_str().unwrap_or_default();
            assert!(
                reference.starts_with(INTERNAL),
                "the cluster-internal address is stored: {reference}"
            );
            e["image"].as_str().unwrap_or_default().to_string()
        })
        .collect()
}

fn digest_of(inspect: &Run) -> String {
    let v: Value = serde_json::from_str(&inspect.stdout).expect("inspect prints JSON");
    v["Digest"].as_str().expect("a Digest").to_string()
}

#[test]
fn atomic_copies_and_signs_both_ways_through_the_legacy_api_judged_by_skopeo() {
    let t = Setup::new();
    let os = openshift(&t, Paths::LegacyOnly);
    let alice = t.gpg.key("alice@example.com", "", false);
    t.gpg.key("bob@example.com", "", false);
    t.gpg.export("alice@example.com", &t.path("alice.asc"));
    t.gpg.export("bob@example.com", &t.path("bob.asc"));
    let img = build(&t.path("layout"), "app", &Spec::default());
    let dest = os.atomic("default/app:v1");
    // No registry credentials are given: the kubeconfig's token opens the registry.
    let out = os.kopeo(
        &t,
        &[
            "copy",
            "--insecure-policy",
            "--dest-tls-verify=false",
            "--sign-by",
            &alice,
            &img.reference(),
            &dest,
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        history(&os, "default", "app", "v1"),
        std::slice::from_ref(&img.digest),
        "the push registered the image"
    );
    let (code, image) = os.get(&format!("{}/images/{}", os.prefix, img.digest));
    assert_eq!(code, 200);
    let sigs = image["signatures"].as_array().cloned().unwrap_or_default();
    assert_eq!(sigs.len(), 1, "one signature stored through the API: {image}");
    assert_eq!(sigs[0]["type"], "atomic");
    let sig_name = sigs[0]["metadata"]["name"].as_str().unwrap_or_default();
    assert!(
        sig_name.starts_with(&format!("{}@", img.digest)) && sig_name.len() == img.digest.len() + 33,
        "named IMAGE@32 hex: {sig_name}"
    );

    // skopeo reads what kopeo wrote: the manifest through the registry, and
    // the signature stored in the API is one its standalone-verify accepts
    // for the stream's identity.
    let creds = format!("serviceaccount:{ADMIN}");
    let docker = |stream: &str| format!("docker://{}/{stream}", os.registry);
    let raw = os
        .skopeo(
            &t,
            &[
                "inspect",
                "--raw",
                "--tls-verify=false",
                "--creds",
                &creds,
                &docker("default/app:v1"),
            ],
        )
        .ok();
    assert_eq!(format!("sha256:{}", sha256_hex(raw.stdout.as_bytes())), img.digest);
    std::fs::write(t.path("manifest"), &raw.stdout).unwrap();
    let content = base64::engine::general_purpose::STANDARD
        .decode(sigs[0]["content"].as_str().unwrap_or_default())
        .expect("content is base64, as OpenShift's []byte");
    std::fs::write(t.path("kopeo.sig"), &content).unwrap();
    let identity = format!("{}/default/app:v1", os.registry);
    let verified = os
        .skopeo(
            &t,
            &[
                "standalone-verify",
                &t.s("manifest"),
                &identity,
                &alice,
                &t.s("kopeo.sig"),
            ],
        )
        .ok();
    assert!(verified.stdout.contains("Signature verified"), "{}", verified.stdout);

    // skopeo writes: it pushes through the registry (which registers the tag)
    // and signs with standalone-sign; the signature goes into the API as
    // containers/image's openshift transport puts it.
    let other = os.atomic("default/other:v2");
    os.skopeo(
        &t,
        &[
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            &creds,
            &img.reference(),
            &docker("default/other:v2"),
        ],
    )
    .ok();
    let theirs = history(&os, "default", "other", "v2");
    assert_eq!(theirs, std::slice::from_ref(&img.digest));
    // A second copy of the same image, now into another stream: its own signature.
    let identity = format!("{}/default/other:v2", os.registry);
    os.skopeo(
        &t,
        &[
            "standalone-sign",
            &t.s("manifest"),
            &identity,
            &alice,
            "-o",
            &t.s("skopeo.sig"),
        ],
    )
    .ok();
    let signature = std::fs::read(t.path("skopeo.sig")).unwrap();
    let (code, answer) = os.post(
        &format!("{}/imagesignatures", os.prefix),
        serde_json::json!({
            "kind": "ImageSignature",
            "apiVersion": "v1",
            "metadata": {"name": format!("{}@{}", img.digest, "0123456789abcdef0123456789abcdef")},
            "type": "atomic",
            "content": base64::engine::general_purpose::STANDARD.encode(&signature),
        }),
    );
    assert_eq!(code, 201, "{answer}");
    let trust = |key: &str| {
        t.policy(
            &format!("{key}.json"),
            serde_json::json!({"atomic": {os.registry.clone(): crate::signing::signed_by(&t.s(&format!("{key}.asc")), serde_json::json!({"type": "matchRepository"}))},
                               "dir": {"": [{"type": "insecureAcceptAnything"}]}}),
        )
    };
    let (alice_policy, bob_policy) = (trust("alice"), trust("bob"));
    let inspected = os.kopeo(&t, &["inspect", "--tls-verify=false", &other]);
    assert_eq!(inspected.code, 0, "{}", inspected.stderr);
    assert_eq!(digest_of(&inspected), theirs[0]);
    let by_kopeo = t.path("by-kopeo");
    let out = os.kopeo(
        &t,
        &[
            "--policy",
            &alice_policy,
            "copy",
            "--src-tls-verify=false",
            &other,
            &format!("dir:{}", by_kopeo.display()),
        ],
    );
    assert_eq!(
        out.code, 0,
        "kopeo verifies skopeo's signature from the API: {}",
        out.stderr
    );
    let refused = os.kopeo(
        &t,
        &[
            "--policy",
            &bob_policy,
            "copy",
            "--src-tls-verify=false",
            &other,
            &format!("dir:{}", t.s("refused-k")),
        ],
    );
    assert_ne!(refused.code, 0, "{}", refused.stderr);
    assert!(refused.stderr.contains("Source image rejected"), "{}", refused.stderr);
    // Carried along: the image's signatures read from the API land as dir:'s
    // signature-N, skopeo's bytes among them, and skopeo verifies the copy.
    let carried: Vec<Vec<u8>> = (1..=2)
        .filter_map(|n| std::fs::read(by_kopeo.join(format!("signature-{n}"))).ok())
        .collect();
    assert!(carried.contains(&signature), "skopeo's signature carried into dir:");
    let verified = os
        .skopeo(
            &t,
            &[
                "standalone-verify",
                &by_kopeo.join("manifest.json").display().to_string(),
                &identity,
                &alice,
                &t.s("skopeo.sig"),
            ],
        )
        .ok();
    assert!(verified.stdout.contains("Signature verified"), "{}", verified.stdout);
}

#[test]
fn atomic_follows_the_tag_history_on_openshift_4_paths_and_names_what_is_wrong() {
    let t = Setup::new();
    let os = openshift(&t, Paths::Group);
    let first = build(&t.path("one"), "app", &Spec::default());
    let second = build(
        &t.path("two"),
        "app",
        &Spec {
            seed: 7,
            ..Spec::default()
        },
    );
    let dest = os.atomic("default/app:v1");
    for img in [&first, &second] {
        let out = os.kopeo(
            &t,
            &[
                "copy",
                "-q",
                "--insecure-policy",
                "--dest-tls-verify=false",
                &img.reference(),
                &dest,
            ],
        );
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
    assert_eq!(
        history(&os, "default", "app", "v1"),
        [second.digest.clone(), first.digest.clone()],
        "newest first"
    );
    // The tag resolves to its newest image; copied out byte-exact.
    let inspected = os.kopeo(&t, &["inspect", "--tls-verify=false", &dest]);
    assert_eq!(inspected.code, 0, "{}", inspected.stderr);
    assert_eq!(digest_of(&inspected), second.digest);
    let out_dir = t.path("out");
    let out = os.kopeo(
        &t,
        &[
            "copy",
            "-q",
            "--insecure-policy",
            "--src-tls-verify=false",
            &dest,
            &format!("dir:{}", out_dir.display()),
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let manifest = std::fs::read(out_dir.join("manifest.json")).unwrap();
    assert_eq!(format!("sha256:{}", sha256_hex(&manifest)), second.digest);

    let fails = |args: &[&str], needle: &str| {
        let r = os.kopeo(&t, args);
        assert_ne!(r.code, 0, "{args:?} should fail");
        let said = r.stderr.replace("\\\"", "\"");
        assert!(said.contains(needle), "{args:?}: {needle:?} not in {}", r.stderr);
        assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
        assert!(!r.stderr.contains(ADMIN), "the token is never printed: {}", r.stderr);
    };
    fails(
        &["inspect", "--tls-verify=false", &os.atomic("default/app:v9")],
        "No matching tag found",
    );
    fails(
        &["inspect", "--tls-verify=false", &os.atomic("default/nope:v1")],
        "imagestreams.image.openshift.io \"nope\" not found",
    );
    fails(
        &["inspect", &format!("atomic:{}/only:1", os.registry)],
        "expected format: 'hostname/namespace/stream:tag'",
    );
    fails(
        &["inspect", &format!("atomic:{}/ns/app", os.registry)],
        "expected format: 'hostname/namespace/stream:tag'",
    );
    fails(
        &["delete", "--tls-verify=false", &dest],
        "Deleting images not implemented for atomic: images",
    );
    // A kubeconfig whose token the cluster does not know: the API's own answer.
    let bad = os
        .server
        .write_kubeconfig_with_token(&t.path("bad-kubeconfig"), "not-a-token");
    let r = kopeo_env(
        t.home.path(),
        &["inspect", "--tls-verify=false", &dest],
        None,
        &[("KUBECONFIG", bad.to_str().unwrap())],
    );
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("Unauthorized"), "{}", r.stderr);
    assert!(!r.stderr.contains("not-a-token"), "{}", r.stderr);
    // No cluster configured at all: said so, before any request.
    let r = kopeo_env(
        t.home.path(),
        &["inspect", "--tls-verify=false", &dest],
        None,
        &[("KUBECONFIG", t.s("missing-kubeconfig").as_str())],
    );
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("cluster configuration"), "{}", r.stderr);
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(b))
}
