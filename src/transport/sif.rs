//! `sif:` (read only): a SingularityCE / Apptainer image (SIF) as a
//! one-layer OCI image, as containers/image's sif transport builds it: the
//! primary system partition (squashfs) is unpacked with `unsquashfs` and
//! packed again with GNU `tar` under `fakeroot` (the same commands, so the
//! layer is the same bytes), the definition file's `%environment` and
//! `%runscript` become `/podman/runscript`, and the config and manifest
//! are the JSON containers/image writes, byte for byte.
//!
//! The SIF layout (sylabs/sif, little-endian, packed): a 128-byte global
//! header (launch script, `SIF_MAGIC`, version, arch, UUID, times,
//! descriptor table offset and count) and 585-byte object descriptors.

use super::{BlobInfo, BlobStream, ImageSource, TransportError};
use crate::digest::Digest;
use crate::manifest::media;
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt as _;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

const HEADER: usize = 128;
const DESCRIPTOR: usize = 585;
const MAGIC: &[u8] = b"SIF_MAGIC\0";
const DATA_DEFFILE: i32 = 0x4001;
const DATA_PARTITION: i32 = 0x4004;
const FS_SQUASH: i32 = 1;
const PART_PRIMSYS: i32 = 2;
/// Bound on the definition file read into memory.
const DEFFILE_LIMIT: i64 = 1 << 20;
/// Where the injected runscript goes (containers/image's `injectedScriptTargetPath`).
const RUNSCRIPT: &str = "/podman/runscript";

/// What can go wrong reading a SIF file.
#[derive(Debug, thiserror::Error)]
pub enum SifError {
    #[error("loading SIF file: {0}")]
    Load(String),
    #[error("looking up rootfs from SIF file: {0}")]
    NoRootfs(&'static str),
    #[error("converting rootfs from SquashFS to Tarball: {0}")]
    Convert(String),
}

/// One object descriptor, the fields kopeo uses.
#[derive(Debug, Clone)]
struct Descriptor {
    data_type: i32,
    used: bool,
    offset: i64,
    size: i64,
    fs_type: i32,
    part_type: i32,
}

/// The parsed global header.
#[derive(Debug, Clone)]
struct Header {
    arch: [u8; 3],
    id: [u8; 16],
    modified_at: i64,
    descriptors_total: i64,
    descriptors_offset: i64,
}

fn le_i64(b: &[u8]) -> i64 {
    i64::from_le_bytes(b[..8].try_into().unwrap_or([0; 8]))
}

fn le_i32(b: &[u8]) -> i32 {
    i32::from_le_bytes(b[..4].try_into().unwrap_or([0; 4]))
}

fn parse_header(b: &[u8; HEADER]) -> Result<Header, SifError> {
    if &b[32..42] != MAGIC {
        return Err(SifError::Load("invalid SIF file: invalid magic".into()));
    }
    Ok(Header {
        arch: [b[45], b[46], b[47]],
        id: b[48..64].try_into().unwrap_or([0; 16]),
        modified_at: le_i64(&b[72..]),
        descriptors_total: le_i64(&b[88..]),
        descriptors_offset: le_i64(&b[96..]),
    })
}

fn parse_descriptor(b: &[u8]) -> Descriptor {
    // DataType 4, Used 1, ID/GroupID/LinkedID 12, Offset, Size, …; Extra at 201.
    let extra = &b[201..];
    Descriptor {
        data_type: le_i32(&b[0..]),
        used: b[4] != 0,
        offset: le_i64(&b[17..]),
        size: le_i64(&b[25..]),
        fs_type: le_i32(&extra[0..]),
        part_type: le_i32(&extra[4..]),
    }
}

/// sylabs/sif's header architecture codes, as Go architecture names.
fn go_arch(code: [u8; 3]) -> &'static str {
    match &code[..2] {
        b"01" => "386",
        b"02" => "amd64",
        b"03" => "arm",
        b"04" => "arm64",
        b"05" => "ppc64",
        b"06" => "ppc64le",
        b"07" => "mips",
        b"08" => "mipsle",
        b"09" => "mips64",
        b"10" => "mips64le",
        b"11" => "s390x",
        b"12" => "riscv64",
        b"13" => "loong64",
        _ => "unknown",
    }
}

