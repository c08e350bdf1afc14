//! UTC calendar labels for time buckets, matching the Lua scripts' `day_label`/`hour_label`
//! (both use H. Hinnant's `civil_from_days`, so Rust and Redis agree on every date).

/// Year, month (1–12), day (1–31) of a day number counted from 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The day number (from 1970-01-01) of a date: the inverse of [`civil_from_days`] (H. Hinnant's
/// `days_from_civil`). Month and day must be in range.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The day number of an ISO date `2026-11-25`, if it is a real date between years 1970 and 9999.
pub fn parse_iso_date(date: &str) -> Option<i64> {
    let bytes = date.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = &date[range];
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())
            .flatten()
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    if year < 1970 || !(1..=12).contains(&month) || day == 0 {
        return None;
    }
    let days = days_from_civil(i64::from(year), month, day);
    // A day past the month's end comes back as another date.
    (civil_from_days(days) == (i64::from(year), month, day)).then_some(days)
}

/// The unix seconds of an ISO hour `2026-11-25T13:00:00Z` (as `/stats` writes it).
pub fn parse_iso_hour(hour: &str) -> Option<i64> {
    let (date, time) = hour.split_once('T')?;
    let hh = time.strip_suffix(":00:00Z")?;
    if hh.len() != 2 || !hh.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hh: i64 = hh.parse().ok()?;
    (hh < 24).then(|| parse_iso_date(date).map(|days| days * 86_400 + hh * 3600))?
}

/// `YYYYMMDD` of unix seconds (UTC): the name of a daily bucket.
pub fn day_label(unix_secs: i64) -> String {
    let (y, m, d) = civil_from_days(unix_secs.div_euclid(86_400));
    format!("{y:04}{m:02}{d:02}")
}

/// `YYYYMMDDHH` of unix seconds (UTC): the name of an hourly bucket.
pub fn hour_label(unix_secs: i64) -> String {
    format!(
        "{}{:02}",
        day_label(unix_secs),
        unix_secs.rem_euclid(86_400) / 3600
    )
}

/// `2026-11-25` from a day label `20261125` (returned unchanged if it is not one).
pub fn iso_date(day_label: &str) -> String {
    match (
        day_label.get(0..4),
        day_label.get(4..6),
        day_label.get(6..8),
    ) {
        (Some(y), Some(m), Some(d)) if day_label.len() == 8 => format!("{y}-{m}-{d}"),
        _ => day_label.to_owned(),
    }
}

/// `2026-11-25T13:00:00Z` from an hour label `2026112513` (unchanged if it is not one).
pub fn iso_hour(hour_label: &str) -> String {
    match (hour_label.get(0..8), hour_label.get(8..10)) {
        (Some(day), Some(h)) if hour_label.len() == 10 => format!("{}T{h}:00:00Z", iso_date(day)),
        _ => hour_label.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_match_known_dates() {
        assert_eq!(day_label(0), "19700101");
        assert_eq!(hour_label(0), "1970010100");
        // 2024-02-29T23:59:59Z, a leap day.
        assert_eq!(hour_label(1_709_251_199), "2024022923");
        assert_eq!(day_label(1_709_251_200), "20240301");
        // 2026-11-25T13:05:00Z
        assert_eq!(hour_label(1_795_611_900), "2026112513");
        assert_eq!(day_label(-1), "19691231");
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn iso_dates_parse_back() {
        for days in [0, 11_016, 20_417, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
            let iso = iso_date(&day_label(days * 86_400));
            assert_eq!(parse_iso_date(&iso), Some(days), "{iso}");
        }
        for bad in [
            "2026-02-30",
            "2025-02-29",
            "2026-13-01",
            "1969-12-31",
            "2026-1-01",
            "20261125",
        ] {
            assert_eq!(parse_iso_date(bad), None, "{bad}");
        }
        assert_eq!(parse_iso_hour("2026-11-25T13:00:00Z"), Some(1_795_611_600));
        assert_eq!(parse_iso_hour("2026-11-25T24:00:00Z"), None);
        assert_eq!(parse_iso_hour("2026-11-25T13:30:00Z"), None);
    }

    #[test]
    fn iso_forms() {
        assert_eq!(iso_date("20261125"), "2026-11-25");
        assert_eq!(iso_hour("2026112513"), "2026-11-25T13:00:00Z");
        assert_eq!(iso_date("junk"), "junk");
    }
}
