//! Go-style durations (`500ms`, `2s`, `1m30s`), as skopeo flags and the
//! operator's specs write them.

use std::borrow::Cow;
use std::time::Duration;

/// A duration written the Go way (`500ms`, `2s`, `1m30s`): parsed once from
/// a flag or a spec, a string in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct GoDuration(pub Duration);

/// A string that is not a Go-style duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {0:?} (examples: 500ms, 2s, 1m30s)")]
pub struct InvalidDuration(pub String);

impl std::str::FromStr for GoDuration {
    type Err = InvalidDuration;
    fn from_str(s: &str) -> Result<Self, InvalidDuration> {
        parse_duration(s).map(GoDuration)
    }
}

impl TryFrom<String> for GoDuration {
    type Error = InvalidDuration;
    fn try_from(s: String) -> Result<Self, InvalidDuration> {
        s.parse()
    }
}

impl From<GoDuration> for String {
    fn from(d: GoDuration) -> String {
        format_duration(d.0)
    }
}

/// `d` as Go prints short durations: whole milliseconds as `ms`, else `s`.
pub fn format_duration(d: Duration) -> String {
    if d.subsec_nanos().is_multiple_of(1_000_000) && !d.as_millis().is_multiple_of(1000) {
        format!("{}ms", d.as_millis())
    } else if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ns", d.as_nanos())
    }
}

impl schemars::JsonSchema for GoDuration {
    fn schema_name() -> Cow<'static, str> {
        "GoDuration".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "pattern": r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"})
    }
}

/// Parse a Go-style duration (`1s`, `500ms`, `1m30s`, a bare number of seconds is refused as in Go).
pub fn parse_duration(s: &str) -> Result<Duration, InvalidDuration> {
    let bad = || InvalidDuration(s.to_string());
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !c.is_ascii_digit() && c != '.').ok_or_else(bad)?;
        if num_end == 0 {
            return Err(bad());
        }
        let n: f64 = rest[..num_end].parse().map_err(|_| bad())?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += n * mult;
        rest = &rest[unit_end..];
    }
    // A duration beyond Duration's range is refused, not a panic.
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("3x").is_err());
        assert_eq!(
            parse_duration("99999999999999999999999h"),
            Err(InvalidDuration("99999999999999999999999h".into()))
        );
        for d in ["500ms", "2s", "90s"] {
            assert_eq!(String::from(d.parse::<GoDuration>().unwrap()), d);
        }
    }
}
