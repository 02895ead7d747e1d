//! The year of an SMDR record, which prints only month and day: the year that puts the
//! record's date nearest to the day the relay received it. A call that started on 31 December
//! and reached the relay on 1 January belongs to the old year; one received in late December
//! dated 1 January (a switch clock ahead) to the new one.

use wire::date::{civil_from_days, days_from_civil};

const DAY_MS: i64 = 86_400_000;

/// The year of a record dated `month`/`day`, received at `received_ms` (ms since the epoch).
/// Dates that exist in no candidate year (30 February) get the year received.
pub fn infer(month: u8, day: u8, received_ms: u64) -> i64 {
    let received_day = (received_ms as i64).div_euclid(DAY_MS);
    let (year, _, _) = civil_from_days(received_day);
    [year - 1, year, year + 1]
        .into_iter()
        .filter(|&y| valid(y, month, day))
        .min_by_key(|&y| {
            (days_from_civil(y, u32::from(month), u32::from(day)) - received_day).abs()
        })
        .unwrap_or(year)
}

/// Whether `year-month-day` is a calendar date.
pub fn valid(year: i64, month: u8, day: u8) -> bool {
    if !(1..=12).contains(&month) || day == 0 {
        return false;
    }
    let days = days_from_civil(year, u32::from(month), u32::from(day));
    civil_from_days(days) == (year, u32::from(month), u32::from(day))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i64, m: u32, d: u32, hour: i64) -> u64 {
        (days_from_civil(y, m, d) * DAY_MS + hour * 3_600_000) as u64
    }

    #[test]
    fn the_year_turns_with_the_calendar_not_with_arrival() {
        // Started on New Year's Eve, received just after midnight.
        assert_eq!(infer(12, 31, at(2027, 1, 1, 0)), 2026);
        // Received on New Year's Eve, dated the next day (a switch clock a little ahead).
        assert_eq!(infer(1, 1, at(2026, 12, 31, 23)), 2027);
        assert_eq!(infer(6, 15, at(2026, 6, 15, 12)), 2026);
        // Spooled long, exported late: still the nearest year.
        assert_eq!(infer(11, 20, at(2027, 2, 3, 9)), 2026);
    }

    #[test]
    fn leap_days_go_to_a_leap_year() {
        assert_eq!(infer(2, 29, at(2028, 3, 1, 0)), 2028);
        assert_eq!(infer(2, 29, at(2029, 1, 10, 0)), 2028);
        assert_eq!(infer(2, 30, at(2027, 3, 1, 0)), 2027);
        assert!(valid(2028, 2, 29) && !valid(2027, 2, 29) && !valid(2027, 13, 1));
    }
}
