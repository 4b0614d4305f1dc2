//! `--sync-interval`: a Go duration, and at least [`MIN_SYNC_INTERVAL`].
//!
//! Each interval runs a full sync and stale collection: netlink dumps of links and addresses, and
//! with `--setup-iptables` the rule listing (an `iptables-save` per family and table, four in all;
//! about 15 ms with nft on a quiet machine, legacy's more, README's sidecar rows). An interval of
//! a nanosecond made the Go original burn 0.85 of a core; at the floor the loop takes about 15 %
//! of one with rules on, under 1 % without, and a minute (the default) a fraction of that. 100 ms is
//! below every value a test or bench uses (200 ms in the fault tests, 100 ms in `bench/sync.py`,
//! which times syncs), and far below any sensible safety net: events repair at once, the interval
//! only catches what no event reported.

use std::time::Duration;

use crate::duration::{format_go_duration, parse_go_duration, DurationError};

/// The shortest `--sync-interval` accepted.
pub const MIN_SYNC_INTERVAL: Duration = Duration::from_millis(100);

/// Why a `--sync-interval` is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncIntervalError {
    #[error(transparent)]
    Duration(#[from] DurationError),
    #[error("{input:?} is shorter than {floor}: expected at least {floor}, such as 30s or 1m0s", floor = format_go_duration(MIN_SYNC_INTERVAL))]
    TooShort { input: String },
}

/// Parses `--sync-interval`.
pub fn parse_sync_interval(input: &str) -> Result<Duration, SyncIntervalError> {
    let interval = parse_go_duration(input)?;
    if interval < MIN_SYNC_INTERVAL {
        return Err(SyncIntervalError::TooShort {
            input: input.to_owned(),
        });
    }
    Ok(interval)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::the_floor("100ms", 100)]
    #[case::the_fault_tests("200ms", 200)]
    #[case::the_floor_otherwise_written("0.1s", 100)]
    #[case::the_default("1m0s", 60_000)]
    fn accepts_the_floor_and_above(#[case] input: &str, #[case] millis: u64) {
        assert_eq!(
            parse_sync_interval(input),
            Ok(Duration::from_millis(millis))
        );
    }

    #[rstest]
    #[case::zero("0s")]
    #[case::a_nanosecond("1ns")]
    #[case::just_below("99ms")]
    #[case::just_below_in_nanoseconds("99999999ns")]
    fn refuses_what_is_below_the_floor(#[case] input: &str) {
        let error = parse_sync_interval(input).expect_err("below the floor");
        assert_eq!(
            error.to_string(),
            format!(
                "{input:?} is shorter than 100ms: expected at least 100ms, such as 30s or 1m0s"
            )
        );
    }

    #[test]
    fn passes_on_what_is_not_a_duration() {
        let error = parse_sync_interval("1x").expect_err("not a duration");
        assert!(matches!(error, SyncIntervalError::Duration(_)), "{error}");
    }
}
