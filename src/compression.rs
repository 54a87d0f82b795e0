//! Layer compression formats: what a media type declares, what a blob's
//! first bytes say, and the media type for each format. Transports and the
//! copy pipeline both use these; the codecs themselves are a stage of the
//! copy pipeline (`copy::compress`).

use crate::manifest::media;

/// A layer's compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// Default gzip level (see the module docs).
pub const DEFAULT_GZIP_LEVEL: i32 = 1;
/// Default zstd level (zstd's own default).
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

impl Compression {
    /// The compression a layer media type declares; `None` for non-layer types.
    pub fn of_media_type(mt: &str) -> Option<Compression> {
        match mt {
            media::DOCKER_LAYER_GZIP
            | media::DOCKER_LAYER_FOREIGN
            | media::OCI_LAYER_GZIP
            | media::OCI_LAYER_ND_GZIP => Some(Compression::Gzip),
            media::OCI_LAYER_ZSTD => Some(Compression::Zstd),
            media::DOCKER_LAYER_TAR | media::OCI_LAYER | media::OCI_LAYER_ND => Some(Compression::None),
            _ => None,
        }
    }

    /// Sniff the compression from a blob's first bytes.
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// The layer media type for this compression in a manifest of type `manifest`.
    pub fn layer_media_type(self, manifest: &str) -> &'static str {
        match (manifest, self) {
            (media::DOCKER_V2S2, Compression::None) => media::DOCKER_LAYER_TAR,
            (media::DOCKER_V2S2, _) => media::DOCKER_LAYER_GZIP,
            (_, Compression::None) => media::OCI_LAYER,
            (_, Compression::Gzip) => media::OCI_LAYER_GZIP,
            (_, Compression::Zstd) => media::OCI_LAYER_ZSTD,
        }
    }
}
