//! How a time is written in logs and probe answers: RFC 3339 in UTC, `2126-10-31T23:02:04Z`.
//! Its own module, as both the HTTP side (certificate loads) and the metrics side (readiness)
//! write times, and neither should import the other for it.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub fn rfc3339(time: OffsetDateTime) -> String {
    time.format(&Rfc3339)
        .unwrap_or_else(|_| time.unix_timestamp().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn writes_utc_with_a_z() {
        assert_eq!(
            rfc3339(datetime!(2126-10-31 23:02:04 UTC)),
            "2126-10-31T23:02:04Z"
        );
    }
}
