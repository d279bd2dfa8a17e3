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

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Date (year, month 1-12, day 1-31) of a day number since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Milliseconds of 00:00 UTC of a date.
pub fn utc_ms(y: i64, m: u32, d: u32) -> i64 {
    days_from_civil(y, m, d) * DAY_MS
}

/// Start of the period (UTC day, ISO week starting Monday, month) containing `t`.
pub fn period_start(period: Period, t: i64) -> i64 {
    let day = t.div_euclid(DAY_MS);
    match period {
        Period::Day => day * DAY_MS,
        // 1970-01-01 was a Thursday: (day + 3) mod 7 is 0 on Mondays.
        Period::Week => (day - (day + 3).rem_euclid(7)) * DAY_MS,
        Period::Month => {
            let (y, m, _) = civil_from_days(day);
            utc_ms(y, m, 1)
        }
    }
}

/// Start of the period following the one starting at `start`.
pub fn next_period(period: Period, start: i64) -> i64 {
    match period {
        Period::Day => start + DAY_MS,
        Period::Week => start + 7 * DAY_MS,
        Period::Month => {
            let (y, m, _) = civil_from_days(start.div_euclid(DAY_MS));
            if m == 12 {
                utc_ms(y + 1, 1, 1)
            } else {
                utc_ms(y, m + 1, 1)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_roundtrip() {
        for z in -800_000..800_000i64 {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(utc_ms(1970, 1, 1), 0);
        assert_eq!(utc_ms(2024, 2, 29), 1_709_164_800_000);
    }

    #[test]
    fn periods() {
        let t = utc_ms(2024, 2, 29) + 13 * HOUR_MS + 5;
        assert_eq!(period_start(Period::Day, t), utc_ms(2024, 2, 29));
        // 2024-02-29 is a Thursday; its ISO week starts Monday 2024-02-26.
        assert_eq!(period_start(Period::Week, t), utc_ms(2024, 2, 26));
        assert_eq!(period_start(Period::Month, t), utc_ms(2024, 2, 1));
        assert_eq!(
            next_period(Period::Month, utc_ms(2024, 2, 1)),
            utc_ms(2024, 3, 1)
        );
        assert_eq!(
            next_period(Period::Month, utc_ms(2024, 12, 1)),
            utc_ms(2025, 1, 1)
        );
        // A Monday is its own week start; a Sunday belongs to the week before.
        assert_eq!(
            period_start(Period::Week, utc_ms(2024, 1, 29)),
            utc_ms(2024, 1, 29)
        );
        assert_eq!(
            period_start(Period::Week, utc_ms(2024, 2, 4) + DAY_MS - 1),
            utc_ms(2024, 1, 29)
        );
        // Before the epoch too.
        assert_eq!(period_start(Period::Week, -1), utc_ms(1969, 12, 29));
        assert_eq!(floor_to(-1, HOUR_MS), -HOUR_MS);
    }
}
