//! Expected status codes: `expect_status = [200, "204", "300-399", "2xx"]`.
//!
//! A pattern is one code, an inclusive range or a class (`2xx`). Parsing
//! happens at deserialization, so an invalid pattern is a config error
//! naming the list element; matching is a pure function.

use serde::Deserialize;
use std::fmt;

/// One accepted status code pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusPattern {
    lo: u16,
    hi: u16,
    /// Written as `Nxx` (kept for display).
    class: bool,
}

impl StatusPattern {
    /// Exactly `code`.
    pub fn code(code: u16) -> Self {
        Self {
            lo: code,
            hi: code,
            class: false,
        }
    }

    /// All codes of class `digit` (`2` → 200-299).
    pub fn class(digit: u16) -> Self {
        Self {
            lo: digit * 100,
            hi: digit * 100 + 99,
            class: true,
        }
    }

    /// Parses `200`, `200-299` or `2xx`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let bad = || {
            format!(
                "`{text}` is not a status code pattern; write a code (200), a range (\"200-299\") or a class (\"2xx\")"
            )
        };
        let lower = t.to_ascii_lowercase();
        if let Some(d) = lower.strip_suffix("xx") {
            let digit: u16 = d.parse().map_err(|_| bad())?;
            if !(1..=5).contains(&digit) || d.len() != 1 {
                return Err(format!("`{text}`: status classes are 1xx to 5xx"));
            }
            return Ok(Self::class(digit));
        }
        let (lo, hi) = match t.split_once('-') {
            Some((a, b)) => (
                a.trim().parse::<u16>().map_err(|_| bad())?,
                b.trim().parse::<u16>().map_err(|_| bad())?,
            ),
            None => {
                let c = t.parse::<u16>().map_err(|_| bad())?;
                (c, c)
            }
        };
        check_code(lo)?;
        check_code(hi)?;
        if lo > hi {
            return Err(format!(
                "`{text}`: the range runs backwards; write \"{hi}-{lo}\""
            ));
        }
        Ok(Self {
            lo,
            hi,
            class: false,
        })
    }

    /// Whether `status` matches.
    pub fn matches(&self, status: u16) -> bool {
        (self.lo..=self.hi).contains(&status)
    }
}

fn check_code(c: u16) -> Result<(), String> {
    if (100..=599).contains(&c) {
        Ok(())
    } else {
        Err(format!("{c} is not an HTTP status code (100-599)"))
    }
}

impl fmt::Display for StatusPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.class {
            write!(f, "{}xx", self.lo / 100)
        } else if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

impl<'de> Deserialize<'de> for StatusPattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Code(u64),
            Text(String),
        }
        let raw = Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "expected a status code (200), a range (\"200-299\") or a class (\"2xx\")",
            )
        })?;
        match raw {
            Raw::Code(c) => {
                let c = u16::try_from(c).unwrap_or(0);
                check_code(c).map_err(serde::de::Error::custom)?;
                Ok(Self::code(c))
            }
            Raw::Text(t) => Self::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

/// Whether `status` matches any of `patterns`.
pub fn status_matches(patterns: &[StatusPattern], status: u16) -> bool {
    patterns.iter().any(|p| p.matches(status))
}

/// The patterns as an operator wrote them: `2xx`, `200, 304`.
pub fn describe(patterns: &[StatusPattern]) -> String {
    patterns
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pats(json: &str) -> Vec<StatusPattern> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn codes_ranges_and_classes() {
        let p = pats(r#"[200, "204", "300-302", "4XX"]"#);
        for ok in [200, 204, 300, 301, 302, 400, 404, 499] {
            assert!(status_matches(&p, ok), "{ok}");
        }
        for no in [201, 299, 303, 399, 500, 100] {
            assert!(!status_matches(&p, no), "{no}");
        }
        assert_eq!(describe(&p), "200, 204, 300-302, 4xx");
    }

    #[test]
    fn default_class_is_2xx() {
        let p = [StatusPattern::class(2)];
        assert!(status_matches(&p, 200) && status_matches(&p, 299));
        assert!(!status_matches(&p, 301) && !status_matches(&p, 199));
        assert_eq!(describe(&p), "2xx");
    }

    #[test]
    fn bad_patterns_say_what_to_write() {
        assert!(
            StatusPattern::parse("abc")
                .unwrap_err()
                .contains("a class (\"2xx\")")
        );
        assert!(
            StatusPattern::parse("7xx")
                .unwrap_err()
                .contains("1xx to 5xx")
        );
        assert!(
            StatusPattern::parse("22xx")
                .unwrap_err()
                .contains("1xx to 5xx")
        );
        assert!(
            StatusPattern::parse("299-200")
                .unwrap_err()
                .contains("backwards")
        );
        assert!(
            StatusPattern::parse("200-999")
                .unwrap_err()
                .contains("100-599")
        );
        assert!(serde_json::from_str::<StatusPattern>("42").is_err());
        assert!(serde_json::from_str::<StatusPattern>("true").is_err());
    }
}
