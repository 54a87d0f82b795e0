//! Ways in for the fuzz targets under `fuzz/` and for the stable test that
//! replays their corpora: each takes arbitrary bytes, parses them as one kind
//! of outside input, and uses what parsed the way kopeo would. Errors are the
//! expected outcome; a panic, a hang or an unbounded allocation is a bug.
//! Only the properties asserted here are promised (a parsed reference prints
//! as text that parses again, to the same reference).

use crate::manifest::{Manifest, media};
use std::io::Write as _;
use std::sync::OnceLock;

/// A fuzz target's function.
pub type Target = fn(&[u8]);

/// Every fuzz target: its name (the directory of its corpus) and its function.
pub const TARGETS: &[(&str, Target)] = &[
    ("reference", reference),
    ("manifest", manifest),
    ("image_config", image_config),
    ("challenge", challenge),
    ("token_answer", token_answer),
    ("link_header", link_header),
    ("auth_file", auth_file),
    ("sync_yaml", sync_yaml),
    ("docker_archive", docker_archive),
    ("oci_archive", oci_archive),
    ("operator_yaml", operator_yaml),
    ("policy_json", policy_json),
    ("registries_d", registries_d),
    ("signature", signature),
    ("encryption", encryption),
    ("layer_tar", layer_tar),
];

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// An image reference of any transport, as given on the command line or in a CR.
pub fn reference(data: &[u8]) {
    let Some(s) = text(data) else { return };
    let Ok(r) = s.parse::<crate::reference::ImageReference>() else {
        return;
    };
    let printed = r.to_string();
    let again: crate::reference::ImageReference = match printed.parse() {
        Ok(a) => a,
        Err(e) => panic!("{s:?} parsed, printed as {printed:?}, which does not parse: {e}"),
    };
    assert_eq!(again.to_string(), printed, "{s:?} prints two ways");
}

/// A manifest of every type kopeo reads (and as a guessed type), converted
/// the ways a copy converts it, a schema1 manifest as its conversion and
/// inspect read it, and its digest.
pub fn manifest(data: &[u8]) {
    let _ = crate::manifest::guess_mime_type(data);
    for mime in media::ALL_MANIFESTS.iter().copied().chain([""]) {
        match Manifest::parse(data, mime) {
            Ok(Manifest::Image(m)) => {
                for target in [media::OCI_MANIFEST, media::DOCKER_V2S2] {
                    if let Ok(c) = m.convert(target) {
                        let bytes = crate::manifest::to_bytes(&c);
                        let _ = Manifest::parse(&bytes, target);
                    }
                }
            }
            Ok(Manifest::Index(i)) => {
                let _ = crate::manifest::choose_instance(&i, &crate::manifest::host_platform());
            }
            Err(_) => {}
        }
    }
    if let Ok((s1, v1s)) = crate::copy::parse_schema1(data) {
        let (history, blobs) = crate::copy::schema1::history_and_layers(&s1, &v1s);
        let unknown = blobs.iter().map(|_| serde_json::Value::String(String::new())).collect();
        let _ = crate::copy::schema1::config(v1s, history, unknown);
    }
    // A signed schema1's digest is found in its JWS headers.
    let _ = crate::manifest_digest::manifest_digest(data);
}

/// An image config, read as `inspect` and `inspect --config` read it.
pub fn image_config(data: &[u8]) {
    if let Ok(oci) = crate::image_config::OciImage::from_json(data) {
        let _ = serde_json::to_vec(&oci);
    }
    let _ = serde_json::from_slice::<serde_json::Value>(data);
}

/// A `WWW-Authenticate` header.
pub fn challenge(data: &[u8]) {
    if let Some(s) = text(data) {
        let _ = crate::registry::parse_challenge(s);
    }
}

/// A token server's answer body.
pub fn token_answer(data: &[u8]) {
    let _ = crate::registry::token_from_reply(data);
}

/// A `Link` header of a paged tag or catalog list.
pub fn link_header(data: &[u8]) {
    if let Some(s) = text(data) {
        let _ = crate::registry::parse_next_link(s);
    }
}

