//! Go's `time.ParseDuration` syntax, so `--sync-interval=1m0s` means what it meant to the Go tool.

use std::time::Duration;

/// Why a text is not a Go duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("{input:?} is not a duration: expected a Go duration such as 30s, 1m0s, 500ms")]
    Syntax { input: String },
    #[error("{input:?} has unknown unit {unit:?}: expected one of ns, us, µs, ms, s, m, h")]
    UnknownUnit { input: String, unit: String },
    #[error("{input:?} is too large: the longest duration is about 292 years")]
    Overflow { input: String },
    #[error("{input:?} is negative: expected a positive duration")]
    Negative { input: String },
}

const MAX_NANOS: u128 = i64::MAX as u128;

fn unit_nanos(unit: &str) -> Option<u128> {
    Some(match unit {
        "ns" => 1,
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    })
}

/// Parses a duration exactly as Go's `time.ParseDuration` does, except that negative durations
/// are refused (no flag of ours has a use for them).
pub fn parse_go_duration(input: &str) -> Result<Duration, DurationError> {
    let syntax = || DurationError::Syntax {
        input: input.to_owned(),
    };
    let mut rest = input;
    let negative = rest.starts_with('-');
    if let Some(unsigned) = rest.strip_prefix(['-', '+']) {
        rest = unsigned;
    }
    // Go accepts a bare "0" (and "-0", "+0") without a unit; nothing else.
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(syntax());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (int_part, after_int) = rest.split_at(int_len);
        let (frac_part, after_number) = match after_int.strip_prefix('.') {
            Some(after_dot) => {
                let len = after_dot
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(after_dot.len());
                after_dot.split_at(len)
            }
            None => ("", after_int),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(syntax());
        }
        let unit_len = after_number
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(after_number.len());
        let (unit, after_unit) = after_number.split_at(unit_len);
        if unit.is_empty() {
            return Err(syntax());
        }
        let scale = unit_nanos(unit).ok_or_else(|| DurationError::UnknownUnit {
            input: input.to_owned(),
            unit: unit.to_owned(),
        })?;
        let overflow = || DurationError::Overflow {
            input: input.to_owned(),
        };
        let whole: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| overflow())?
        };
        let mut nanos = whole
            .checked_mul(scale)
            .filter(|n| *n <= MAX_NANOS)
            .ok_or_else(overflow)?;
        nanos += fraction_nanos(frac_part, scale);
        total = total
            .checked_add(nanos)
            .filter(|n| *n <= MAX_NANOS)
            .ok_or_else(overflow)?;
        rest = after_unit;
    }
    if negative && total > 0 {
        return Err(DurationError::Negative {
            input: input.to_owned(),
        });
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| syntax())?;
    let sub_nanos = u32::try_from(total % 1_000_000_000).map_err(|_| syntax())?;
    Ok(Duration::new(secs, sub_nanos))
}

/// The nanoseconds `.digits` of `unit_nanos` add, computed as Go's `leadingFraction` does: the
/// digits that fit in an `i64` are kept, the rest ignored, and the product taken in `f64`, so that
/// `0.3333333333333333333h` is exactly 20 minutes there as here.
fn fraction_nanos(digits: &str, unit_nanos: u128) -> u128 {
    let mut fraction: u64 = 0;
    let mut scale = 1.0_f64;
    for digit in digits.bytes() {
        let next = fraction
            .checked_mul(10)
            .and_then(|f| f.checked_add(u64::from(digit - b'0')));
        match next {
            Some(next) if next <= i64::MAX as u64 => {
                fraction = next;
                scale *= 10.0;
            }
            _ => break,
        }
    }
    // Truncation toward zero is what Go's uint64(float64) conversion does.
    (fraction as f64 * (unit_nanos as f64 / scale)) as u128
}

/// Formats a duration as Go's `Duration.String` does (`1m0s`, `1.5s`, `500ms`), so help texts
/// and logs read like the original's.
pub fn format_go_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    if nanos < 1_000_000_000 {
        let (scale, unit) = match nanos {
            n if n < 1_000 => (1, "ns"),
            n if n < 1_000_000 => (1_000, "µs"),
            _ => (1_000_000, "ms"),
        };
        return format!("{}{unit}", with_fraction(nanos, scale));
    }
    let hours = nanos / 3_600_000_000_000;
    let minutes = nanos / 60_000_000_000 % 60;
    let seconds = with_fraction(nanos % 60_000_000_000, 1_000_000_000);
    match (hours, minutes) {
        (0, 0) => format!("{seconds}s"),
        (0, m) => format!("{m}m{seconds}s"),
        (h, m) => format!("{h}h{m}m{seconds}s"),
    }
}

