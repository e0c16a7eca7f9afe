//! Calendar periods in UTC (budget periods): where the current day, week (from Monday) or month
//! starts and ends.

use std::str::FromStr;

const DAY_MS: i64 = 86_400_000;

/// A budget period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// A UTC day.
    Day,
    /// A week from Monday 00:00 UTC.
    Week,
    /// A calendar month in UTC.
    Month,
}

impl FromStr for Period {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "day" => Ok(Period::Day),
            "week" => Ok(Period::Week),
            "month" => Ok(Period::Month),
            other => Err(format!("'{other}' is not a period: use day, week or month")),
        }
    }
}

// Days since 1970-01-01 from a civil date, and back (proleptic Gregorian calendar).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The day (days since 1970-01-01, UTC) of a `YYYY-MM-DD` date; `None` for anything else,
/// impossible dates such as 2026-02-30 included.
pub fn day_of(date: &str) -> Option<i64> {
    let mut parts = date.split('-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let d: i64 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || date.len() != 10 {
        return None;
    }
    let day = days_from_civil(y, m, d);
    (civil_from_days(day) == (y, m, d)).then_some(day)
}

impl Period {
    /// Start (inclusive) and end (exclusive) of the period holding `now`, in ms.
    pub fn bounds(self, now_ms: i64) -> (i64, i64) {
        let day = now_ms.div_euclid(DAY_MS);
        match self {
            Period::Day => (day * DAY_MS, (day + 1) * DAY_MS),
            Period::Week => {
                // 1970-01-01 was a Thursday: Monday-based weekday is (day + 3) mod 7.
                let monday = day - (day + 3).rem_euclid(7);
                (monday * DAY_MS, (monday + 7) * DAY_MS)
            }
            Period::Month => {
                let (y, m, _) = civil_from_days(day);
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                (days_from_civil(y, m, 1) * DAY_MS, days_from_civil(ny, nm, 1) * DAY_MS)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOV_22_2026_1530: i64 = 1_795_361_400_000; // Sunday 2026-11-22 15:30:00 UTC

    #[test]
    fn periods_start_and_end_on_utc_calendar_boundaries() {
        let day = DAY_MS;
        let nov_22 = days_from_civil(2026, 11, 22) * day;
        assert_eq!(Period::Day.bounds(NOV_22_2026_1530), (nov_22, nov_22 + day));
        let monday = days_from_civil(2026, 11, 16) * day;
        assert_eq!(
            Period::Week.bounds(NOV_22_2026_1530),
            (monday, monday + 7 * day),
            "Sunday belongs to the week from Monday"
        );
        assert_eq!(Period::Week.bounds(monday), (monday, monday + 7 * day));
        assert_eq!(
            Period::Month.bounds(NOV_22_2026_1530),
            (days_from_civil(2026, 11, 1) * day, days_from_civil(2026, 12, 1) * day)
        );
        let dec_31 = days_from_civil(2026, 12, 31) * day + 1;
        assert_eq!(Period::Month.bounds(dec_31).1, days_from_civil(2027, 1, 1) * day, "December ends in the new year");
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
        assert_eq!(days_from_civil(1970, 1, 1), 0);
    }

    #[test]
    fn dates_parse_to_days_and_impossible_ones_do_not() {
        assert_eq!(day_of("1970-01-02"), Some(1));
        assert_eq!(day_of("2026-11-22").map(|d| d * DAY_MS), Some(NOV_22_2026_1530 - 15 * 3_600_000 - 30 * 60_000));
        assert_eq!(day_of("2024-02-29"), Some(days_from_civil(2024, 2, 29)));
        for bad in ["2026-02-30", "2025-02-29", "2026-13-01", "2026-1-01", "26-01-01", "tomorrow", "2026-01-01T00"] {
            assert_eq!(day_of(bad), None, "{bad}");
        }
    }
}