/// An auth.json / Docker config.json, looked up as a pull would.
pub fn auth_file(data: &[u8]) {
    let Ok(doc) = serde_json::from_slice(data) else { return };
    let file = crate::auth::AuthFile::from_document("fuzz.json", doc);
    for (registry, repo) in [
        ("docker.io", "library/busybox"),
        ("quay.io", "a/b"),
        ("127.0.0.1:5000", "x"),
    ] {
        let _ = file.find(registry, repo);
    }
}

/// A `sync --src yaml` file: the registries' repositories, tag regexes and
/// semver ranges as the plan reads them, applied to a fixed tag list.
pub fn sync_yaml(data: &[u8]) {
    let Some(s) = text(data) else { return };
    let Ok(cfg) = crate::sync::config::parse(s) else { return };
    let tags: Vec<String> = ["1.0", "v1.2.3", "latest", "2.0.0-rc1", "debug"]
        .iter()
        .map(|t| t.to_string())
        .collect();
    for (registry, rc) in &cfg {
        for (repo, tag_list) in &rc.images {
            let _ = crate::reference::DockerReference::parse_qualified(&format!("{registry}/{repo}"));
            for t in tag_list.iter().flatten() {
                let _ = crate::reference::DockerReference::parse_qualified(&format!("{registry}/{repo}:{t}"));
            }
        }
        let exclude: Vec<regex::Regex> = rc
            .exclude_tags
            .iter()
            .filter_map(|r| regex::Regex::new(r).ok())
            .collect();
        for re in rc.images_by_tag_regex.values() {
            let include = regex::Regex::new(re).ok();
            let filter = crate::sync::TagFilter {
                include,
                exclude: exclude.clone(),
                keep_newest: rc.keep_newest,
                ..Default::default()
            };
            let _ = filter.apply(tags.clone());
        }
        for range in rc.images_by_semver.values() {
            if let Ok(c) = crate::sync::semver::Constraint::parse(range) {
                let filter = crate::sync::TagFilter {
                    semver: Some(c),
                    keep_newest: rc.keep_newest,
                    ..Default::default()
                };
                let _ = filter.apply(tags.clone());
            }
        }
    }
}

/// A runtime for the archive targets (their readers are async).
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("a fuzz runtime: {e}"))
    })
}

/// `data` as an archive file (in memory-backed /dev/shm when there is one).
fn archive_file(data: &[u8]) -> Option<tempfile::NamedTempFile> {
    let mut b = tempfile::Builder::new();
    b.prefix("kopeo-fuzz-").suffix(".tar");
    let shm = std::path::Path::new("/dev/shm");
    let mut f = if shm.is_dir() { b.tempfile_in(shm) } else { b.tempfile() }.ok()?;
    f.write_all(data).ok()?;
    Some(f)
}

/// Read an opened source as `inspect` and a copy do: the manifest, the
/// chosen instance of a list, the config, the first bytes of every layer.
async fn read_source(src: &dyn crate::transport::ImageSource) {
    use futures::StreamExt;
    let Ok((bytes, mime)) = src.manifest(None).await else {
        return;
    };
    let single = match Manifest::parse(&bytes, &mime) {
        Ok(Manifest::Image(m)) => m,
        Ok(Manifest::Index(i)) => {
            let Ok(chosen) = crate::manifest::choose_instance(&i, &crate::manifest::host_platform()) else {
                return;
            };
            let Ok((b, t)) = src.manifest(Some(&chosen.digest)).await else {
                return;
            };
            match Manifest::parse(&b, &t) {
                Ok(Manifest::Image(m)) => m,
                _ => return,
            }
        }
        Err(_) => return,
    };
    if let Ok(config) = crate::copy::read_config(src, &single.config).await {
        image_config(&config);
    }
    for layer in &single.layers {
        let info = crate::transport::BlobInfo {
            digest: layer.digest.clone(),
            size: u64::try_from(layer.size).ok(),
            media_type: layer.media_type.clone(),
        };
        if let Ok(mut s) = src.blob(&info).await {
            let _ = s.next().await;
        }
    }
}

/// A `docker save` archive.
pub fn docker_archive(data: &[u8]) {
    let Some(f) = archive_file(data) else { return };
    runtime().block_on(async {
        let _ = crate::transport::docker_archive::list_tags(f.path()).await;
        if let Ok(src) = crate::transport::docker_archive::DockerArchiveSource::open(f.path(), None).await {
            read_source(&src).await;
        }
    });
}

