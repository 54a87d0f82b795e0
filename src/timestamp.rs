//! RFC 3339 timestamps without a date library: UTC seconds for log lines
//! and status fields, and Go's `time.Time` JSON form where kopeo must write
//! the bytes containers/image writes.

/// Now, as `2026-01-02T03:04:05Z`.
pub fn now_rfc3339() -> String {
    format_unix(now_unix())
}

/// Seconds since the Unix epoch, now.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Format seconds since the epoch as RFC 3339 (UTC).
pub fn format_unix(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `t` as Go's encoding/json writes a `time.Time` in the local zone
/// (RFC 3339 with nanoseconds, trailing zeros dropped, `Z` for UTC), e.g.
/// `2026-12-02T02:10:47.5Z` or `2026-12-02T03:10:47.123456789+01:00`.
pub fn format_go_local(t: std::time::SystemTime) -> String {
    let (secs, nanos) = match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
        Err(e) => {
            let d = e.duration();
            let (s, n) = (d.as_secs() as i64, d.subsec_nanos());
            if n == 0 { (-s, 0) } else { (-s - 1, 1_000_000_000 - n) }
        }
    };
    format_go(secs, nanos, local_offset(secs))
}

/// Go's RFC 3339 form of `secs`.`nanos` in a zone `offset` seconds east of UTC.
fn format_go(secs: i64, nanos: u32, offset: i64) -> String {
    let utc = format_unix(secs + offset);
    let mut out = utc.trim_end_matches('Z').to_string();
    if nanos > 0 {
        out.push_str(format!(".{nanos:09}").trim_end_matches('0'));
    }
    if offset == 0 {
        out.push('Z');
    } else {
        let sign = if offset < 0 { '-' } else { '+' };
        let o = offset.abs();
        out.push_str(&format!("{sign}{:02}:{:02}", o / 3600, o % 3600 / 60));
    }
    out
}

/// The local zone's offset from UTC at `secs`, in seconds (the C library's, as Go's `time.Local`).
fn local_offset(secs: i64) -> i64 {
    let t: libc::time_t = secs;
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: localtime_r reads `t` and writes only `tm`, both valid for the call.
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if ok { tm.tm_gmtoff } else { 0 }
}

/// Parse `YYYY-MM-DDTHH:MM:SSZ` (fractions and offsets other than Z are not accepted).
pub fn parse_rfc3339(ts: &str) -> Option<i64> {
    let n = |r: std::ops::Range<usize>| ts.get(r).and_then(|s| s.parse::<i64>().ok());
    if ts.len() != 20 || !ts.ends_with('Z') {
        return None;
    }
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let yy = if m <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    Some(days * 86400 + n(11..13)? * 3600 + n(14..16)? * 60 + n(17..19)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for t in [0, 86_399, 951_782_400, 1_798_000_123] {
            assert_eq!(parse_rfc3339(&format_unix(t)), Some(t));
        }
        assert_eq!(format_unix(0), "1970-01-01T00:00:00Z");
        assert_eq!(parse_rfc3339("2000-02-29T00:00:00Z"), Some(951_782_400));
        assert!(parse_rfc3339("yesterday").is_none());
        assert_eq!(
            parse_rfc3339(&now_rfc3339()).map(|t| (now_unix() - t).abs() <= 1),
            Some(true)
        );
    }

    #[test]
    fn formats_times_as_go_does() {
        assert_eq!(format_go(1_798_000_123, 0, 0), "2026-12-23T04:28:43Z");
        assert_eq!(format_go(1_798_000_123, 500_000_000, 0), "2026-12-23T04:28:43.5Z");
        assert_eq!(format_go(0, 123_456_789, 0), "1970-01-01T00:00:00.123456789Z");
        assert_eq!(format_go(0, 0, 3600), "1970-01-01T01:00:00+01:00");
        assert_eq!(format_go(0, 10, -34_200), "1969-12-31T14:30:00.00000001-09:30");
        let at = std::time::UNIX_EPOCH + std::time::Duration::new(1_798_000_123, 7);
        assert_eq!(
            format_go_local(at),
            format_go(1_798_000_123, 7, local_offset(1_798_000_123))
        );
    }
}
