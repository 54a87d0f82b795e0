//! Status conditions in the kstatus style (`Ready`, `Progressing`,
//! `Stalled`), so that Argo CD and Flux health checks understand them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One condition, as `metav1.Condition`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Ready`, `Progressing` or `Stalled`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Why, in CamelCase.
    pub reason: String,
    /// For humans.
    #[serde(default)]
    pub message: String,
    /// The generation this condition describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When `status` last changed (RFC 3339).
    pub last_transition_time: String,
}

/// Set `want` in `conditions`, keeping the transition time when the status did not change.
pub fn set(conditions: &mut Vec<Condition>, mut want: Condition) {
    match conditions.iter_mut().find(|c| c.type_ == want.type_) {
        Some(c) => {
            if c.status == want.status {
                want.last_transition_time = c.last_transition_time.clone();
            }
            *c = want;
        }
        None => conditions.push(want),
    }
}

/// Whether the condition `type_` is `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions.iter().any(|c| c.type_ == type_ && c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(t: &str, s: &str, time: &str) -> Condition {
        Condition {
            type_: t.into(),
            status: s.into(),
            reason: "R".into(),
            message: String::new(),
            observed_generation: Some(1),
            last_transition_time: time.into(),
        }
    }

    #[test]
    fn transition_time_changes_only_with_status() {
        let mut cs = vec![c("Ready", "False", "t1")];
        set(&mut cs, c("Ready", "False", "t2"));
        assert_eq!(cs[0].last_transition_time, "t1");
        set(&mut cs, c("Ready", "True", "t3"));
        assert_eq!(cs[0].last_transition_time, "t3");
        set(&mut cs, c("Stalled", "False", "t4"));
        assert_eq!(cs.len(), 2);
        assert!(is_true(&cs, "Ready") && !is_true(&cs, "Stalled"));
    }
}