/// An OCI layout in a tar archive.
pub fn oci_archive(data: &[u8]) {
    let Some(f) = archive_file(data) else { return };
    runtime().block_on(async {
        if let Ok(src) = crate::transport::oci::OciSource::open_archive(f.path(), None).await {
            read_source(&src).await;
        }
    });
}

/// A file of Kubernetes manifests for `kopeo run`: Secrets and kopeo's
/// custom resources, credentials rendered as the operator renders them.
pub fn operator_yaml(data: &[u8]) {
    if let Some(s) = text(data) {
        let _ = crate::operator::from_files::parse_and_render(s);
    }
}

/// A trust policy (policy.json), judged for images of several transports:
/// unsigned, and with one (unverifiable) signature. Key files are not read
/// (the fuzzer would name any path): only `keyData` keys are used.
pub fn policy_json(data: &[u8]) {
    use crate::signature::policy::{self, PolicyImage, Requirement, config::KeySource};
    let Ok(mut p) = policy::config::parse(data) else { return };
    let no_files = |reqs: &mut Vec<Requirement>| {
        reqs.retain(|r| {
            !matches!(
                r,
                Requirement::SignedBy {
                    keys: KeySource::Path(_) | KeySource::Paths(_),
                    ..
                }
            )
        });
    };
    no_files(&mut p.default);
    for (_, scopes) in &mut p.transports {
        for (_, reqs) in scopes {
            no_files(reqs);
        }
    }
    let sig = [bytes::Bytes::from_static(b"\x90\x0d\x03\x00\x08\x01")];
    for r in [
        "docker://example.com:5000/ns/app:1",
        "dir:/tmp/x/y",
        "oci:/a/b:c",
        "docker-archive:/a.tar:x/y:1",
    ] {
        let Ok(reference) = r.parse::<crate::reference::ImageReference>() else {
            continue;
        };
        let (identity, namespaces) = policy::policy_identity(&reference);
        for signatures in [&[][..], &sig[..]] {
            let _ = p.check(&PolicyImage {
                name: r.to_string(),
                transport: reference.transport(),
                identity: identity.clone(),
                namespaces: namespaces.clone(),
                docker_reference: policy::docker_reference_of(&reference),
                manifest: b"{}",
                signatures,
            });
        }
    }
}

/// One registries.d file, asked for the lookaside of a few references.
pub fn registries_d(data: &[u8]) {
    let Ok(c) = crate::signature::lookaside::RegistriesD::parse_file(data) else {
        return;
    };
    for r in [
        "example.com/ns/app:1",
        "docker.io/library/busybox:latest",
        "localhost:5000/a/b/c:d",
    ] {
        if let Ok(r) = crate::reference::DockerReference::parse_normalized(r) {
            for write in [false, true] {
                let _ = c.lookaside_base(&r, write);
            }
            let _ = c.use_sigstore_attachments(&r);
        }
    }
}

/// A signature: its payload read alone, as a registry's signature-extension
/// list, the bytes read as a key ring and as
/// PEM public keys, as a stored blob (a sigstore one verified with the P-256
/// key in `fuzz/testdata`), and as an OpenPGP message verified with the
/// OpenPGP key there, as a policy's signedBy does.
pub fn signature(data: &[u8]) {
    use crate::signature::{blob, openpgp::TrustedKeys, sigstore, simple::Payload};
    static KEYS: OnceLock<Option<TrustedKeys>> = OnceLock::new();
    static SIGSTORE: OnceLock<Vec<sigstore::PublicKey>> = OnceLock::new();
    let _ = Payload::parse(data);
    // A registry's signature extension answer.
    let _ = crate::registry::signatures::simple_signatures_of(data);
    let _ = TrustedKeys::parse(data);
    let _ = sigstore::parse_public_keys(data);
    // Private keys as a Secret holds them (spec.sign): OpenPGP and cosign's.
    let _ = crate::signature::openpgp_sign::SecretKey::parse(data, "");
    let _ = crate::signature::sigstore_key::load_private(data, b"");
    if let Ok(blob::Signature::Sigstore(s)) = blob::Signature::from_blob(data) {
        let keys = SIGSTORE.get_or_init(|| {
            sigstore::parse_public_keys(include_bytes!("../fuzz/testdata/sigstore-key.pub")).unwrap_or_default()
        });
        let _ = sigstore::verify(keys, &s, |_| Ok(()), |_| Ok(()));
    }
    let Some(keys) = KEYS.get_or_init(|| TrustedKeys::parse(include_bytes!("../fuzz/testdata/signature-key.asc")).ok())
    else {
        return;
    };
    let accepted = keys.fingerprints();
    let _ = crate::signature::verify_simple(
        keys,
        &accepted,
        data,
        |_| Ok(()),
        |r| {
            crate::reference::DockerReference::parse_normalized(r)
                .map(|_| ())
                .map_err(Into::into)
        },
    );
}

