//! ASL timestamps: RFC 3339 with the States Language's extra rules.
//!
//! The spec requires an uppercase `T` between date and time and an uppercase `Z` when there is no
//! numeric offset (`2016-03-14T01:59:00Z`). General-purpose parsers also accept `t`, `z` and a
//! space separator, which AWS refuses, so this check is our own.

use std::fmt;

/// A point in time, to the nanosecond.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Timestamp {
    /// Nanoseconds since 1970-01-01T00:00:00Z.
    pub unix_nanos: i128,
}

/// The text is not an ASL timestamp.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("String does not match RFC3339 timestamp")]
pub struct Error;

impl Timestamp {
    /// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)`.
    pub fn parse(s: &str) -> Result<Timestamp, Error> {
        let b = s.as_bytes();
        let digits = |from: usize, len: usize| -> Result<i64, Error> {
            let part = b.get(from..from + len).ok_or(Error)?;
            if !part.iter().all(u8::is_ascii_digit) {
                return Err(Error);
            }
            Ok(part.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
        };
        let expect = |at: usize, c: u8| {
            if b.get(at) == Some(&c) {
                Ok(())
            } else {
                Err(Error)
            }
        };
        let year = digits(0, 4)?;
        expect(4, b'-')?;
        let month = digits(5, 2)?;
        expect(7, b'-')?;
        let day = digits(8, 2)?;
        expect(10, b'T')?;
        let hour = digits(11, 2)?;
        expect(13, b':')?;
        let minute = digits(14, 2)?;
        expect(16, b':')?;
        let second = digits(17, 2)?;
        let mut i = 19;
        let mut nanos: i64 = 0;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let start = i;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            if i == start {
                return Err(Error);
            }
            let frac = &s[start..i];
            let padded: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
            nanos = padded.parse().map_err(|_| Error)?;
        }
        let offset_minutes = match b.get(i) {
            Some(b'Z') if i + 1 == b.len() => 0,
            Some(sign @ (b'+' | b'-')) if i + 6 == b.len() => {
                let h = digits(i + 1, 2)?;
                expect(i + 3, b':')?;
                let m = digits(i + 4, 2)?;
                if h > 23 || m > 59 {
                    return Err(Error);
                }
                let total = h * 60 + m;
                if *sign == b'-' { -total } else { total }
            }
            _ => return Err(Error),
        };
        if !(1..=12).contains(&month)
            || day < 1
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 60
        {
            return Err(Error);
        }
        let days = days_from_civil(year, month, day);
        let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
        Ok(Timestamp {
            unix_nanos: i128::from(seconds) * 1_000_000_000 + i128::from(nanos),
        })
    }

    /// Whole seconds since the epoch (floor).
    pub fn unix_seconds(self) -> i64 {
        self.unix_nanos.div_euclid(1_000_000_000) as i64
    }
}

impl fmt::Display for Timestamp {
    /// UTC, with milliseconds when there are any: `2016-03-14T01:59:00.123Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.unix_seconds();
        let nanos = self.unix_nanos.rem_euclid(1_000_000_000) as i64;
        let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
        let rem = secs.rem_euclid(86_400);
        write!(
            f,
            "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}",
            rem / 3600,
            rem / 60 % 60,
            rem % 60
        )?;
        if nanos != 0 {
            write!(f, ".{:03}", nanos / 1_000_000)?;
        }
        f.write_str("Z")
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_asl_profile() {
        for (text, secs) in [
            ("1970-01-01T00:00:00Z", 0),
            ("2016-03-14T01:59:00Z", 1_457_920_740),
            ("2016-03-14T01:59:00.5Z", 1_457_920_740),
            ("2016-03-14T02:59:00+01:00", 1_457_920_740),
            ("2016-03-13T23:59:00-02:00", 1_457_920_740),
            ("2024-02-29T00:00:00Z", 1_709_164_800),
        ] {
            assert_eq!(
                Timestamp::parse(text).map(Timestamp::unix_seconds),
                Ok(secs),
                "{text}"
            );
        }
        assert_eq!(
            Timestamp::parse("2016-03-14T01:59:00.123456Z")
                .unwrap()
                .unix_nanos
                % 1_000_000_000,
            123_456_000
        );
    }

    #[test]
    fn refuses_what_aws_refuses() {
        // The four from the conformance corpus, then the lowercase and range cases.
        for text in [
            "05-12-2016T21:29:29Z",
            "2016-12-05T25:29:29Z",
            "2016-12-05 21:29:29Z",
            "2016-12-05T21:29:29",
            "2016-12-05t21:29:29Z",
            "2016-12-05T21:29:29z",
            "2023-02-29T00:00:00Z",
            "2016-13-01T00:00:00Z",
            "2016-12-05T21:29:29.Z",
            "2016-12-05T21:29:29+0100",
            "",
        ] {
            assert_eq!(Timestamp::parse(text), Err(Error), "{text}");
        }
    }

    #[test]
    fn displays_in_utc() {
        let t = Timestamp::parse("2016-03-14T02:59:00.250+01:00").unwrap();
        assert_eq!(t.to_string(), "2016-03-14T01:59:00.250Z");
    }
}
