//! Leader election on a coordination.k8s.io Lease, as client-go's
//! leaderelection does it: try to take or renew the Lease every retry period
//! with optimistic concurrency (resourceVersion); a standby judges expiry by
//! its own clock from when it last saw the Lease change; a leader that could
//! not renew within the renew deadline — shorter than the Lease duration —
//! stops all work *before* a standby may take over; a released Lease is
//! taken at once.
//!
//! Not kube-lease-manager: while renewals fail it keeps reporting
//! "leading" and retries, so a leader cut off from the API server went on
//! copying after its Lease expired and a standby took over — two leaders,
//! either able to roll a destination tag back to an old spec.

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How long a Lease is valid after its last renewal.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// A leader that has not renewed for this long stops working.
pub const RENEW_DEADLINE: Duration = Duration::from_secs(10);
/// How often the Lease is renewed, or a standby tries to take it.
pub const RETRY_PERIOD: Duration = Duration::from_secs(2);

/// One replica's side of the election for one Lease.
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    /// Another holder's Lease as last seen: its resourceVersion and when it was first seen so.
    seen: std::sync::Mutex<Option<(String, Instant)>>,
    /// Told when the Lease is released by its holder.
    released: Arc<tokio::sync::Notify>,
}

fn now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

impl Elector {
    /// An elector for Lease `name` in `namespace`, as `identity`.
    pub fn new(client: Client, namespace: &str, name: &str, identity: &str) -> Elector {
        Elector {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            identity: identity.to_string(),
            seen: std::sync::Mutex::new(None),
            released: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Take or renew the Lease once; whether this replica holds it now.
    async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..Default::default()
                },
                spec: Some(self.spec(None, 0)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                // Another replica created it first.
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let mine = holder.as_deref() == Some(self.identity.as_str());
        if !mine && holder.is_some() && !self.expired(&lease) {
            return Ok(false);
        }
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!mine);
        let acquired = if mine { spec.acquire_time.clone() } else { None };
        lease.spec = Some(self.spec(acquired, transitions));
        // The resourceVersion read above makes this a compare-and-swap: a
        // replica that changed the Lease meanwhile wins, this one gets 409.
        match self.api.replace(&self.name, &PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn spec(&self, acquired: Option<MicroTime>, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(LEASE_DURATION.as_secs() as i32),
            acquire_time: Some(acquired.unwrap_or_else(now)),
            renew_time: Some(now()),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }

    /// Whether another holder's Lease has gone unrenewed for its duration,
    /// by this replica's clock (clocks of different nodes may disagree).
    fn expired(&self, lease: &Lease) -> bool {
        let rv = lease.metadata.resource_version.clone().unwrap_or_default();
        let duration = lease
            .spec
            .as_ref()
            .and_then(|s| s.lease_duration_seconds)
            .map(|s| Duration::from_secs(s.max(1) as u64))
            .unwrap_or(LEASE_DURATION);
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        match &*seen {
            Some((v, at)) if *v == rv => at.elapsed() > duration,
            _ => {
                *seen = Some((rv, Instant::now()));
                false
            }
        }
    }

    /// Keep `leading` true exactly while this replica holds a Lease it
    /// renewed within [`RENEW_DEADLINE`]. Never returns.
    pub async fn campaign(&self, leading: tokio::sync::watch::Sender<bool>) {
        let mut renewed: Option<Instant> = None;
        loop {
            let deadline = renewed.map(|t| t + RENEW_DEADLINE);
            let attempt = tokio::select! {
                r = tokio::time::timeout(RETRY_PERIOD, self.try_acquire_or_renew()) => Some(r),
                _ = sleep_until(deadline) => None,
            };
            match attempt {
                Some(Ok(Ok(true))) => renewed = Some(Instant::now()),
                Some(Ok(Ok(false))) => renewed = None,
                Some(Ok(Err(e))) => {
                    tracing::warn!(error = %e, lease = %self.name, "taking or renewing the lease failed")
                }
                Some(Err(_)) => tracing::warn!(lease = %self.name, "taking or renewing the lease timed out"),
                None => {}
            }
            if renewed.is_some_and(|t| t.elapsed() >= RENEW_DEADLINE) {
                tracing::error!(
                    instance = %self.identity,
                    deadline = ?RENEW_DEADLINE,
                    "could not renew the lease in time: stopping all work before it expires"
                );
                renewed = None;
            }
            leading.send_if_modified(|l| {
                let now_leading = renewed.is_some();
                std::mem::replace(l, now_leading) != now_leading
            });
            let deadline = renewed.map(|t| t + RENEW_DEADLINE);
            tokio::select! {
                _ = tokio::time::sleep(RETRY_PERIOD) => {}
                _ = sleep_until(deadline) => {}
                _ = self.released.notified(), if renewed.is_none() => {
                    tracing::info!(instance = %self.identity, "the lease was released, trying to take it");
                }
            }
        }
    }

    /// Watch the Lease and wake a standby's [`Elector::campaign`] when its
    /// holder releases it (so that failover on SIGTERM takes no Lease duration).
    pub async fn watch_releases(&self) {
        use kube::runtime::WatchStreamExt as _;
        let config = watcher::Config::default().fields(&format!("metadata.name={}", self.name));
        let mut leases = std::pin::pin!(watcher(self.api.clone(), config).default_backoff().applied_objects());
        let mut held_by_other = false;
        while let Some(l) = leases.next().await {
            let Ok(l) = l else { continue };
            match l.spec.and_then(|s| s.holder_identity).filter(|h| !h.is_empty()) {
                Some(h) => held_by_other = h != self.identity,
                None if held_by_other => {
                    held_by_other = false;
                    self.released.notify_one();
                }
                None => {}
            }
        }
    }

    /// Give the Lease up if this replica holds it; whether it did.
    pub async fn release(&self) -> Result<bool, kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            return Ok(false);
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(false);
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(now());
        self.api.replace(&self.name, &PostParams::default(), &lease).await?;
        Ok(true)
    }
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
