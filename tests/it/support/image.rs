//! Generated test images: OCI layouts with incompressible layers (gzip
//! streams of noise, or plain noise declared uncompressed), single- or
//! multi-platform, with OCI or Docker schema2 media types.

use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};

/// What to generate.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Size of each layer in bytes.
    pub layers: Vec<usize>,
    /// One image per architecture (`arm/v7` names a variant too); more
    /// than one makes a list.
    pub archs: Vec<&'static str>,
    /// Docker schema2 media types instead of OCI.
    pub docker: bool,
    /// Seed for layer contents (different seeds, different blobs).
    pub seed: u64,
    /// Seed of the first (base) layer when it should be shared with other images.
    pub base_seed: Option<u64>,
    /// Real gzip-compressed tar layers (each holding one file of noise), as
    /// a Docker daemon needs; otherwise layers are opaque noise.
    pub tar_layers: bool,
    /// Layers declared uncompressed (`application/vnd.oci.image.layer.v1.tar`):
    /// OCI destinations compress them on the way in.
    pub uncompressed: bool,
    /// With `uncompressed`: text that compresses well instead of noise (to
    /// tell compression levels apart).
    pub compressible: bool,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            layers: vec![200_000, 50_000],
            archs: vec!["amd64"],
            docker: false,
            seed: 1,
            base_seed: None,
            tar_layers: false,
            uncompressed: false,
            compressible: false,
        }
    }
}

/// A generated layout and what it holds.
#[derive(Debug, Clone)]
pub struct Built {
    pub layout: PathBuf,
    pub name: String,
    /// Digest of the top-level manifest (the list if there is one).
    pub digest: String,
    /// Layer digests of every image.
    pub layers: Vec<String>,
}

impl Built {
    /// `oci:LAYOUT:NAME`.
    pub fn reference(&self) -> String {
        format!("oci:{}:{}", self.layout.display(), self.name)
    }
}

/// `len` bytes of words drawn from a small vocabulary: compressible, and
/// more so the harder a compressor tries (as real files are).
pub fn text(len: usize, seed: u64) -> Vec<u8> {
    let words: Vec<Vec<u8>> = (0..64)
        .map(|i| format!("w{i:03}").repeat(1 + i % 3).into_bytes())
        .collect();
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&words[(x % 64) as usize]);
        out.push(if x.is_multiple_of(7) { b'\n' } else { b' ' });
    }
    out.truncate(len);
    out
}

