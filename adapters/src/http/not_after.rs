//! When a certificate expires: its NotAfter, read with a minimal DER walk (RFC 5280 4.1).
//!
//! ```text
//! Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }
//! tbsCertificate ::= SEQUENCE { version [0] EXPLICIT OPTIONAL, serialNumber, signature,
//!                               issuer, validity SEQUENCE { notBefore, notAfter }, ... }
//! Time ::= UTCTime "YYMMDDHHMMSSZ" | GeneralizedTime "YYYYMMDDHHMMSSZ"
//! ```
//!
//! Only the path to one field is walked; rustls (webpki) has already parsed and checked the whole
//! certificate when the pair was loaded, so an x509 parser would only repeat that work with a
//! dozen crates more (see docs/dependencies.md).

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

const SEQUENCE: u8 = 0x30;
/// `[0] EXPLICIT`, constructed: the optional version.
const VERSION: u8 = 0xa0;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// Why the NotAfter cannot be read: the certificate is not DER as RFC 5280 describes it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read the certificate's NotAfter: {0}")]
pub struct NotAfterError(&'static str);

/// The NotAfter of a DER certificate, in UTC.
pub fn not_after(der: &[u8]) -> Result<OffsetDateTime, NotAfterError> {
    let certificate = expect(der, SEQUENCE, "expected a SEQUENCE (the certificate)")?.0;
    let (mut tbs, _) = expect(
        certificate,
        SEQUENCE,
        "expected a SEQUENCE (tbsCertificate)",
    )?;
    if tbs.first() == Some(&VERSION) {
        tbs = tlv(tbs)?.2;
    }
    // serialNumber, signature, issuer: skipped whatever they hold.
    for _ in 0..3 {
        tbs = tlv(tbs)?.2;
    }
    let (validity, _) = expect(tbs, SEQUENCE, "expected a SEQUENCE (validity)")?;
    let after_not_before = tlv(validity)?.2;
    let (tag, value, _) = tlv(after_not_before)?;
    time_value(tag, value)
}

fn expect<'a>(
    input: &'a [u8],
    tag: u8,
    what: &'static str,
) -> Result<(&'a [u8], &'a [u8]), NotAfterError> {
    match tlv(input)? {
        (got, value, rest) if got == tag => Ok((value, rest)),
        _ => Err(NotAfterError(what)),
    }
}

/// One tag-length-value: `(tag, value, rest)`. Single-byte tags only: the path to NotAfter has
/// no other kind.
fn tlv(input: &[u8]) -> Result<(u8, &[u8], &[u8]), NotAfterError> {
    const TRUNCATED: NotAfterError = NotAfterError("the DER ends inside a field");
    let (&tag, rest) = input.split_first().ok_or(TRUNCATED)?;
    let (&first, rest) = rest.split_first().ok_or(TRUNCATED)?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        // Four length bytes describe 4 GiB: more, or the indefinite form (0), is not DER.
        if count == 0 || count > 4 || rest.len() < count {
            return Err(NotAfterError("a length is not in DER form"));
        }
        let (bytes, rest) = rest.split_at(count);
        let len = bytes
            .iter()
            .fold(0usize, |len, &byte| len << 8 | usize::from(byte));
        (len, rest)
    };
    if rest.len() < len {
        return Err(TRUNCATED);
    }
    let (value, rest) = rest.split_at(len);
    Ok((tag, value, rest))
}

