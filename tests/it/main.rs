//! Integration tests: kopeo against real registries (Distribution on
//! loopback), real files, and skopeo as an independent oracle. One binary,
//! many modules: linking is the slow part on small machines.

mod support;

mod archives;
mod atomic;
mod auth;
mod cli;
mod containers_storage;
mod encryption;
mod failures;
mod flags;
mod fuzz_corpora;
mod helm;
mod hostile;
mod interop;
mod kubectl;
mod local;
mod oci_delete;
mod operator;
mod parity;
mod rate_limit;
mod referrers;
mod registry_copy;
mod retries;
mod safety;
mod sif;
pub(crate) mod signing;
mod sync;
mod sync_prune;
mod sync_shard;
mod tarball;