fn with_fraction(value: u128, scale: u128) -> String {
    let whole = value / scale;
    let fraction = value % scale;
    if fraction == 0 {
        return whole.to_string();
    }
    let width = scale.ilog10() as usize;
    let digits = format!("{fraction:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const NS: u64 = 1;
    const US: u64 = 1_000;
    const MS: u64 = 1_000_000;
    const S: u64 = 1_000_000_000;
    const M: u64 = 60 * S;
    const H: u64 = 60 * M;

    // Ported from Go's src/time/time_test.go `parseDurationTests` (negative cases excluded: we
    // refuse them, see `negative_durations_are_refused`).
    #[rstest]
    #[case("0", 0)]
    #[case("5s", 5 * S)]
    #[case("30s", 30 * S)]
    #[case("1478s", 1478 * S)]
    #[case("+5s", 5 * S)]
    #[case("-0", 0)]
    #[case("+0", 0)]
    #[case("5.0s", 5 * S)]
    #[case("5.6s", 5 * S + 600 * MS)]
    #[case("5.s", 5 * S)]
    #[case(".5s", 500 * MS)]
    #[case("1.0s", S)]
    #[case("1.00s", S)]
    #[case("1.004s", S + 4 * MS)]
    #[case("1.0040s", S + 4 * MS)]
    #[case("100.00100s", 100 * S + MS)]
    #[case("10ns", 10 * NS)]
    #[case("11us", 11 * US)]
    #[case("12µs", 12 * US)] // U+00B5
    #[case("12μs", 12 * US)] // U+03BC
    #[case("13ms", 13 * MS)]
    #[case("14s", 14 * S)]
    #[case("15m", 15 * M)]
    #[case("16h", 16 * H)]
    #[case("3h30m", 3 * H + 30 * M)]
    #[case("10.5s4m", 4 * M + 10 * S + 500 * MS)]
    #[case("1h2m3s4ms5us6ns", H + 2 * M + 3 * S + 4 * MS + 5 * US + 6 * NS)]
    #[case("39h9m14.425s", 39 * H + 9 * M + 14 * S + 425 * MS)]
    #[case("52763797000ns", 52_763_797_000 * NS)]
    #[case("0.3333333333333333333h", 20 * M)]
    #[case("9007199254740993ns", (1 << 53) + 1)]
    #[case("9223372036854775807ns", i64::MAX as u64)]
    #[case("9223372036854775.807us", i64::MAX as u64)]
    #[case("9223372036s854ms775us807ns", i64::MAX as u64)]
    #[case("0.100000000000000000000h", 6 * M)]
    #[case("0.830103483285477580700h", 49 * M + 48 * S + 372_539_827 * NS)]
    #[case("1m0s", M)]
    #[case("1h2m3.5s", H + 2 * M + 3 * S + 500 * MS)]
    #[case("500ms", 500 * MS)]
    fn parses_the_same_as_go(#[case] input: &str, #[case] nanos: u64) {
        assert_eq!(parse_go_duration(input), Ok(Duration::from_nanos(nanos)));
    }

    // Go's `parseDurationErrorTests`, plus the unit errors.
    #[rstest]
    #[case("")]
    #[case("3")]
    #[case("-")]
    #[case("s")]
    #[case(".")]
    #[case("-.")]
    #[case(".s")]
    #[case("+.s")]
    #[case("1d")]
    #[case("\u{85}\u{85}")]
    #[case("1x")]
    #[case("1 s")]
    #[case("9223372036854775808ns")]
    #[case("9223372036854775.808us")]
    #[case("9223372036854ms775us808ns")]
    fn refuses_what_go_refuses(#[case] input: &str) {
        assert!(parse_go_duration(input).is_err(), "{input:?} was accepted");
    }

    #[test]
    fn negative_durations_are_refused() {
        assert_eq!(
            parse_go_duration("-5s"),
            Err(DurationError::Negative {
                input: "-5s".into()
            })
        );
    }

    #[test]
    fn errors_name_the_input_and_what_was_expected() {
        let message = parse_go_duration("1x").unwrap_err().to_string();
        assert_eq!(
            message,
            r#""1x" has unknown unit "x": expected one of ns, us, µs, ms, s, m, h"#
        );
        let message = parse_go_duration("abc").unwrap_err().to_string();
        assert_eq!(
            message,
            r#""abc" is not a duration: expected a Go duration such as 30s, 1m0s, 500ms"#
        );
    }

    // Go's `durationTests` for `Duration.String`.
    #[rstest]
    #[case(0, "0s")]
    #[case(NS, "1ns")]
    #[case(1100 * NS, "1.1µs")]
    #[case(2200 * US, "2.2ms")]
    #[case(3300 * MS, "3.3s")]
    #[case(4 * M + 5 * S, "4m5s")]
    #[case(4 * M + 5001 * MS, "4m5.001s")]
    #[case(5 * H + 6 * M + 7001 * MS, "5h6m7.001s")]
    #[case(8 * M + NS, "8m0.000000001s")]
    #[case(M, "1m0s")]
    #[case(H, "1h0m0s")]
    #[case(500 * MS, "500ms")]
    fn formats_the_same_as_go(#[case] nanos: u64, #[case] text: &str) {
        assert_eq!(format_go_duration(Duration::from_nanos(nanos)), text);
    }
}