/// RFC 5280 4.1.2.5: UTCTime until 2049 (YY of 50 and more is 19YY), GeneralizedTime from 2050,
/// both in UTC (`Z`) with seconds.
fn time_value(tag: u8, value: &[u8]) -> Result<OffsetDateTime, NotAfterError> {
    const BAD_TIME: NotAfterError =
        NotAfterError("expected YYMMDDHHMMSSZ (UTCTime) or YYYYMMDDHHMMSSZ (GeneralizedTime)");
    let digits = match value.split_last() {
        Some((b'Z', digits)) if digits.iter().all(u8::is_ascii_digit) => digits,
        _ => return Err(BAD_TIME),
    };
    let number = |range: std::ops::Range<usize>| {
        digits[range]
            .iter()
            .fold(0u16, |n, &digit| n * 10 + u16::from(digit - b'0'))
    };
    let (year, rest) = match (tag, digits.len()) {
        (UTC_TIME, 12) => match number(0..2) {
            yy @ 0..=49 => (2000 + yy, &digits[2..]),
            yy => (1900 + yy, &digits[2..]),
        },
        (GENERALIZED_TIME, 14) => (number(0..4), &digits[4..]),
        _ => return Err(BAD_TIME),
    };
    let field = |at: usize| u8::try_from(number(at..at + 2)).map_err(|_| BAD_TIME);
    let offset = digits.len() - rest.len();
    let month = Month::try_from(field(offset)?).map_err(|_| BAD_TIME)?;
    let date = Date::from_calendar_date(i32::from(year), month, field(offset + 2)?)
        .map_err(|_| BAD_TIME)?;
    let time = Time::from_hms(field(offset + 4)?, field(offset + 6)?, field(offset + 8)?)
        .map_err(|_| BAD_TIME)?;
    Ok(PrimitiveDateTime::new(date, time).assume_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::CertificateDer;

    const CERTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/certs");

    fn der(tag: u8, value: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        match value.len() {
            len @ 0..=0x7f => out.push(len as u8),
            len => {
                out.push(0x82);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
        }
        out.extend_from_slice(value);
        out
    }

    /// A certificate shaped as RFC 5280 says, down to the validity; the rest is filler.
    fn certificate(version: bool, not_after: Vec<u8>) -> Vec<u8> {
        let utc = der(UTC_TIME, b"240101000000Z");
        let validity = der(SEQUENCE, &[utc, not_after].concat());
        let mut tbs = Vec::new();
        if version {
            tbs.extend(der(VERSION, &der(0x02, &[2])));
        }
        tbs.extend(der(0x02, &[0x01; 20]));
        tbs.extend(der(SEQUENCE, &[0x06; 300]));
        tbs.extend(der(SEQUENCE, &[]));
        tbs.extend(validity);
        tbs.extend(der(SEQUENCE, &[]));
        let certificate = [der(SEQUENCE, &tbs), der(SEQUENCE, &[]), der(0x03, &[0])].concat();
        der(SEQUENCE, &certificate)
    }

    #[rstest]
    #[case::utc_time_before_2050(UTC_TIME, "491231235959Z", 2_524_607_999)]
    #[case::utc_time_of_the_1900s(UTC_TIME, "990601000000Z", 928_195_200)]
    #[case::generalized_time(GENERALIZED_TIME, "21261031230204Z", 4_949_161_324)]
    fn reads_both_time_forms(#[case] tag: u8, #[case] text: &str, #[case] unix: i64) {
        for version in [true, false] {
            let cert = certificate(version, der(tag, text.as_bytes()));
            assert_eq!(not_after(&cert).map(|t| t.unix_timestamp()), Ok(unix));
        }
    }

    #[rstest]
    #[case::server_ecdsa("server-ecdsa")]
    #[case::server_rsa_pkcs1("server-rsa-pkcs1")]
    #[case::client("client")]
    fn reads_the_test_certificates(#[case] pair: &str) {
        let cert = CertificateDer::from_pem_file(format!("{CERTS}/{pair}/tls.crt")).expect("PEM");
        // `openssl x509 -noout -enddate`: Oct 31 23:02:04 2126 GMT.
        assert_eq!(
            not_after(&cert).map(|t| t.unix_timestamp()),
            Ok(4_949_161_324)
        );
    }

    #[rstest]
    #[case::empty(vec![])]
    #[case::not_a_sequence(der(0x02, &[1]))]
    #[case::truncated(certificate(true, der(UTC_TIME, b"491231235959Z"))[..40].to_vec())]
    #[case::indefinite_length(vec![SEQUENCE, 0x80, 0, 0])]
    #[case::local_time(certificate(true, der(UTC_TIME, b"4912312359590")))]
    #[case::no_seconds(certificate(true, der(UTC_TIME, b"4912312359Z")))]
    #[case::month_13(certificate(true, der(UTC_TIME, b"491301000000Z")))]
    #[case::february_30(certificate(true, der(GENERALIZED_TIME, b"20490230000000Z")))]
    #[case::utc_time_with_four_digit_year(certificate(true, der(UTC_TIME, b"20491231235959Z")))]
    #[case::integer_instead_of_time(certificate(true, der(0x02, b"491231235959Z")))]
    fn refuses_what_is_not_rfc_5280_der(#[case] input: Vec<u8>) {
        assert!(not_after(&input).is_err());
    }
}
