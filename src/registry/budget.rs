//! Per-host request budgets shared by every registry client of the process
//! (see `options::rate_limit`): a token bucket for requests, semaphores for
//! blob downloads and uploads (apart, so that a copy within one registry
//! holding a download can still upload), and a pause that a `429 Too Many
//! Requests` with `Retry-After` puts on the whole host, not just on the
//! request that got it.

use crate::options::rate_limit::RateLimitSettings;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// The budgets of every host, by registry name. Limits come from several
/// places (the operator's flags, each namespace's RegistryCredentials):
/// a host's budget is the tightest of them.
#[derive(Debug, Default)]
pub struct Budgets {
    hosts: Mutex<HashMap<String, Arc<HostBudget>>>,
    /// By where they were set (e.g. `flags`, a namespace), each host's limit.
    limits: Mutex<HashMap<String, HashMap<String, RateLimitSettings>>>,
}

impl Budgets {
    /// Replace the limits `source` sets (hosts it no longer names lose its limit).
    pub fn set_limits(&self, source: &str, limits: impl IntoIterator<Item = (String, RateLimitSettings)>) {
        let mut new: HashMap<String, RateLimitSettings> = HashMap::new();
        for (host, l) in limits {
            let e = new.entry(host).or_default();
            *e = e.tightest(l);
        }
        let mut all = self.limits.lock().unwrap_or_else(|p| p.into_inner());
        let old = all.insert(source.to_string(), new.clone()).unwrap_or_default();
        if old == new {
            return;
        }
        let hosts: std::collections::HashSet<&String> = old.keys().chain(new.keys()).collect();
        for host in hosts {
            let limit = all
                .values()
                .filter_map(|m| m.get(host).copied())
                .fold(RateLimitSettings::default(), RateLimitSettings::tightest);
            self.host(host).set_limit(limit);
        }
    }

    /// The tightest limit set for `host` by any source.
    pub fn limit(&self, host: &str) -> RateLimitSettings {
        let all = self.limits.lock().unwrap_or_else(|p| p.into_inner());
        all.values()
            .filter_map(|m| m.get(host).copied())
            .fold(RateLimitSettings::default(), RateLimitSettings::tightest)
    }

    /// The budget of `host` (made on first use, unlimited until configured).
    pub fn host(&self, host: &str) -> Arc<HostBudget> {
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        hosts
            .entry(host.to_string())
            .or_insert_with(|| Arc::new(HostBudget::new(host)))
            .clone()
    }

    /// The hosts a 429 to this process paused and that are paused still,
    /// with when each pause ends (pauses held for others left out).
    pub fn pauses(&self) -> Vec<(String, Instant)> {
        let hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let mut v: Vec<_> = hosts
            .values()
            .filter_map(|b| {
                let st = b.state.lock().unwrap_or_else(|p| p.into_inner());
                st.told_until.filter(|t| *t > now).map(|t| (b.host.clone(), t))
            })
            .collect();
        v.sort();
        v
    }

    /// Every host's throttling so far: (host, waits for the budget, 429 pauses).
    pub fn throttling(&self) -> Vec<(String, u64, u64)> {
        let hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<_> = hosts
            .values()
            .map(|b| {
                (
                    b.host.clone(),
                    b.waits.load(Ordering::Relaxed),
                    b.pauses.load(Ordering::Relaxed),
                )
            })
            .collect();
        v.sort();
        v
    }
}

/// One host's budget.
#[derive(Debug)]
pub struct HostBudget {
    host: String,
    state: Mutex<State>,
    /// Requests that had to wait for the budget.
    waits: AtomicU64,
    /// 429 answers that paused the host.
    pauses: AtomicU64,
}

#[derive(Debug)]
struct State {
    limit: RateLimitSettings,
    tokens: f64,
    refilled: Instant,
    paused_until: Option<Instant>,
    /// The end of the last pause a 429 to this process asked for.
    told_until: Option<Instant>,
    downloads: Option<Arc<Semaphore>>,
    uploads: Option<Arc<Semaphore>>,
}

/// Which blob transfers a permit is for.
#[derive(Debug, Clone, Copy)]
pub enum Transfer {
    Download,
    Upload,
}

impl HostBudget {
    fn new(host: &str) -> HostBudget {
        HostBudget {
            host: host.to_string(),
            state: Mutex::new(State {
                limit: RateLimitSettings::default(),
                tokens: 0.0,
                refilled: Instant::now(),
                paused_until: None,
                told_until: None,
                downloads: None,
                uploads: None,
            }),
            waits: AtomicU64::new(0),
            pauses: AtomicU64::new(0),
        }
    }

