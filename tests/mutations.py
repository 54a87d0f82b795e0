#!/usr/bin/env python3
"""A mutation pass over kopeo: deliberate one-line breakages, each of which
some test must catch. Not part of CI (each mutation rebuilds); run it after
changing tests or the code they guard:

    KUBECTL=... HELM=... python3 tests/mutations.py [M1 M7 ...]

Each mutation is applied to the working tree, the named tests run, and the
file restored (also on Ctrl-C). A mutation whose line no longer exists is
reported as stale: update its text to the code's new shape.
"""
import os, re, subprocess, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (id and what breaks, file, exact text, replacement, [it test filters], [lib test filters])
MUTATIONS = [
    ("M1 dropped digest check", "src/copy/blob.rs",
     "Some(a) if a != self.digest =>", "Some(a) if false && a != self.digest =>",
     ["registry_copy::corrupt", "local::failed_copy", "failures::archive", "operator::run_from_files::kopeo_run_names"], []),
    ("M2 a big blob skipped as if present", "src/copy/blob.rs",
     "if unchanged && dst.try_reuse_blob(info, from).await? {",
     "if unchanged && (info.size.unwrap_or(0) > 100_000 || dst.try_reuse_blob(info, from).await?) {",
     ["registry_copy::", "archives::skopeo"], []),
    ("M3 wrong layer media type converting to OCI", "src/manifest.rs",
     "(DOCKER_LAYER_GZIP | OCI_LAYER_GZIP, OCI_MANIFEST) => OCI_LAYER_GZIP,",
     "(DOCKER_LAYER_GZIP | OCI_LAYER_GZIP, OCI_MANIFEST) => DOCKER_LAYER_GZIP,",
     ["archives::format"], []),
    ("M4 --creds ignored", "src/cli/flags.rs",
     "return Ok(Some(Credentials::from_creds_flag(c)));", "let _ = c;\n        return Ok(None);",
     ["auth::htpasswd"], []),
    ("M5 not-found exits 1", "src/cli/mod.rs",
     "ExitCode::from(if e.not_found { 2 } else { 1 })", "ExitCode::from(if e.not_found { 1 } else { 1 })",
     ["local::several", "cli::missing"], []),
    ("M6 presigned query strings kept in messages", "src/registry/error.rs",
     "    u.set_query(None);\n    u.set_fragment(None);", "    u.set_fragment(None);",
     [], ["registry::error"]),
    ("M7 a failed sync copy swallowed", "src/sync/execute.rs",
     "            result.error = Some(e.to_string());\n        }\n    }\n    result",
     "            result.action = Action::Skipped;\n        }\n    }\n    result",
     ["sync::keep_going", "operator::run_from_files::kopeo_run_names"], []),
    ("M8 other tags dropped from index.json", "src/transport/oci.rs",
     "Some(i) => name(m).as_deref() != Some(i.as_str()),", "Some(_) => false,",
     ["local::several", "safety::concurrent"], []),
    ("M9 a configured certificate trusted without its checks", "src/registry/tls.rs",
     "valid_for(end_entity, server_name, now).map(|()| ServerCertVerified::assertion())",
     "Ok(ServerCertVerified::assertion())",
     ["parity::other_self_signed"], []),
    ("M10 ImageSync Ready despite failures", "src/operator/image_sync/reconcile.rs",
     "let ok = st.failed == 0;", "let ok = true;",
     ["operator::run_from_files::kopeo_run_names"], []),
    ("M11 delete sends another digest", "src/transport/docker.rs",
     "            Digest::sha256_of(&bytes)\n        }\n    };\n    client.delete_manifest",
     "            Digest::sha256_of(&bytes[1..])\n        }\n    };\n    client.delete_manifest",
     ["cli::delete"], []),
    ("M12 no cross-repository mount", "src/transport/docker.rs",
     "let mountable = from.filter(|s| s.registry == self.reference.domain() && s.repository != repo);",
     "let mountable = from.filter(|_| false);",
     ["registry_copy::copy_within", "auth::token_registry"], []),
    ("M13 a whole list taken for one instance", "src/copy/present.rs",
     "        && (!is_list_type(media_type) || opts.multi_arch == MultiArch::All)", "",
     ["registry_copy::a_copy_without_all"], []),
    ("M14 --image-parallel-copies ignored", "src/copy/layers.rs",
     ".buffered(parallel)", ".buffered(8)",
     ["flags::image_parallel"], []),
    ("M15 Referer sent to redirect targets", "src/registry/tls.rs",
     ".referer(false)", ".referer(true)",
     ["safety::presigned"], []),
    ("M16 delete of a missing image exits 2", "src/transport/docker.rs",
     "TransportError::DeleteNotFound(reference.to_string())", "e",
     ["failures::delete"], []),
    ("M17 a refused mount uploads a present blob", "src/transport/docker.rs",
     "                    if self.client.head_blob(repo, &info.digest, true).await?.is_some() {\n                        return Ok(true);\n                    }\n                    if let Some(url) = url {",
     "                    if let Some(url) = url {",
     ["registry_copy::a_refused_mount"], []),
    ("M18 a sync HEADs both sides for images the mirror lacks", "src/sync/execute.rs",
     "        destination_absent: absent,\n", "",
     ["sync::a_sync_into_an_empty_mirror"], []),
    ("M19 a blob this operation put is checked again", "src/transport/docker.rs",
     "        if self.client.knows_blob(repo, &info.digest) {\n            return Ok(true);\n        }\n", "",
     ["sync::a_sync_into_an_empty_mirror"], []),
    ("M20 decompression in one step per input chunk", "src/copy/compress.rs",
     "const GUNZIP_PIECE: usize = DECODE_STEP / 1032;", "const GUNZIP_PIECE: usize = 1 << 30;",
     ["hostile::decompression_bombs"], ["copy::compress::tests::a_decompression_bomb"]),
    ("M21 negative descriptor sizes accepted", "src/manifest.rs",
     "    if size < 0 {", "    if size < -1_000_000 {",
     ["hostile::hostile_layouts"], ["manifest::tests::a_negative_size"]),
    ("M22 an oci: commit trusts blobs a delete took", "src/transport/oci.rs",
     "        super::oci_delete::check_complete(&self.blobs, &desc.digest).await?;\n", "",
     [], ["transport::oci_delete::tests"]),
    ("M23 a layout delete takes a shared blob", "src/transport/oci_delete.rs",
     "    for d in gone.difference(&keep) {", "    for d in gone.iter() {",
     ["oci_delete::"], []),
    ("M24 a re-uploaded blob after a restart", "src/transport/docker.rs",
     "        } else if self.client.head_blob(repo, &info.digest, true).await?.is_some() {\n            return present();\n        }",
     "        }",
     ["operator::chaos"], []),
    ("M25 a sigstore signature accepted whoever made it", "src/signature/sigstore.rs",
     "    let Some(by) = by else {", "    let Some(by) = by.or(keys.first()) else {",
     ["signing::registry::sigstore"], []),
    ("M26 a simple signature by any key in the ring accepted", "src/signature/mod.rs",
     "    let key = if accepted.iter().any(|a| upper(a) == v.signing_key) {",
     "    let key = if true || accepted.iter().any(|a| upper(a) == v.signing_key) {",
     ["signing::simple::standalone"], []),
    ("M27 the policy gate skipped", "src/copy/signatures.rs",
     "    match p.check(&ctx.policy_image(manifest, signatures)) {",
     "    match Ok::<_, crate::signature::policy::Rejection>(crate::signature::policy::Verdict::default()) {",
     ["signing::policy::copy_signs", "signing::registry::registry_signatures", "signing::registry::sync"], []),
    ("M28 a signed image converted anyway", "src/copy/signatures.rs",
     "    (!carried.is_empty() && !opts.preserve_digests).then(|| CopyOptions {",
     "    (false && !carried.is_empty() && !opts.preserve_digests).then(|| CopyOptions {",
     ["signing::policy::signed_images"], []),
    ("M29 the signed identity not checked", "src/signature/policy/eval.rs",
     "    if matches(identity, img.docker_reference.as_ref(), signed) {",
     "    if true || matches(identity, img.docker_reference.as_ref(), signed) {",
     ["signing::policy::copy_signs", "signing::registry::sigstore"], ["signature::"]),
    ("M30 a tampered layer's HMAC not checked", "src/encryption/cipher.rs",
     "if aws_lc_rs::constant_time::verify_slices_are_equal(tag.as_ref(), &st.expected).is_err() {",
     "if false && aws_lc_rs::constant_time::verify_slices_are_equal(tag.as_ref(), &st.expected).is_err() {",
     ["encryption::failures::wrong_keys"], ["encryption::cipher"]),
    ("M31 chosen layers left in plaintext", "src/copy/plan.rs",
     "            } else if chosen {\n                Crypt::Encrypt",
     "            } else if chosen && false {\n                Crypt::Encrypt",
     ["encryption::interop::kopeo_encrypts", "encryption::interop::skopeo_encrypts"], []),
    ("M32 any marker taken for an earlier encrypted copy", "src/copy/encrypted_from.rs",
     "(annotations?.get(ANNOTATION)? == marker).then(",
     "(annotations?.get(ANNOTATION).is_some() || marker.is_empty()).then(",
     ["encryption::interop::an_encrypted_copy"], []),
]


def run(cmd):
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)


def failed_tests(out):
    return re.findall(r"^test (\S+) \.\.\. FAILED$", out, re.M) + re.findall(r"^(\S+) --- FAILED$", out, re.M)


def main():
    only = sys.argv[1:]
    missed = 0
    for name, path, old, new, it, lib in MUTATIONS:
        if only and name.split()[0] not in only:
            continue
        full = os.path.join(ROOT, path)
        src = open(full).read()
        if src.count(old) != 1:
            print(f"{name}: STALE (the line is not in {path} once)", flush=True)
            missed += 1
            continue
        open(full, "w").write(src.replace(old, new))
        try:
            b = run(["cargo", "build", "--tests", "-q"])
            if b.returncode != 0:
                print(f"{name}: DOES NOT BUILD\n{b.stderr[-800:]}", flush=True)
                missed += 1
                continue
            caught = []
            if it:
                caught += failed_tests(run(["cargo", "test", "--test", "it", "--"] + it).stdout)
            if lib:
                caught += failed_tests(run(["cargo", "test", "--lib", "--"] + lib).stdout)
            print(f"{name}: {'caught by ' + ', '.join(caught) if caught else 'MISSED'}", flush=True)
            missed += not caught
        finally:
            open(full, "w").write(src)
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
