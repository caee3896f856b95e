//! Go-style durations (`300ms`, `24h`, `2h45m`), the spelling Cloudflare uses
//! for `session_duration` and accessd uses for its own retention settings.

use std::time::Duration;

/// The longest duration Go can hold (`math.MaxInt64` nanoseconds, about
/// 2,562,047 hours); longer ones are refused as Go refuses them.
pub const LONGEST: Duration = Duration::from_nanos(i64::MAX as u64);

/// Longer input is refused before it is read.
pub const MAX_CHARS: usize = 64;

/// Parses a sequence of `<number><unit>` pairs; units are ns, us, µs, ms, s, m, h.
pub fn parse(raw: &str) -> Result<Duration, String> {
    if raw.len() > MAX_CHARS {
        return Err(format!(
            "a duration must be at most {MAX_CHARS} characters, such as 30m, 24h or 2h45m"
        ));
    }
    let invalid = || format!("{raw:?} is not a duration such as 30m, 24h or 2h45m");
    let too_long = || format!("{raw:?} is longer than the longest duration, about 2562047h");
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
        let part = Duration::try_from_secs_f64(value * seconds_per_unit).map_err(|_| too_long())?;
        total = total
            .checked_add(part)
            .filter(|sum| *sum <= LONGEST)
            .ok_or_else(too_long)?;
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
        for bad in ["", "24", "h", "5d", "-1h", "1h-", "1e3h", ".h", "1..5h"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn durations_beyond_go_are_refused_not_overflowed() {
        assert!(parse("2562047h").is_ok());
        for huge in [
            "2562048h",
            "5000000000000000h5000000000000000h",
            "9999999999999999999999999999999h",
            "1h2562047h",
        ] {
            assert!(parse(huge).is_err(), "{huge:?}");
        }
        assert!(parse(&"1s".repeat(40)).is_err(), "longer than MAX_CHARS");
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::*;

        fn unit() -> impl Strategy<Value = &'static str> {
            prop::sample::select(vec!["ns", "us", "µs", "ms", "s", "m", "h", "d", "", "x"])
        }

        fn number() -> impl Strategy<Value = String> {
            prop_oneof![
                any::<u64>().prop_map(|n| n.to_string()),
                (any::<u32>(), any::<u32>()).prop_map(|(a, b)| format!("{a}.{b}")),
                "[0-9.]{0,30}",
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            /// Any text: a duration within Go's range, or an error; never a panic.
            #[test]
            fn any_text_parses_or_is_refused(raw in any::<String>()) {
                if let Ok(duration) = parse(&raw) {
                    prop_assert!(duration <= LONGEST);
                }
            }

            /// Sequences of number-unit pairs, huge ones included.
            #[test]
            fn pairs_parse_within_range_or_are_refused(
                pairs in prop::collection::vec((number(), unit()), 1..6)
            ) {
                let raw: String = pairs.iter().map(|(n, u)| format!("{n}{u}")).collect();
                if let Ok(duration) = parse(&raw) {
                    prop_assert!(duration <= LONGEST);
                }
            }

            /// Whole seconds written as `<n>s` come back exactly.
            #[test]
            fn seconds_round_trip(seconds in 0u64..(i64::MAX as u64 / 1_000_000_000)) {
                prop_assert_eq!(parse(&format!("{seconds}s")), Ok(Duration::from_secs(seconds)));
            }
        }
    }
}
