//! PostgreSQL versions as the blueprint names them: a major version
//! (`"16"`) or a least minor version (`"16.6"`). RDS upgrades minor
//! versions by itself (`auto_minor_version_upgrade`), so a pinned minor
//! would turn every later `up` into a downgrade that RDS refuses; the
//! blueprint therefore states what it needs, and anything newer within
//! the major version is in sync.

use std::cmp::Ordering;
use std::fmt;

/// `major` or `major.minor`, as written in the blueprint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Requirement {
    pub major: u32,
    pub minor: Option<u32>,
}

impl Requirement {
    /// `"16"` or `"16.6"`; anything else is `None`.
    pub fn parse(text: &str) -> Option<Requirement> {
        let mut parts = text.split('.');
        let major = number(parts.next()?)?;
        let minor = parts.next().map(number);
        if parts.next().is_some() {
            return None;
        }
        Some(Requirement {
            major,
            minor: match minor {
                Some(m) => Some(m?),
                None => None,
            },
        })
    }

    /// Whether an instance running `actual` needs no change. A newer major
    /// version counts too: RDS cannot go back, and `up` never tries.
    pub fn accepts(&self, actual: &str) -> bool {
        match Version::parse(actual) {
            Some(v) => match v.major.cmp(&self.major) {
                Ordering::Greater => true,
                Ordering::Equal => v.minor >= self.minor.unwrap_or(0),
                Ordering::Less => false,
            },
            None => false,
        }
    }

    /// Whether `actual` runs a newer major version than this one asks for:
    /// the one case `up` leaves alone although the blueprint says otherwise.
    pub fn is_behind(&self, actual: &str) -> bool {
        Version::parse(actual).is_some_and(|v| v.major > self.major)
    }

    /// The newest of `offered` that meets the requirement within its major
    /// version: what a new instance is created with.
    pub fn choose<'a>(&self, offered: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
        offered
            .into_iter()
            .filter_map(|text| Some((Version::parse(text)?, text)))
            .filter(|(v, _)| v.major == self.major && v.minor >= self.minor.unwrap_or(0))
            .max_by_key(|(v, _)| *v)
            .map(|(_, text)| text)
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.minor {
            Some(minor) => write!(f, "{}.{minor} or newer", self.major),
            None => write!(f, "{}", self.major),
        }
    }
}

/// A version RDS reports (`16.6`, `17.2`, `16.6-R2`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Version {
    major: u32,
    minor: u32,
}

impl Version {
    fn parse(text: &str) -> Option<Version> {
        let mut parts = text.split(['.', '-']);
        Some(Version {
            major: number(parts.next()?)?,
            minor: parts.next().map_or(Some(0), number)?,
        })
    }
}

fn number(text: &str) -> Option<u32> {
    (!text.is_empty() && text.chars().all(|c| c.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_major_or_a_least_minor_is_a_requirement() {
        assert_eq!(
            Requirement::parse("16"),
            Some(Requirement {
                major: 16,
                minor: None
            })
        );
        assert_eq!(
            Requirement::parse("16.6"),
            Some(Requirement {
                major: 16,
                minor: Some(6)
            })
        );
        for bad in ["", "16.", ".6", "16.6.1", "sixteen", "16.x"] {
            assert_eq!(Requirement::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_newer_minor_is_in_sync_and_an_older_one_is_not() {
        let want = Requirement::parse("16.4").unwrap();
        assert!(want.accepts("16.4"));
        assert!(want.accepts("16.8"), "AWS upgraded the minor version");
        assert!(!want.accepts("16.3"));
        assert!(!want.accepts("15.9"));
        // Never a downgrade: a newer major is left alone, and said so.
        assert!(want.accepts("17.2"));
        assert!(want.is_behind("17.2"));
        assert!(Requirement::parse("16").unwrap().accepts("16.1"));
    }

    #[test]
    fn a_new_instance_gets_the_newest_offered_version_that_fits() {
        let offered = ["15.10", "16.3", "16.6", "16.9", "17.2"];
        let want = |t: &str| Requirement::parse(t).unwrap();
        assert_eq!(want("16").choose(offered), Some("16.9"));
        assert_eq!(want("16.6").choose(offered), Some("16.9"));
        assert_eq!(want("16.10").choose(offered), None);
        assert_eq!(want("14").choose(offered), None);
    }
}
