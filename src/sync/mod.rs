//! `sync`: copy many images — whole repositories, catalogs, directories or a
//! YAML list — from one place to another. Planning (what to copy, where to)
//! is kept apart from execution (copying), so a plan can be printed
//! (`--dry-run`) and the operator's ImageSync can call the same code.

pub mod config;
mod destination;
mod execute;
mod plan;
pub mod prune;
pub mod semver;
pub mod shard;

pub use execute::{Action, ImageResult, SyncReport, execute};
pub use plan::{Plan, PlannedImage, SyncDestination, SyncSource, TagFilter, plan};

use crate::copy::CopyOptions;
use crate::registry::RegistryError;
use crate::transport::OpenOptions;

/// Images copied at once when not told otherwise.
pub const DEFAULT_PARALLEL_IMAGES: usize = 4;

/// How to sync; shared by the CLI flags and the operator's ImageSync spec.
#[derive(Clone, Default)]
pub struct SyncOptions {
    /// Options of each image copy.
    pub copy: CopyOptions,
    /// Keep the source's full name (registry and namespaces) under the destination.
    pub scoped: bool,
    /// Appended to every destination tag.
    pub append_suffix: String,
    /// Images copied at once; 0 means [`DEFAULT_PARALLEL_IMAGES`].
    pub parallel_images: usize,
    /// Carry on after a failed image (and fail at the end).
    pub keep_going: bool,
    /// Plan and check, copy nothing.
    pub dry_run: bool,
    /// Tags are immutable: skip any tag the destination already has.
    pub skip_existing: bool,
    /// Tags matching any of these are left out.
    pub exclude_tags: Vec<regex::Regex>,
    /// Keep only the newest N semver tags of each repository.
    pub keep_newest: Option<usize>,
    /// Delete destination tags of the synced repositories that the source
    /// no longer has (see [`prune`]).
    pub prune: bool,
    /// Run only this shard's part of the plan (see [`shard`]).
    pub shard: Option<shard::Shard>,
    /// How to open sources (YAML settings override per registry).
    pub src: OpenOptions,
    /// How to open destinations.
    pub dest: OpenOptions,
    /// Told when each image starts copying (for the CLI's log lines).
    pub on_start: Option<OnStart>,
    /// Told when each image is done, whatever became of it (for progress).
    pub on_done: Option<OnDone>,
}

/// A callback told when each image starts.
pub type OnStart = std::sync::Arc<dyn Fn(&ImageStart<'_>) + Send + Sync>;

/// A callback told each image's result and the plan's size.
pub type OnDone = std::sync::Arc<dyn Fn(&ImageResult, usize) + Send + Sync>;

/// An image about to be copied (or, with `dry_run`, that would be).
#[derive(Debug)]
pub struct ImageStart<'a> {
    /// 1-based position in the plan.
    pub n: usize,
    pub total: usize,
    pub source: &'a crate::reference::ImageReference,
    pub destination: &'a crate::reference::ImageReference,
    pub dry_run: bool,
}

/// Why a sync could not be planned.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("invalid tag regular expression {regex:?}{}: {source}", for_repo(.repository))]
    TagRegex {
        regex: String,
        /// The repository it was given for, if one.
        repository: Option<String>,
        #[source]
        source: regex::Error,
    },
    #[error("{source} for {repository}")]
    Semver {
        repository: String,
        #[source]
        source: semver::ConstraintError,
    },
    #[error("invalid source {reference:?}: {source}")]
    SourceReference {
        reference: String,
        #[source]
        source: crate::reference::ReferenceError,
    },
    #[error("invalid repository {repository:?} of {registry}: {source}")]
    Repository {
        registry: String,
        repository: String,
        #[source]
        source: crate::reference::ReferenceError,
    },
    #[error("catalog entry {repository:?}: {source}")]
    CatalogEntry {
        repository: String,
        #[source]
        source: crate::reference::ReferenceError,
    },
    #[error("invalid tag {tag:?} for {repository}: {source}")]
    Tag {
        repository: String,
        tag: String,
        #[source]
        source: crate::reference::ReferenceError,
    },
    /// The destination a source image maps to is not a valid reference.
    #[error(transparent)]
    Destination(#[from] crate::reference::ParseError),
    #[error("sync from 'dir' to 'dir' is not supported")]
    DirToDir,
    #[error("reading {}: {source}", .path.display())]
    ReadDir {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no images found in {}", .0.display())]
    NoImages(std::path::PathBuf),
}

fn for_repo(repository: &Option<String>) -> String {
    repository.as_ref().map(|r| format!(" for {r}")).unwrap_or_default()
}
