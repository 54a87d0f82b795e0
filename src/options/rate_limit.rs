//! A request budget for a registry host (`RegistryCredential`
//! `spec.rateLimit`, the operator's `--registry-rate-limit`): requests per
//! second and blobs transferred at once, honoured by every copy and sync the
//! process runs against that host.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How much of a registry host kopeo may use at once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitSettings {
    /// Requests per second (a second's worth may come in a burst).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub requests_per_second: Option<u32>,
    /// Blob downloads at once, and as many uploads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub concurrent_blobs: Option<u32>,
}

impl RateLimitSettings {
    /// The tighter of two limits, field by field.
    pub fn tightest(self, other: RateLimitSettings) -> RateLimitSettings {
        let min = |a: Option<u32>, b: Option<u32>| match (a, b) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        };
        RateLimitSettings {
            requests_per_second: min(self.requests_per_second, other.requests_per_second),
            concurrent_blobs: min(self.concurrent_blobs, other.concurrent_blobs),
        }
    }
}

/// `HOST=RPS[/BLOBS]`, the operator flag's form (`0` or empty: no limit).
impl std::str::FromStr for HostRateLimit {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid registry rate limit {s:?}: expected HOST=REQUESTS_PER_SECOND[/CONCURRENT_BLOBS]");
        let (host, rest) = s.split_once('=').ok_or_else(bad)?;
        if host.is_empty() || host.contains('/') {
            return Err(bad());
        }
        let (rps, blobs) = rest.split_once('/').unwrap_or((rest, ""));
        let num = |t: &str| -> Result<Option<u32>, String> {
            match t {
                "" | "0" => Ok(None),
                t => t.parse::<u32>().map(Some).map_err(|_| bad()),
            }
        };
        Ok(HostRateLimit {
            host: host.to_string(),
            limit: RateLimitSettings {
                requests_per_second: num(rps)?,
                concurrent_blobs: num(blobs)?,
            },
        })
    }
}

/// A rate limit for one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRateLimit {
    pub host: String,
    pub limit: RateLimitSettings,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_tightest() {
        let h: HostRateLimit = "reg.example:5000=20/4".parse().unwrap();
        assert_eq!(h.host, "reg.example:5000");
        assert_eq!(h.limit.requests_per_second, Some(20));
        assert_eq!(h.limit.concurrent_blobs, Some(4));
        let only: HostRateLimit = "reg=5".parse().unwrap();
        assert_eq!(only.limit.concurrent_blobs, None);
        for bad in ["reg", "=5", "reg=x", "reg/ns=5", "reg=5/y"] {
            assert!(bad.parse::<HostRateLimit>().is_err(), "{bad}");
        }
        let t = h.limit.tightest(RateLimitSettings {
            requests_per_second: Some(50),
            concurrent_blobs: Some(2),
        });
        assert_eq!((t.requests_per_second, t.concurrent_blobs), (Some(20), Some(2)));
    }
}