fn uuid(id: &[u8; 16]) -> String {
    let h = hex::encode(id);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The `%environment` and `%runscript` lines of a definition file.
fn parse_def_file(text: &str) -> (Vec<String>, Vec<String>) {
    #[derive(PartialEq)]
    enum State {
        Other,
        Environment,
        Runscript,
    }
    let (mut env, mut run, mut state) = (vec![], vec![], State::Other);
    for line in text.lines() {
        let s = line.trim();
        if s == "%environment" {
            state = State::Environment;
        } else if s == "%runscript" {
            state = State::Runscript;
        } else if s.starts_with('%') {
            state = State::Other;
        } else if state == State::Environment {
            if !s.is_empty() && !s.starts_with('#') {
                env.push(s.to_string());
            }
        } else if state == State::Runscript {
            run.push(s.to_string());
        }
    }
    (env, run)
}

/// A SIF file opened as an image; the work directory holds the layer.
pub struct SifSource {
    name: String,
    _work: tempfile::TempDir,
    layer: PathBuf,
    layer_digest: Digest,
    config: Bytes,
    config_digest: Digest,
    manifest: Bytes,
}

impl SifSource {
    /// Read `path` and convert its root file system (runs `fakeroot`,
    /// `unsquashfs` and `tar`).
    pub async fn open(path: &Path) -> Result<SifSource, TransportError> {
        let p = path.to_path_buf();
        tokio::task::spawn_blocking(move || convert(&p))
            .await
            .map_err(|source| TransportError::Background {
                task: "converting a SIF image",
                source,
            })?
    }
}

fn load_err(e: std::io::Error) -> SifError {
    SifError::Load(e.to_string())
}

fn convert(path: &Path) -> Result<SifSource, TransportError> {
    let mut f = std::fs::File::open(path).map_err(load_err)?;
    let mut hb = [0u8; HEADER];
    f.read_exact(&mut hb).map_err(load_err)?;
    let h = parse_header(&hb)?;
    if !(0..=1 << 16).contains(&h.descriptors_total) || h.descriptors_offset < 0 {
        return Err(SifError::Load("invalid SIF file: descriptor table out of bounds".into()).into());
    }
    f.seek(SeekFrom::Start(h.descriptors_offset as u64)).map_err(load_err)?;
    let mut table = vec![0u8; h.descriptors_total as usize * DESCRIPTOR];
    f.read_exact(&mut table).map_err(load_err)?;
    let descriptors: Vec<Descriptor> = table
        .chunks(DESCRIPTOR)
        .map(parse_descriptor)
        .filter(|d| d.used)
        .collect();
    let file_len = f.metadata().map_err(load_err)?.len() as i64;
    let in_file =
        |d: &Descriptor| d.offset >= 0 && d.size >= 0 && d.offset.checked_add(d.size).is_some_and(|e| e <= file_len);

    let def = match descriptors.iter().find(|d| d.data_type == DATA_DEFFILE) {
        Some(d) if in_file(d) && d.size <= DEFFILE_LIMIT => {
            f.seek(SeekFrom::Start(d.offset as u64)).map_err(load_err)?;
            let mut b = vec![0u8; d.size as usize];
            f.read_exact(&mut b).map_err(load_err)?;
            Some(String::from_utf8_lossy(&b).into_owned())
        }
        Some(_) => return Err(SifError::Load("invalid SIF file: definition file out of bounds".into()).into()),
        None => None,
    };
    let (env, run) = def.as_deref().map(parse_def_file).unwrap_or_default();
    let (command, script) = match env.is_empty() && run.is_empty() {
        true => ("bash".to_string(), None),
        false => (
            RUNSCRIPT.to_string(),
            Some(format!("#!/bin/bash\n{}\n{}\n", env.join("\n"), run.join("\n"))),
        ),
    };
    let roots: Vec<&Descriptor> = descriptors
        .iter()
        .filter(|d| d.data_type == DATA_PARTITION && d.part_type == PART_PRIMSYS)
        .collect();
    let root = match roots.as_slice() {
        [] => return Err(SifError::NoRootfs("no objects found").into()),
        [one] => *one,
        _ => return Err(SifError::NoRootfs("multiple objects found").into()),
    };
    if root.fs_type != FS_SQUASH || !in_file(root) {
        return Err(SifError::Convert(format!("unsupported file system type {} or bad bounds", root.fs_type)).into());
    }

    let work = tempfile::Builder::new()
        .prefix("kopeo-sif-")
        .tempdir()
        .map_err(|e| SifError::Convert(format!("creating temp directory: {e}")))?;
    let squash = work.path().join("rootfs.squashfs");
    {
        f.seek(SeekFrom::Start(root.offset as u64)).map_err(load_err)?;
        let mut out = std::fs::File::create(&squash).map_err(|e| SifError::Convert(e.to_string()))?;
        let n = std::io::copy(&mut (&mut f).take(root.size as u64), &mut out)
            .map_err(|e| SifError::Convert(e.to_string()))?;
        if n != root.size as u64 {
            return Err(SifError::Convert("the SIF file ends inside its root file system".into()).into());
        }
    }
    let (tar, rootfs, script_path) = (
        work.path().join("rootfs.tar"),
        work.path().join("rootfs"),
        work.path().join("script"),
    );
    if let Some(s) = &script {
        let target = rootfs.join(RUNSCRIPT.trim_start_matches('/'));
        let write = || -> std::io::Result<()> {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::create_dir_all(target.parent().unwrap_or(&rootfs))?;
            std::fs::write(&target, s)?;
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))
        };
        write().map_err(|e| SifError::Convert(format!("writing {RUNSCRIPT}: {e}")))?;
    }
    // containers/image's very commands, so the layer is the same bytes.
    let conversion = format!(
        "unsquashfs -d {} -f {} && tar --acls --xattrs -C {} -cpf {} ./",
        rootfs.display(),
        squash.display(),
        rootfs.display(),
        tar.display()
    );
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::write(&script_path, format!("#!/bin/sh\n{conversion}\n"))
            .map_err(|e| SifError::Convert(e.to_string()))?;
        std::fs::set_permissions(&script_path, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| SifError::Convert(e.to_string()))?;
    }
    let out = std::process::Command::new("fakeroot")
        .arg("--")
        .arg(&script_path)
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => SifError::Convert(
                "converting image: exec: \"fakeroot\": executable file not found in $PATH (install fakeroot and squashfs-tools)"
                    .into(),
            ),
            _ => SifError::Convert(format!("converting image: {e}")),
        })?;
    if !out.status.success() {
        let mut all = out.stdout;
        all.extend(out.stderr);
        return Err(SifError::Convert(format!(
            "converting image: {}, output: {}",
            out.status,
            String::from_utf8_lossy(&all)
        ))
        .into());
    }
    let _ = std::fs::remove_dir_all(&rootfs);
    let _ = std::fs::remove_file(&squash);
    let (layer_digest, layer_size) = digest_file(&tar)?;

    let created = crate::timestamp::format_go_local(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(h.modified_at.max(0) as u64),
    );
    // Go's encoding/json of image-spec's Image, field for field (in order;
    // none of these strings holds a character Go would escape).
    let config = serde_json::json!({
        "created": created,
        "architecture": go_arch(h.arch),
        "os": "linux",
        "config": {"Cmd": [command]},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest.to_string()]},
        "history": [
            {
                "created": created,
                "created_by": format!("/bin/sh -c #(nop) ADD file:{} in /", layer_digest.hex()),
                "comment": format!("imported from SIF, uuid: {}", uuid(&h.id)),
            },
            {"created": created, "created_by": "/bin/sh -c #(nop) CMD [\"bash\"]", "empty_layer": true},
        ],
    });
    let config = crate::manifest::to_bytes(&config);
    let config_digest = Digest::sha256_of(&config);
    let manifest = crate::manifest::to_bytes(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": {"mediaType": media::OCI_CONFIG, "digest": config_digest.to_string(), "size": config.len()},
        "layers": [{"mediaType": media::OCI_LAYER, "digest": layer_digest.to_string(), "size": layer_size}],
    }));
    Ok(SifSource {
        name: format!("sif:{}", path.display()),
        _work: work,
        layer: tar,
        layer_digest,
        config: Bytes::from(config),
        config_digest,
        manifest: Bytes::from(manifest),
    })
}

