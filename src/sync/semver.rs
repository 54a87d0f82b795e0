//! Semantic-version tags and constraints, as skopeo's `images-by-semver`
//! (Masterminds semver v3) reads them: lenient versions (`v1.2`, `3`),
//! `||` alternatives, `,`/space conjunctions, `=` `!=` `>` `>=` `<` `<=`
//! `~` `^`, wildcards (`1.2.x`, `*`) and hyphen ranges (`1.2 - 1.4`).
//! Pre-releases match only constraints that mention a pre-release.

use std::cmp::Ordering;

/// A parsed version; missing minor/patch parts are zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    pub pre: Vec<String>,
}

impl Version {
    /// Parse a tag such as `v1.2.3-rc.1+build`; `None` when it is not a version.
    pub fn parse(s: &str) -> Option<Version> {
        let s = s.strip_prefix('v').unwrap_or(s);
        let s = s.split_once('+').map_or(s, |(v, _)| v);
        let (core, pre) = match s.split_once('-') {
            Some((c, p)) if !p.is_empty() => (c, p.split('.').map(str::to_string).collect()),
            Some(_) => return None,
            None => (s, vec![]),
        };
        let nums: Vec<&str> = core.split('.').collect();
        if nums.is_empty()
            || nums.len() > 3
            || nums
                .iter()
                .any(|n| n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()))
        {
            return None;
        }
        let n = |i: usize| nums.get(i).map_or(Some(0), |x| x.parse().ok());
        Some(Version {
            major: n(0)?,
            minor: n(1)?,
            patch: n(2)?,
            pre,
        })
    }

    fn new(major: u64, minor: u64, patch: u64) -> Version {
        Version {
            major,
            minor,
            patch,
            pre: vec![],
        }
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, o: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(o.major, o.minor, o.patch))
            .then_with(|| match (self.pre.is_empty(), o.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => {
                    for (a, b) in self.pre.iter().zip(&o.pre) {
                        let c = match (a.parse::<u64>(), b.parse::<u64>()) {
                            (Ok(x), Ok(y)) => x.cmp(&y),
                            (Ok(_), Err(_)) => Ordering::Less,
                            (Err(_), Ok(_)) => Ordering::Greater,
                            (Err(_), Err(_)) => a.cmp(b),
                        };
                        if c != Ordering::Equal {
                            return c;
                        }
                    }
                    self.pre.len().cmp(&o.pre.len())
                }
            })
    }
}

/// One comparison: `version OP bound`.
#[derive(Debug, Clone)]
enum Cmp {
    Ge(Version),
    Gt(Version),
    Lt(Version),
    Le(Version),
    Eq(Version),
    Ne(Version),
    Any,
}

impl Cmp {
    fn ok(&self, v: &Version) -> bool {
        match self {
            Cmp::Ge(b) => v >= b,
            Cmp::Gt(b) => v > b,
            Cmp::Lt(b) => v < b,
            Cmp::Le(b) => v <= b,
            Cmp::Eq(b) => v == b,
            Cmp::Ne(b) => v != b,
            Cmp::Any => true,
        }
    }
}

/// A parsed constraint such as `>= 1.2, < 2 || ~3.1`.
#[derive(Debug, Clone)]
pub struct Constraint {
    /// Alternatives; each is a conjunction, with whether it mentions a pre-release.
    any_of: Vec<(Vec<Cmp>, bool)>,
}

/// A constraint that could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid semver constraint {0:?}")]
pub struct ConstraintError(pub String);

/// A partial version with wildcards: how many parts were given.
struct Partial {
    v: Version,
    parts: usize,
}

fn partial(s: &str) -> Option<Partial> {
    let s = s.strip_prefix('v').unwrap_or(s);
    if s == "*" || s.eq_ignore_ascii_case("x") {
        return Some(Partial {
            v: Version::new(0, 0, 0),
            parts: 0,
        });
    }
    let (core, rest) = match s.find(['-', '+']) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    };
    let mut parts = 0;
    let mut nums = [0u64; 3];
    for (i, p) in core.split('.').enumerate() {
        if i >= 3 {
            return None;
        }
        if p == "*" || p.eq_ignore_ascii_case("x") {
            break;
        }
        nums[i] = p.parse().ok()?;
        parts = i + 1;
    }
    let mut v = Version::new(nums[0], nums[1], nums[2]);
    if !rest.is_empty() {
        v = Version::parse(&format!("{}.{}.{}{rest}", nums[0], nums[1], nums[2]))?;
    }
    Some(Partial { v, parts })
}

/// The first version above everything matching `p` (for wildcards and ~).
fn bump(p: &Partial) -> Option<Version> {
    match p.parts {
        0 => None,
        1 => Some(Version::new(p.v.major + 1, 0, 0)),
        2 => Some(Version::new(p.v.major, p.v.minor + 1, 0)),
        _ => Some(Version::new(p.v.major, p.v.minor, p.v.patch + 1)),
    }
}

fn range(lo: Version, hi: Option<Version>) -> Vec<Cmp> {
    let mut out = vec![Cmp::Ge(lo)];
    if let Some(h) = hi {
        out.push(Cmp::Lt(h));
    }
    out
}