    fn set_limit(&self, limit: RateLimitSettings) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.limit == limit {
            return;
        }
        // New semaphores: transfers holding the old ones finish under it.
        let sem = |n: Option<u32>| n.map(|n| Arc::new(Semaphore::new(n as usize)));
        if st.limit.concurrent_blobs != limit.concurrent_blobs {
            st.downloads = sem(limit.concurrent_blobs);
            st.uploads = sem(limit.concurrent_blobs);
        }
        st.tokens = f64::from(limit.requests_per_second.unwrap_or(0));
        st.refilled = Instant::now();
        st.limit = limit;
    }

    /// Wait until one more request may be sent.
    pub async fn request(&self) {
        let mut waited = false;
        loop {
            let wait = {
                let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
                let now = Instant::now();
                match st.paused_until {
                    Some(t) if t > now => Some(t - now),
                    _ => match st.limit.requests_per_second {
                        None => None,
                        Some(rps) => {
                            let rate = f64::from(rps);
                            let since = now.duration_since(st.refilled).as_secs_f64();
                            st.tokens = (st.tokens + since * rate).min(rate);
                            st.refilled = now;
                            if st.tokens >= 1.0 {
                                st.tokens -= 1.0;
                                None
                            } else {
                                Some(Duration::from_secs_f64((1.0 - st.tokens) / rate))
                            }
                        }
                    },
                }
            };
            match wait {
                None => return,
                Some(d) => {
                    if !waited {
                        waited = true;
                        self.waits.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(host = %self.host, wait = ?d, "waiting for the registry's request budget");
                    }
                    tokio::time::sleep(d).await;
                }
            }
        }
    }

    /// A permit for one blob transfer, held while it runs (none without a limit).
    pub async fn transfer(&self, kind: Transfer) -> Option<OwnedSemaphorePermit> {
        let sem = {
            let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            match kind {
                Transfer::Download => st.downloads.clone(),
                Transfer::Upload => st.uploads.clone(),
            }
        }?;
        if sem.available_permits() == 0 {
            self.waits.fetch_add(1, Ordering::Relaxed);
        }
        sem.acquire_owned().await.ok()
    }

    /// The registry asked to slow down: no request to the host for `d`.
    pub fn pause(&self, d: Duration) {
        let until = Instant::now() + d;
        self.hold_until(until);
        {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if st.told_until.is_none_or(|t| t < until) {
                st.told_until = Some(until);
            }
        }
        self.pauses.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(host = %self.host, pause = ?d, "the registry asked to slow down (429): pausing every request to it");
    }

    /// No request to the host before `until` (a pause another process
    /// sharing the host was told of; not counted as this one's 429).
    pub fn hold_until(&self, until: Instant) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.paused_until.is_none_or(|t| t < until) {
            st.paused_until = Some(until);
        }
    }

    /// When the host's pause ends, if it is paused now.
    pub fn paused_until(&self) -> Option<Instant> {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.paused_until.filter(|t| *t > Instant::now())
    }
}

/// A `Retry-After` header's delay: seconds (an HTTP date is read as no delay
/// given; the caller's own backoff applies), at most five minutes.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    let secs: u64 = v.trim().parse().ok()?;
    Some(Duration::from_secs(secs.min(300)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn requests_wait_for_tokens_and_pauses() {
        let b = Budgets::default();
        let limit = |rps, blobs| RateLimitSettings {
            requests_per_second: Some(rps),
            concurrent_blobs: Some(blobs),
        };
        // The tightest of two sources; one source's update replaces its own.
        b.set_limits("flags", [("r".to_string(), limit(9, 1))]);
        b.set_limits("ns", [("r".to_string(), limit(3, 5))]);
        b.set_limits("ns", [("r".to_string(), limit(2, 5))]);
        let h = b.host("r");
        let start = tokio::time::Instant::now();
        for _ in 0..6 {
            h.request().await;
        }
        // A second's burst of 2, then 2 a second: the 6th at 2 s.
        assert_eq!(start.elapsed().as_secs(), 2);
        h.pause(Duration::from_secs(10));
        h.request().await;
        assert_eq!(start.elapsed().as_secs(), 12);
        let first = h.transfer(Transfer::Download).await;
        assert!(first.is_some());
        let up = h.transfer(Transfer::Upload).await;
        assert!(up.is_some(), "uploads have their own permits");
        let second = tokio::time::timeout(Duration::from_secs(1), h.transfer(Transfer::Download)).await;
        assert!(second.is_err(), "one download at a time");
        drop(first);
        assert!(h.transfer(Transfer::Download).await.is_some());
        assert_eq!(b.throttling(), vec![("r".to_string(), 6, 1)]);
        // Another process's pause holds requests too, but is not counted here.
        let until = tokio::time::Instant::now() + Duration::from_secs(5);
        b.host("other").hold_until(until);
        assert_eq!(b.host("other").paused_until(), Some(until));
        assert!(b.pauses().is_empty(), "only this process's own 429s are its pauses");
        b.host("r").pause(Duration::from_secs(1));
        assert_eq!(b.pauses().len(), 1);
        let held = tokio::time::Instant::now();
        b.host("other").request().await;
        assert_eq!(held.elapsed().as_secs(), 5);
        assert!(b.pauses().is_empty(), "the pause is over");
        assert_eq!(b.throttling()[0], ("other".to_string(), 1, 0));
        assert_eq!(b.throttling()[1], ("r".to_string(), 6, 2));
        let mut hm = reqwest::header::HeaderMap::new();
        hm.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after(&hm), Some(Duration::from_secs(7)));
    }
}
