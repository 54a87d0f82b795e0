//! Retries of failed requests and transfers: `--retry-times`,
//! `--retry-delay` (`retry:` in specs).

use crate::duration::GoDuration;
use crate::registry::RetryOptions;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Retries of failed transfers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetrySettings {
    /// Extra attempts after the first (`--retry-times`).
    #[serde(default)]
    #[schemars(range(max = 100))]
    pub times: u32,
    /// Fixed delay between attempts, e.g. `2s`; exponential from 1s when unset (`--retry-delay`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<GoDuration>,
}

impl RetrySettings {
    /// As the registry client's retry policy.
    pub fn options(&self) -> RetryOptions {
        RetryOptions {
            times: self.times,
            delay: self.delay.map(|d| d.0),
        }
    }
}
