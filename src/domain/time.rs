//! Instants as the API shows them: RFC 3339 in UTC with a `Z`, microsecond
//! precision, and stored as integer microseconds since the Unix epoch so both
//! database backends order and compare them the same way.

use std::fmt;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    pub fn now() -> Self {
        Self::from_datetime(OffsetDateTime::now_utc())
    }

    pub fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    pub fn micros(self) -> i64 {
        self.0
    }

    pub fn unix_seconds(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }

    pub fn plus_seconds(self, seconds: i64) -> Self {
        Self(self.0.saturating_add(seconds.saturating_mul(1_000_000)))
    }

    /// Parses any RFC 3339 date-time (any offset) and normalises it to UTC.
    pub fn parse(raw: &str) -> Option<Self> {
        OffsetDateTime::parse(raw, &Rfc3339)
            .ok()
            .map(Self::from_datetime)
    }

    /// RFC 3339 with exactly three fractional digits, as Cloudflare writes
    /// `datetime` in failed-login metadata.
    pub fn to_millis_string(self) -> String {
        let at = self.to_datetime();
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            at.year(),
            u8::from(at.month()),
            at.day(),
            at.hour(),
            at.minute(),
            at.second(),
            at.millisecond()
        )
    }

    fn from_datetime(at: OffsetDateTime) -> Self {
        let micros = at.unix_timestamp_nanos() / 1_000;
        Self(i64::try_from(micros).unwrap_or(i64::MAX))
    }

    fn to_datetime(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}

impl fmt::Display for Timestamp {
    /// `YYYY-MM-DDTHH:MM:SS[.ffffff]Z`; the fraction is left out when it is zero.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.to_datetime();
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            at.year(),
            u8::from(at.month()),
            at.day(),
            at.hour(),
            at.minute(),
            at.second()
        )?;
        let micros = at.microsecond();
        if micros != 0 {
            write!(f, ".{micros:06}")?;
        }
        f.write_str("Z")
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_whole_seconds_without_fraction() {
        let at = Timestamp::parse("2030-01-02T03:04:05Z").map(|t| t.to_string());
        assert_eq!(at.as_deref(), Some("2030-01-02T03:04:05Z"));
    }

    #[test]
    fn keeps_microseconds_and_normalises_offsets() {
        let at = Timestamp::parse("2030-01-02T05:04:05.12345+02:00").map(|t| t.to_string());
        assert_eq!(at.as_deref(), Some("2030-01-02T03:04:05.123450Z"));
    }

    #[test]
    fn rejects_non_rfc3339() {
        assert!(Timestamp::parse("2030-01-02").is_none());
        assert!(Timestamp::parse("yesterday").is_none());
    }

    #[test]
    fn orders_by_instant() {
        let (Some(a), Some(b)) = (
            Timestamp::parse("2030-01-01T00:00:00Z"),
            Timestamp::parse("2029-12-31T23:00:00-02:00"),
        ) else {
            panic!("both parse");
        };
        assert!(b > a);
        assert_eq!(a.unix_seconds(), 1_893_456_000);
    }
}
