//! Durations as people write them: `250ms`, `30s`, `5m`, `1h 30m`, `2d`,
//! `1w` (parsed by `humantime`), or a bare number of seconds. Every value is
//! range-checked, so no input can overflow or panic: a duration is at most
//! [`MAX`] (a hundred years), and NaN, infinities and negative numbers are
//! refused by name.

use std::time::Duration;

/// The longest duration accepted anywhere (100 years): longer than any
/// interval, timeout or retention an operator means, short enough that
/// adding it to a timestamp in milliseconds cannot overflow.
pub const MAX: Duration = Duration::from_secs(100 * 365 * 86_400);

/// Why a duration was refused (the message says how to write one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DurationError(String);

const HOW: &str = "write e.g. `500ms`, `30s`, `5m`, `1h 30m` or `7d`";

/// Parses a duration string: units ms, s, m, h, d, w (and their long
/// names), several of them summed (`1h30m`), or a bare number of seconds.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(DurationError(format!("empty duration; {HOW}")));
    }
    if t.starts_with(|c: char| c.is_ascii_digit() || c == '.' || c == '-' || c == '+')
        && let Ok(secs) = t.parse::<f64>()
    {
        return from_secs_f64(secs);
    }
    if let Ok(secs) = t.to_ascii_lowercase().parse::<f64>() {
        // `nan`, `inf`, `infinity`
        return from_secs_f64(secs);
    }
    let d = humantime::parse_duration(t).map_err(|e| {
        use humantime::DurationError as E;
        let why = match e {
            E::UnknownUnit { unit, .. } => {
                format!("unknown unit `{unit}` (use ms, s, m, h, d or w)")
            }
            E::NumberOverflow => return too_long(text),
            E::NumberExpected(_) => "expected a number before each unit".into(),
            E::InvalidCharacter(_) => "unexpected character".into(),
            E::Empty => "empty".into(),
        };
        DurationError(format!("invalid duration `{text}`: {why}; {HOW}"))
    })?;
    check_max(d, text)
}

/// A number of seconds (a TOML number or a bare number in a string).
pub fn from_secs_f64(secs: f64) -> Result<Duration, DurationError> {
    if secs.is_nan() {
        return Err(DurationError(format!("a duration cannot be NaN; {HOW}")));
    }
    if secs.is_infinite() {
        return Err(DurationError(format!(
            "a duration cannot be infinite; {HOW}"
        )));
    }
    if secs < 0.0 {
        return Err(DurationError(format!(
            "a duration must not be negative (got {secs}); {HOW}"
        )));
    }
    if secs > MAX.as_secs_f64() {
        return Err(too_long(&secs.to_string()));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn check_max(d: Duration, text: &str) -> Result<Duration, DurationError> {
    if d > MAX { Err(too_long(text)) } else { Ok(d) }
}

fn too_long(text: &str) -> DurationError {
    DurationError(format!("duration `{text}` is too long (at most 100 years)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_sums() {
        assert_eq!(parse("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("1h 30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("2d").unwrap(), Duration::from_secs(172_800));
        assert_eq!(parse("1w").unwrap(), Duration::from_secs(604_800));
        assert_eq!(parse(" 10 ").unwrap(), Duration::from_secs(10));
        assert_eq!(parse("0.5").unwrap(), Duration::from_millis(500));
    }

    #[test]
    fn hostile_input_is_an_error_not_a_panic() {
        for bad in [
            "1e20",
            "99999999999999999999h",
            "18446744073709551615s",
            "nan",
            "NaN",
            "inf",
            "-inf",
            "-5",
            "-5s",
            "",
            "5 parsecs",
            "s",
            "1e30",
            "101y",
        ] {
            let e = parse(bad).expect_err(bad);
            assert!(!e.to_string().is_empty(), "{bad}");
        }
        assert!(parse("nan").unwrap_err().to_string().contains("NaN"));
        assert!(
            parse("-5")
                .unwrap_err()
                .to_string()
                .contains("must not be negative")
        );
        assert!(
            parse("5parsecs")
                .unwrap_err()
                .to_string()
                .contains("unknown unit `parsecs`")
        );
        assert!(
            parse("99999999999999999999h")
                .unwrap_err()
                .to_string()
                .contains("too long")
        );
        assert!(parse("1e20").unwrap_err().to_string().contains("too long"));
        assert!(
            from_secs_f64(f64::INFINITY)
                .unwrap_err()
                .to_string()
                .contains("infinite")
        );
    }

    /// A bounded property run in the normal test command (the fuzz target
    /// `fuzz/fuzz_targets/duration.rs` runs the same property for longer):
    /// random text over the alphabet durations are written in never
    /// panics and never exceeds [`MAX`].
    #[test]
    fn random_text_never_panics_or_exceeds_the_maximum() {
        let alphabet: Vec<char> = "0123456789..eE+- _smhdwyunµsecondminutehourNaNinf99"
            .chars()
            .collect();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..50_000 {
            let len = (next() % 24) as usize;
            let text: String = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            if let Ok(d) = parse(&text) {
                assert!(d <= MAX, "{text:?} → {d:?}");
            }
            let secs = f64::from_bits(next());
            if let Ok(d) = from_secs_f64(secs) {
                assert!(d <= MAX, "{secs} → {d:?}");
            }
        }
    }

    #[test]
    fn the_maximum_is_accepted() {
        assert_eq!(parse("36500d").unwrap(), MAX);
        assert!(parse("36501d").is_err());
    }
}
