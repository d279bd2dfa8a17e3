//! UTC calendar arithmetic on millisecond timestamps: hour/day buckets, ISO
//! weeks (starting Monday) and months. Leap seconds do not exist in Unix time,
//! so a UTC day is always 86,400,000 ms.

use crate::types::Period;

/// One hour in milliseconds (size of an hourly rollup bucket).
pub const HOUR_MS: i64 = 3_600_000;
/// One UTC day in milliseconds (size of a daily rollup bucket).
pub const DAY_MS: i64 = 86_400_000;

/// Start of the bucket of `size` ms containing `t` (works for negative `t`).
pub fn floor_to(t: i64, size: i64) -> i64 {
    t.div_euclid(size) * size
}

/// The UTC calendar date of a timestamp (Unix ms; out-of-range values are
/// clamped to jiff's supported range, years -9999 to 9999).
fn date_of(ms: i64) -> jiff::civil::Date {
    let ts = jiff::Timestamp::from_millisecond(ms).unwrap_or(if ms < 0 {
        jiff::Timestamp::MIN
    } else {
        jiff::Timestamp::MAX
    });
    jiff::tz::Offset::UTC.to_datetime(ts).date()
}

/// Milliseconds of 00:00 UTC of a date.
fn midnight_ms(d: jiff::civil::Date) -> i64 {
    jiff::tz::Offset::UTC
        .to_timestamp(d.to_datetime(jiff::civil::Time::midnight()))
        .map(|t| t.as_millisecond())
        .unwrap_or(i64::MAX)
}

/// Milliseconds of 00:00 UTC of year-month-day; an error for a date that
/// does not exist (February 31).
pub fn utc_ms(y: i16, m: i8, d: i8) -> Result<i64, String> {
    jiff::civil::Date::new(y, m, d)
        .map(midnight_ms)
        .map_err(|e| format!("{y:04}-{m:02}-{d:02} is not a date: {e}"))
}

/// Parses a calendar day written `YYYY-MM-DD` (UTC) to the Unix ms of its
/// midnight. Days that do not exist are refused.
pub fn parse_day(s: &str) -> Result<i64, String> {
    let d: jiff::civil::Date = s
        .trim()
        .parse()
        .map_err(|e| format!("`{s}` is not a date; write YYYY-MM-DD ({e})"))?;
    Ok(midnight_ms(d))
}

/// Parses an RFC 3339 timestamp (`2026-12-24T22:00:00Z`, `...+01:00`) to
/// Unix ms. A time without an offset is refused: whose midnight would it be?
pub fn parse_timestamp(s: &str) -> Result<i64, String> {
    let t = s.trim();
    match t.parse::<jiff::Timestamp>() {
        Ok(ts) => Ok(ts.as_millisecond()),
        Err(_) if t.parse::<jiff::civil::DateTime>().is_ok() => Err(format!(
            "`{s}` has no time zone: end it with Z (UTC) or an offset like +01:00"
        )),
        Err(e) => Err(format!(
            "`{s}` is not a time: write e.g. \"2026-12-24T22:00:00Z\" ({e})"
        )),
    }
}

/// `YYYY-MM-DD` (UTC) of a timestamp.
pub fn format_day(ms: i64) -> String {
    date_of(ms).to_string()
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) of a timestamp.
pub fn format_utc(ms: i64) -> String {
    let rem = ms.rem_euclid(DAY_MS) / 1000;
    format!(
        "{} {:02}:{:02}:{:02}",
        format_day(ms),
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Start of the period (UTC day, ISO week starting Monday, month) containing `t`.
pub fn period_start(period: Period, t: i64) -> i64 {
    let day = t.div_euclid(DAY_MS);
    match period {
        Period::Day => day * DAY_MS,
        // 1970-01-01 was a Thursday: (day + 3) mod 7 is 0 on Mondays.
        Period::Week => (day - (day + 3).rem_euclid(7)) * DAY_MS,
        Period::Month => midnight_ms(date_of(t).first_of_month()),
    }
}

/// Start of the period following the one starting at `start`.
pub fn next_period(period: Period, start: i64) -> i64 {
    match period {
        Period::Day => start + DAY_MS,
        Period::Week => start + 7 * DAY_MS,
        Period::Month => midnight_ms(
            date_of(start)
                .first_of_month()
                .checked_add(jiff::Span::new().months(1))
                .unwrap_or(jiff::civil::Date::MAX),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_timestamps_parse_and_format() {
        assert_eq!(utc_ms(1970, 1, 1), Ok(0));
        assert_eq!(utc_ms(2024, 2, 29), Ok(1_709_164_800_000));
        assert!(utc_ms(2026, 2, 31).is_err());
        assert_eq!(parse_day("2024-02-29"), Ok(1_709_164_800_000));
        for bad in ["2026-02-31", "2026-13-01", "2026-1-1x", "", "yesterday"] {
            assert!(parse_day(bad).unwrap_err().contains("YYYY-MM-DD"), "{bad}");
        }
        assert_eq!(parse_timestamp("1970-01-01T00:00:01Z"), Ok(1000));
        assert_eq!(parse_timestamp("1970-01-01T01:00:00+01:00"), Ok(0));
        assert!(
            parse_timestamp("2026-12-24T22:00:00")
                .unwrap_err()
                .contains("no time zone")
        );
        assert!(
            parse_timestamp("2026-02-31T00:00:00Z")
                .unwrap_err()
                .contains("not a time")
        );
        assert_eq!(
            format_utc(1_709_164_800_000 + 3_723_000),
            "2024-02-29 01:02:03"
        );
        assert_eq!(format_day(-1), "1969-12-31");
        // Clamped to the last instant jiff represents.
        assert_eq!(format_day(i64::MAX), "9999-12-30");
    }

    #[test]
    fn periods() {
        let d = |y, m, dd| utc_ms(y, m, dd).unwrap();
        let t = d(2024, 2, 29) + 13 * HOUR_MS + 5;
        assert_eq!(period_start(Period::Day, t), d(2024, 2, 29));
        // 2024-02-29 is a Thursday; its ISO week starts Monday 2024-02-26.
        assert_eq!(period_start(Period::Week, t), d(2024, 2, 26));
        assert_eq!(period_start(Period::Month, t), d(2024, 2, 1));
        assert_eq!(next_period(Period::Month, d(2024, 2, 1)), d(2024, 3, 1));
        assert_eq!(next_period(Period::Month, d(2024, 12, 1)), d(2025, 1, 1));
        // A Monday is its own week start; a Sunday belongs to the week before.
        assert_eq!(period_start(Period::Week, d(2024, 1, 29)), d(2024, 1, 29));
        assert_eq!(
            period_start(Period::Week, d(2024, 2, 4) + DAY_MS - 1),
            d(2024, 1, 29)
        );
        // Before the epoch too.
        assert_eq!(period_start(Period::Week, -1), d(1969, 12, 29));
        assert_eq!(floor_to(-1, HOUR_MS), -HOUR_MS);
    }
}
