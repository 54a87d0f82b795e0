//! What the operator remembers per resource, in memory and bounded: when
//! this process last brought it up to date (to skip reconciles that cannot
//! change anything), and its consecutive failures (for backoff).

use super::context::Context;
use kube::{Resource, ResourceExt};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The per-resource memory.
#[derive(Default)]
pub(crate) struct Memory {
    /// Consecutive failures per object, for exponential backoff.
    failures: Mutex<HashMap<String, Failures>>,
    /// When this process last brought each resource (by UID) up to date, at which generation.
    verified: Mutex<HashMap<String, (Option<i64>, Instant)>>,
    /// When a namespace's RegistryCredentials or their Secrets last changed.
    credentials: Mutex<HashMap<String, Instant>>,
}

impl Memory {
    /// Note that namespace `ns`'s credentials (or their Secrets) changed now.
    pub(crate) fn credentials_changed(&self, ns: &str) {
        let mut c = self.credentials.lock().unwrap_or_else(|p| p.into_inner());
        if c.len() >= REMEMBERED && !c.contains_key(ns) {
            c.clear();
        }
        c.insert(ns.to_string(), Instant::now());
    }

    fn credentials_changed_since(&self, ns: &str, t: Instant) -> bool {
        let c = self.credentials.lock().unwrap_or_else(|p| p.into_inner());
        c.get(ns).is_some_and(|at| *at > t)
    }
}

/// Entries kept per in-memory map before it is emptied: deleted resources
/// leave entries behind, and forgetting costs only a re-check (or a reset
/// backoff) per resource.
const REMEMBERED: usize = 100_000;

/// Note that this process brought `obj` up to date at its generation (or
/// forget it, when it is not). Keyed by UID: a resource deleted and created
/// again under its name starts afresh.
pub(crate) fn remember<K: Resource>(ctx: &Context, obj: &K, up_to_date: bool) {
    let mut verified = ctx.memory.verified.lock().unwrap_or_else(|p| p.into_inner());
    if !up_to_date {
        verified.remove(&memory_key(obj));
        return;
    }
    if verified.len() >= REMEMBERED {
        verified.clear();
    }
    verified.insert(memory_key(obj), (obj.meta().generation, Instant::now()));
}

/// How long ago this process brought `obj` up to date at its current generation.
pub(crate) fn remembered<K: Resource>(ctx: &Context, obj: &K) -> Option<Duration> {
    let verified = ctx.memory.verified.lock().unwrap_or_else(|p| p.into_inner());
    let (generation, at) = verified.get(&memory_key(obj))?;
    (*generation == obj.meta().generation).then(|| at.elapsed())
}

fn memory_key<K: Resource>(obj: &K) -> String {
    obj.meta()
        .uid
        .clone()
        .unwrap_or_else(|| format!("{:?}/{}", obj.namespace(), obj.name_any()))
}

/// Record whether `key`'s run at `generation` failed; the wait before the
/// next attempt if it did: 1 s, 2 s, 4 s, … capped at 5 minutes (never a
/// hot loop).
pub(crate) fn backoff(ctx: &Context, key: &str, generation: Option<i64>, failed: bool) -> Option<Duration> {
    ctx.memory.record_run(key, generation, failed)
}

/// How long `key` (in namespace `ns`) must still wait after its last
/// failure at `generation`: zero once the backoff has passed, or when the
/// namespace's credentials changed since (a fixed Secret is tried at once);
/// `None` when it did not fail.
pub(crate) fn failure_wait(ctx: &Context, ns: &str, key: &str, generation: Option<i64>) -> Option<Duration> {
    ctx.memory.failure_wait(ns, key, generation)
}

impl Memory {
    /// [`backoff`] on this memory.
    fn record_run(&self, key: &str, generation: Option<i64>, failed: bool) -> Option<Duration> {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if !failed {
            f.remove(key);
            return None;
        }
        if f.len() >= REMEMBERED && !f.contains_key(key) {
            f.clear();
        }
        let e = f.entry(key.to_string()).or_insert(Failures {
            count: 0,
            at: Instant::now(),
            generation,
        });
        if e.generation != generation {
            e.count = 0;
        }
        e.count += 1;
        e.at = Instant::now();
        e.generation = generation;
        Some(e.delay())
    }

    /// [`failure_wait`] on this memory.
    fn failure_wait(&self, ns: &str, key: &str, generation: Option<i64>) -> Option<Duration> {
        let f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let e = f.get(key).filter(|e| e.generation == generation)?;
        if self.credentials_changed_since(ns, e.at) {
            return Some(Duration::ZERO);
        }
        Some(e.delay().saturating_sub(e.at.elapsed()))
    }
}

/// Consecutive failures of one resource.
pub(crate) struct Failures {
    count: u32,
    at: Instant,
    generation: Option<i64>,
}

impl Failures {
    fn delay(&self) -> Duration {
        Duration::from_secs((1u64 << self.count.saturating_sub(1).min(8)).min(300))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_waits_out_its_backoff_unless_its_namespaces_credentials_change() {
        let m = Memory::default();
        let (key, other) = ("ImageSync/team/s", "ImageSync/other/s");
        assert_eq!(m.failure_wait("team", key, Some(1)), None, "no failure, no wait");
        assert_eq!(m.record_run(key, Some(1), true), Some(Duration::from_secs(1)));
        assert_eq!(m.record_run(key, Some(1), true), Some(Duration::from_secs(2)));
        assert_eq!(m.record_run(other, Some(1), true), Some(Duration::from_secs(1)));
        assert!(
            m.failure_wait("team", key, Some(1))
                .is_some_and(|w| w > Duration::from_millis(1500))
        );
        // A new generation is a new start: its first failure waits 1 s again.
        assert_eq!(m.failure_wait("team", key, Some(2)), None);
        // A Secret or RegistryCredential of the namespace changed: try at once,
        // there and nowhere else.
        m.credentials_changed("team");
        assert_eq!(m.failure_wait("team", key, Some(1)), Some(Duration::ZERO));
        assert!(m.failure_wait("other", other, Some(1)).is_some_and(|w| !w.is_zero()));
        // That try fails too: the change is now older than the failure, and it waits again.
        assert_eq!(m.record_run(key, Some(1), true), Some(Duration::from_secs(4)));
        assert!(m.failure_wait("team", key, Some(1)).is_some_and(|w| !w.is_zero()));
        // A success forgets the failures.
        assert_eq!(m.record_run(key, Some(1), false), None);
        assert_eq!(m.failure_wait("team", key, Some(1)), None);
    }
}
