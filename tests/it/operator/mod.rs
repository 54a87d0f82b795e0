//! The operator end to end: the real controllers against the test API
//! server, driven by kubectl and by `kopeo run`. Harness in
//! `support::cluster`; one file per concern.

mod atomic;
mod backoff;
mod chaos;
mod credentials;
mod encryption;
mod leader;
mod namespaces;
mod policy;
mod resources;
mod run_from_files;
mod running_copies;
mod safety;
mod signatures;
mod worker_keys;
mod workers;