fn one(op: &str, ver: &str, whole: &str) -> Result<Vec<Cmp>, ConstraintError> {
    let bad = || ConstraintError(whole.to_string());
    let p = partial(ver).ok_or_else(bad)?;
    let exact = p.parts == 3 || !p.v.pre.is_empty();
    Ok(match op {
        "" | "=" | "==" if exact => vec![Cmp::Eq(p.v)],
        "" | "=" | "==" if p.parts == 0 => vec![Cmp::Any],
        "" | "=" | "==" => range(p.v.clone(), bump(&p)),
        "!=" if exact => vec![Cmp::Ne(p.v)],
        "!=" => return Err(bad()),
        ">" if exact => vec![Cmp::Gt(p.v)],
        ">" => vec![Cmp::Ge(bump(&p).ok_or_else(bad)?)],
        ">=" | "=>" => vec![Cmp::Ge(p.v)],
        "<" => vec![Cmp::Lt(p.v)],
        "<=" | "=<" if exact => vec![Cmp::Le(p.v)],
        "<=" | "=<" => match bump(&p) {
            Some(h) => vec![Cmp::Lt(h)],
            None => vec![Cmp::Any],
        },
        "~" | "~>" => {
            let hi = if p.parts <= 1 {
                bump(&Partial {
                    v: p.v.clone(),
                    parts: 1,
                })
            } else {
                bump(&Partial {
                    v: p.v.clone(),
                    parts: 2,
                })
            };
            range(p.v, hi)
        }
        "^" => {
            let hi = if p.v.major > 0 || p.parts <= 1 {
                Version::new(p.v.major + 1, 0, 0)
            } else if p.v.minor > 0 || p.parts == 2 {
                Version::new(0, p.v.minor + 1, 0)
            } else {
                Version::new(0, 0, p.v.patch + 1)
            };
            range(p.v, Some(hi))
        }
        _ => return Err(bad()),
    })
}

impl Constraint {
    /// Parse a constraint string.
    pub fn parse(s: &str) -> Result<Constraint, ConstraintError> {
        let bad = || ConstraintError(s.to_string());
        let mut any_of = vec![];
        for alt in s.split("||") {
            let mut cmps = vec![];
            let mut pre = false;
            let tokens: Vec<&str> = alt.split([',', ' ']).filter(|t| !t.is_empty()).collect();
            let mut i = 0;
            while i < tokens.len() {
                let mut tok = tokens[i].to_string();
                // Operators may stand apart from their version: ">= 1.2".
                if tok.chars().all(|c| "<>=!~^".contains(c)) && i + 1 < tokens.len() && tokens[i + 1] != "-" {
                    tok.push_str(tokens[i + 1]);
                    i += 1;
                }
                if i + 2 < tokens.len() && tokens[i + 1] == "-" {
                    let (lo, hi) = (partial(&tok).ok_or_else(bad)?, partial(tokens[i + 2]).ok_or_else(bad)?);
                    pre |= !lo.v.pre.is_empty() || !hi.v.pre.is_empty();
                    cmps.push(Cmp::Ge(lo.v));
                    cmps.extend(one("<=", tokens[i + 2], s)?);
                    i += 3;
                    continue;
                }
                let split = tok.find(|c: char| !"<>=!~^".contains(c)).ok_or_else(bad)?;
                let (op, ver) = tok.split_at(split);
                pre |= ver.contains('-');
                cmps.extend(one(op, ver, s)?);
                i += 1;
            }
            if cmps.is_empty() {
                return Err(bad());
            }
            any_of.push((cmps, pre));
        }
        Ok(Constraint { any_of })
    }

    /// Whether a tag's version satisfies the constraint.
    pub fn matches(&self, v: &Version) -> bool {
        self.any_of
            .iter()
            .any(|(cmps, pre)| (v.pre.is_empty() || *pre) && cmps.iter().all(|c| c.ok(v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(c: &str, v: &str) -> bool {
        Constraint::parse(c).unwrap().matches(&Version::parse(v).unwrap())
    }

    #[test]
    fn lenient_versions() {
        assert_eq!(Version::parse("v1.2"), Some(Version::new(1, 2, 0)));
        assert_eq!(Version::parse("3"), Some(Version::new(3, 0, 0)));
        assert!(Version::parse("latest").is_none());
        assert!(Version::parse("1.2.3.4").is_none());
        assert!(Version::parse("1.0.0-rc.1").unwrap() < Version::parse("1.0.0").unwrap());
        assert!(Version::parse("1.0.0-rc.2").unwrap() > Version::parse("1.0.0-rc.1").unwrap());
    }

    #[test]
    fn comparisons_and_ranges() {
        assert!(m(">= 3.12.0", "3.12.1"));
        assert!(!m(">= 3.12.0", "3.11.9"));
        assert!(m(">=1.2, <2", "1.9.9"));
        assert!(!m(">=1.2, <2", "2.0.0"));
        assert!(m("<1.0 || >=3", "3.1"));
        assert!(m("1.2 - 1.4", "1.4.9"));
        assert!(!m("1.2 - 1.4", "1.5.0"));
        assert!(m("!=1.2.3", "1.2.4"));
        assert!(m("1.2.x", "1.2.7"));
        assert!(!m("1.2.x", "1.3.0"));
        assert!(m("*", "9.9.9"));
    }

    #[test]
    fn tilde_caret_and_prereleases() {
        assert!(m("~1.2.3", "1.2.9"));
        assert!(!m("~1.2.3", "1.3.0"));
        assert!(m("^1.2.3", "1.9.0"));
        assert!(!m("^1.2.3", "2.0.0"));
        assert!(m("^0.2.3", "0.2.9"));
        assert!(!m("^0.2.3", "0.3.0"));
        assert!(!m(">=1.0", "1.1.0-beta.1"));
        assert!(m(">=1.1.0-alpha", "1.1.0-beta.1"));
        assert!(Constraint::parse(">>1").is_err());
        assert!(Constraint::parse("").is_err());
    }
}
