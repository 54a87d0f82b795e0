//! `/metrics` (Prometheus text format), `/healthz` and `/readyz` for the
//! operator.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A label set: what kind of resource, and how it ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    pub kind: String,
    pub result: String,
}

/// A label set: why a reconcile failed.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    pub reason: String,
}

/// A label set: a registry host, and what slowed requests to it down.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Throttle {
    pub host: String,
    /// `budget` (the host's rate limit) or `retry-after` (its 429 answers).
    pub cause: String,
}

/// Where a throttling count comes from ("" for this process, else a
/// shard), its host and its cause.
type CountKey = (String, String, String);

/// The operator's metrics.
pub struct Metrics {
    registry: Registry,
    /// Copies and syncs by kind and result.
    pub runs: Family<Outcome, Counter>,
    /// Bytes copied.
    pub bytes: Counter,
    /// Duration of copies and syncs, in seconds.
    pub duration: Family<Outcome, Histogram>,
    /// Copies and syncs running now.
    pub in_flight: Gauge,
    /// Reconcile errors by reason.
    pub errors: Family<Reason, Counter>,
    /// Whether this replica is the leader.
    pub leader: Gauge,
    /// Set once the controllers run.
    pub ready: AtomicBool,
    /// Requests held back per registry host, by cause.
    throttled: Family<Throttle, Counter>,
    budgets: std::sync::OnceLock<Arc<crate::registry::budget::Budgets>>,
    /// The last throttling count seen from each source (this process, or
    /// a shard of a sharded sync) per host and cause, and the pod that
    /// counted it: the counter grows by what is new since.
    counted: std::sync::Mutex<std::collections::HashMap<CountKey, (String, u64)>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("kopeo");
        let runs = Family::<Outcome, Counter>::default();
        let bytes = Counter::default();
        let duration =
            Family::<Outcome, Histogram>::new_with_constructor(|| Histogram::new(exponential_buckets(0.05, 2.0, 14)));
        let in_flight = Gauge::default();
        let errors = Family::<Reason, Counter>::default();
        let leader = Gauge::default();
        registry.register("runs", "Copies and syncs by kind and result", runs.clone());
        registry.register("copied_bytes", "Bytes copied", bytes.clone());
        registry.register("run_duration_seconds", "Duration of copies and syncs", duration.clone());
        registry.register("runs_in_flight", "Copies and syncs running now", in_flight.clone());
        registry.register("reconcile_errors", "Reconcile errors by reason", errors.clone());
        registry.register("leader", "1 when this replica leads", leader.clone());
        let throttled = Family::<Throttle, Counter>::default();
        registry.register(
            "registry_throttled",
            "Requests to a registry host held back, by cause (budget, retry-after)",
            throttled.clone(),
        );
        Metrics {
            registry,
            runs,
            bytes,
            duration,
            in_flight,
            errors,
            leader,
            ready: AtomicBool::new(false),
            throttled,
            budgets: std::sync::OnceLock::new(),
            counted: Default::default(),
        }
    }
}

impl Metrics {
    /// Record one finished copy or sync.
    pub fn record(&self, kind: &str, result: &str, seconds: f64, bytes: u64) {
        let o = Outcome {
            kind: kind.into(),
            result: result.into(),
        };
        self.runs.get_or_create(&o).inc();
        self.duration.get_or_create(&o).observe(seconds);
        self.bytes.inc_by(bytes);
    }

    /// Report `budgets`' throttling per host.
    pub fn watch_budgets(&self, budgets: Arc<crate::registry::budget::Budgets>) {
        let _ = self.budgets.set(budgets);
    }

    /// Count what a shard's pod reported of its throttling (`source` names
    /// the shard: its ImageSync and index; a new pod's counts start afresh).
    pub fn shard_throttling(
        &self,
        source: &str,
        pod: &str,
        counts: &[crate::operator::image_sync::throttle::HostThrottling],
    ) {
        for t in counts {
            self.count(source, pod, &t.host, "budget", t.budget);
            self.count(source, pod, &t.host, "retry-after", t.retry_after);
        }
    }

    fn count(&self, source: &str, pod: &str, host: &str, cause: &str, total: u64) {
        let mut counted = self.counted.lock().unwrap_or_else(|p| p.into_inner());
        let key = (source.to_string(), host.to_string(), cause.to_string());
        let last = counted.entry(key).or_insert_with(|| (pod.to_string(), 0));
        if last.0 != pod {
            *last = (pod.to_string(), 0);
        }
        if total > last.1 {
            self.throttled
                .get_or_create(&Throttle {
                    host: host.into(),
                    cause: cause.into(),
                })
                .inc_by(total - last.1);
            last.1 = total;
        }
    }

    /// The metrics in the OpenMetrics text format.
    pub fn render(&self) -> String {
        // The budgets count; the counters catch up at each scrape.
        for (host, waits, pauses) in self.budgets.get().map(|b| b.throttling()).unwrap_or_default() {
            self.count("", "", &host, "budget", waits);
            self.count("", "", &host, "retry-after", pauses);
        }
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Serve the endpoints on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let metrics = metrics.clone();
                async move {
                    let (code, body) = match req.uri().path() {
                        "/healthz" => (200, "ok".to_string()),
                        "/readyz" if metrics.ready.load(Ordering::SeqCst) => (200, "ok".to_string()),
                        "/readyz" => (503, "starting".to_string()),
                        "/metrics" => (200, metrics.render()),
                        _ => (404, "not found".to_string()),
                    };
                    let resp = hyper::Response::builder()
                        .status(code)
                        .header(
                            "content-type",
                            if body.starts_with('#') {
                                "application/openmetrics-text; version=1.0.0; charset=utf-8"
                            } else {
                                "text/plain"
                            },
                        )
                        .body(Full::new(Bytes::from(body)));
                    resp.map_err(|e| std::io::Error::other(e.to_string()))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::image_sync::throttle::HostThrottling;

    fn line(m: &Metrics, host: &str, cause: &str) -> Option<u64> {
        let want = format!("kopeo_registry_throttled_total{{host=\"{host}\",cause=\"{cause}\"}} ");
        m.render()
            .lines()
            .find_map(|l| l.strip_prefix(&want).and_then(|n| n.parse().ok()))
    }

    #[test]
    fn throttling_adds_this_process_and_every_shards_pods() {
        let m = Metrics::default();
        let budgets = Arc::new(crate::registry::budget::Budgets::default());
        m.watch_budgets(budgets.clone());
        budgets.host("r").pause(std::time::Duration::from_secs(1));
        let t = |budget, retry_after| {
            vec![HostThrottling {
                host: "r".into(),
                budget,
                retry_after,
            }]
        };
        m.shard_throttling("ns/s/0", "pod-a", &t(4, 1));
        m.shard_throttling("ns/s/1", "pod-b", &t(2, 0));
        assert_eq!(line(&m, "r", "retry-after"), Some(2));
        assert_eq!(line(&m, "r", "budget"), Some(6));
        // A later report of the same pod adds what is new; a shard's next
        // pod counts from zero; counters never go down.
        m.shard_throttling("ns/s/0", "pod-a", &t(5, 1));
        m.shard_throttling("ns/s/1", "pod-c", &t(1, 0));
        m.shard_throttling("ns/s/1", "pod-c", &t(1, 0));
        assert_eq!(line(&m, "r", "budget"), Some(8));
        assert_eq!(line(&m, "r", "retry-after"), Some(2));
    }
}