/// Deterministic incompressible bytes.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The `org.opencontainers.image.ref.name` of each entry of a layout's
/// index.json, in order (empty for an unnamed entry).
pub fn ref_names(layout: &Path) -> Vec<String> {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).expect("index.json")).expect("index JSON");
    index["manifests"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| {
                    m["annotations"]["org.opencontainers.image.ref.name"]
                        .as_str()
                        .unwrap_or("")
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Store `data` as a blob of `layout`: its digest and size.
pub fn put(layout: &Path, data: &[u8]) -> (String, usize) {
    let hex = hex::encode(Sha256::digest(data));
    std::fs::write(layout.join("blobs/sha256").join(&hex), data).expect("writing blob");
    (format!("sha256:{hex}"), data.len())
}

/// A gzip-compressed tar holding one file; returns it and its diff_id.
pub fn tar_layer(name: &str, content: &[u8]) -> (Vec<u8>, String) {
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_cksum();
    tar.append_data(&mut h, name, content).expect("tar");
    let raw = tar.into_inner().expect("tar");
    let diff = format!("sha256:{}", hex::encode(Sha256::digest(&raw)));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &raw).expect("gzip");
    (gz.finish().expect("gzip"), diff)
}

/// Write the image described by `spec` into the OCI layout at `layout` under `name`.
pub fn build(layout: &Path, name: &str, spec: &Spec) -> Built {
    std::fs::create_dir_all(layout.join("blobs/sha256")).expect("creating layout");
    std::fs::write(layout.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).expect("oci-layout");
    let (mt_manifest, mt_config, mt_layer, mt_list) = if spec.docker {
        (
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.container.image.v1+json",
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "application/vnd.docker.distribution.manifest.list.v2+json",
        )
    } else {
        (
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.config.v1+json",
            "application/vnd.oci.image.layer.v1.tar+gzip",
            "application/vnd.oci.image.index.v1+json",
        )
    };
    let mt_layer = if spec.uncompressed {
        "application/vnd.oci.image.layer.v1.tar"
    } else {
        mt_layer
    };
    let mut all_layers = vec![];
    let mut instances = vec![];
    for (ai, platform_name) in spec.archs.iter().enumerate() {
        let (arch, variant) = match platform_name.split_once('/') {
            Some((a, v)) => (a, Some(v)),
            None => (*platform_name, None),
        };
        let mut layer_descs = vec![];
        let mut diff_ids = vec![];
        for (li, size) in spec.layers.iter().enumerate() {
            // The first layer is shared by every platform, as base layers often are.
            let seed = match (li, spec.base_seed) {
                (0, Some(b)) => b * 7919,
                (0, None) => spec.seed * 1000,
                _ => spec.seed * 1000 + (ai as u64 + 1) * 100 + li as u64,
            };
            let (d, n, diff_id) = if spec.tar_layers {
                let (gz, diff) = tar_layer(&format!("layer-{seed}.bin"), &noise(*size, seed));
                let (d, n) = put(layout, &gz);
                (d, n, diff)
            } else if spec.uncompressed {
                let data = if spec.compressible {
                    text(*size, seed)
                } else {
                    noise(*size, seed)
                };
                let (d, n) = put(layout, &data);
                (d.clone(), n, d)
            } else {
                // Noise in a real gzip stream (stored blocks): copiers that
                // check what a layer's bytes are (as containers/image does)
                // see the compression its media type declares.
                let raw = noise(*size, seed);
                let diff = format!("sha256:{}", hex::encode(Sha256::digest(&raw)));
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::none());
                std::io::Write::write_all(&mut gz, &raw).expect("gzip");
                let (d, n) = put(layout, &gz.finish().expect("gzip"));
                (d, n, diff)
            };
            layer_descs.push(serde_json::json!({"mediaType": mt_layer, "digest": d, "size": n}));
            diff_ids.push(diff_id);
            if !all_layers.contains(&d) {
                all_layers.push(d);
            }
        }
        let mut config = serde_json::json!({
            "created": "2026-01-02T03:04:05Z", "architecture": arch, "os": "linux",
            "config": {"Env": ["PATH=/bin", format!("SEED={}", spec.seed)], "Labels": {"kopeo.test": "yes"}},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        let mut platform = serde_json::json!({"architecture": arch, "os": "linux"});
        if let Some(v) = variant {
            config["variant"] = v.into();
            platform["variant"] = v.into();
        }
        let (cd, cn) = put(layout, config.to_string().as_bytes());
        let manifest = serde_json::json!({
            "schemaVersion": 2, "mediaType": mt_manifest,
            "config": {"mediaType": mt_config, "digest": cd, "size": cn},
            "layers": layer_descs,
        });
        let (md, mn) = put(layout, manifest.to_string().as_bytes());
        instances.push(serde_json::json!({"mediaType": mt_manifest, "digest": md, "size": mn, "platform": platform}));
    }
    let top = if instances.len() == 1 {
        let mut d = instances.remove(0);
        d.as_object_mut().map(|o| o.remove("platform"));
        d
    } else {
        let list = serde_json::json!({"schemaVersion": 2, "mediaType": mt_list, "manifests": instances});
        let (d, n) = put(layout, list.to_string().as_bytes());
        serde_json::json!({"mediaType": mt_list, "digest": d, "size": n})
    };
    let digest = top["digest"].as_str().unwrap_or_default().to_string();
    let mut entry = top;
    entry["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": name});
    let index_path = layout.join("index.json");
    let mut index: serde_json::Value = std::fs::read(&index_path)
        .ok()
        .and_then(|d| serde_json::from_slice(&d).ok())
        .unwrap_or_else(|| serde_json::json!({"schemaVersion": 2, "manifests": []}));
    if let Some(m) = index["manifests"].as_array_mut() {
        m.push(entry);
    }
    std::fs::write(&index_path, index.to_string()).expect("index.json");
    Built {
        layout: layout.to_path_buf(),
        name: name.to_string(),
        digest,
        layers: all_layers,
    }
}