fn digest_file(p: &Path) -> Result<(Digest, u64), TransportError> {
    let f = std::fs::File::open(p).map_err(TransportError::io("opening", p))?;
    let mut r = crate::digest::HashingReader::new(f);
    std::io::copy(&mut r, &mut std::io::sink()).map_err(TransportError::io("reading", p))?;
    Ok(r.finish())
}

#[async_trait]
impl ImageSource for SifSource {
    fn describe(&self) -> String {
        self.name.clone()
    }

    async fn manifest(&self, instance: Option<&Digest>) -> Result<(Bytes, String), TransportError> {
        if let Some(d) = instance {
            return Err(TransportError::NotAList {
                transport: "sif",
                digest: d.clone(),
            });
        }
        Ok((self.manifest.clone(), media::OCI_MANIFEST.to_string()))
    }

    async fn blob(&self, info: &BlobInfo) -> Result<BlobStream, TransportError> {
        if info.digest == self.config_digest {
            let body = self.config.clone();
            return Ok(futures::stream::once(async move { Ok(body) }).boxed());
        }
        if info.digest == self.layer_digest {
            return super::local::read_stream(&self.layer).await;
        }
        Err(TransportError::BlobNotInArchive {
            archive: self.name.clone(),
            digest: info.digest.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definition_files_give_environment_and_runscript_lines() {
        let (env, run) =
            parse_def_file("Bootstrap: x\n%environment\n  export A=1\n# no\n\n%runscript\n  echo hi\n%labels\n L 1\n");
        assert_eq!(env, ["export A=1"]);
        assert_eq!(run, ["echo hi"]);
        assert_eq!(go_arch(*b"04\0"), "arm64");
    }
}