/// Layer encryption input: the bytes as a public or private key, a
/// certificate, a JWE (unwrapped with the RSA and EC keys in
/// `fuzz/testdata`), a PKCS#7 envelope (the RSA key), an OpenPGP message
/// (the OpenPGP secret key there), a key provider's answer, the block
/// cipher options, and as ciphertext through the decrypting stage.
pub fn encryption(data: &[u8]) {
    use crate::encryption::{cipher, jwe, keys, options, pgp, pkcs7, provider};
    static KEYS: OnceLock<Vec<keys::PrivateKey>> = OnceLock::new();
    static PGP: OnceLock<Vec<pgp::SecretKey>> = OnceLock::new();
    let _ = keys::parse_public(data);
    let _ = keys::parse_private(data, None);
    let _ = pkcs7::Certificate::parse(data);
    let _ = provider::parse_answer(data);
    let private: Option<options::PrivateOptions> = serde_json::from_slice(data).ok();
    let public: Option<options::PublicOptions> = serde_json::from_slice(data).ok();
    let keys = KEYS.get_or_init(|| {
        [
            &include_bytes!("../fuzz/testdata/encryption-rsa.pem")[..],
            &include_bytes!("../fuzz/testdata/encryption-ec.pem")[..],
        ]
        .iter()
        .filter_map(|k| keys::parse_private(k, None).ok().flatten())
        .collect()
    });
    let _ = jwe::unwrap(data, keys);
    let _ = pkcs7::unwrap(data, keys, &[]);
    let pgp_keys = PGP.get_or_init(|| {
        pgp::SecretKey::parse(include_bytes!("../fuzz/testdata/encryption-pgp.key"), None)
            .into_iter()
            .collect()
    });
    let _ = pgp::unwrap(data, pgp_keys);
    // The bytes as a layer, decrypted with fixed options (or the parsed ones).
    let fixed = options::PrivateOptions {
        symkey: vec![7; 32],
        digest: String::new(),
        cipheroptions: [("nonce".to_string(), vec![1; 16])].into(),
    };
    let private = private.unwrap_or(fixed);
    let public = public.unwrap_or(options::PublicOptions {
        cipher: cipher::AES_256_CTR_HMAC_SHA256.into(),
        hmac: vec![0; 32],
        cipheroptions: Default::default(),
    });
    let chunks: Vec<_> = data.chunks(97).map(|c| Ok(bytes::Bytes::copy_from_slice(c))).collect();
    let input = futures::stream::iter(chunks);
    if let Ok(s) = cipher::decrypt(Box::pin(input), &private, &public, Default::default()) {
        let _ = futures::executor::block_on(futures::StreamExt::count(s));
    }
}

/// A layer tar applied as containers-storage applies it (vfs, then overlay
/// whiteouts), in a fresh directory: nothing may appear outside the layer's
/// root, and a layer that applied and reads back reads back byte for byte.
pub fn layer_tar(data: &[u8]) {
    let Ok(dir) = tempfile::tempdir() else { return };
    for overlay in [false, true] {
        let root = dir.path().join(if overlay { "overlay" } else { "vfs" });
        if std::fs::create_dir(&root).is_err() {
            return;
        }
        if let Ok(back) = crate::transport::containers_storage::apply_and_reassemble(data, &root, overlay) {
            assert!(
                back == data,
                "a layer of {} bytes reads back as {} other bytes",
                data.len(),
                back.len()
            );
        }
    }
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let allowed = ["overlay", "overlay.tar-split.gz", "vfs", "vfs.tar-split.gz"];
    assert!(
        names.iter().all(|n| allowed.contains(&n.as_str())),
        "written outside the layer: {names:?}"
    );
}
