//! Go-style durations (`300ms`, `24h`, `2h45m`), the spelling Cloudflare uses
//! for `session_duration` and accessd uses for its own retention settings.

use std::time::Duration;

/// Parses a sequence of `<number><unit>` pairs; units are ns, us, µs, ms, s, m, h.
pub fn parse(raw: &str) -> Result<Duration, String> {
    let invalid = || format!("{raw:?} is not a duration such as 30m, 24h or 2h45m");
    if raw.is_empty() {
        return Err(invalid());
    }
    let mut total = Duration::ZERO;
    let mut rest = raw;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        let (number, tail) = rest.split_at(digits);
        let value: f64 = number.parse().map_err(|_| invalid())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let seconds_per_unit = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(invalid()),
        };
        total += Duration::try_from_secs_f64(value * seconds_per_unit).map_err(|_| invalid())?;
        rest = next;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_style_durations() {
        assert_eq!(parse("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse("2h45m"), Ok(Duration::from_secs(9_900)));
        assert_eq!(parse("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse("1.5h"), Ok(Duration::from_secs(5_400)));
        for bad in ["", "24", "h", "5d", "-1h", "1h-"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
