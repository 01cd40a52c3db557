//! What a failed certificate says about itself, for errors a user can act
//! on: its subject's common name, and whether it issued itself. A minimal
//! DER walk of the X.509 fields it needs (the certificate was parsed and
//! checked by webpki already; anything unexpected gives `None`).

/// One DER element: its tag, its contents, and what follows it.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

const SEQUENCE: u8 = 0x30;
const VERSION: u8 = 0xa0;
/// The OID of `commonName` (2.5.4.3), as DER content.
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];

/// The issuer and subject `Name`s of a certificate, as DER.
fn names(der: &[u8]) -> Option<(&[u8], &[u8])> {
    let (SEQUENCE, certificate, _) = element(der)? else {
        return None;
    };
    let (SEQUENCE, tbs, _) = element(certificate)? else {
        return None;
    };
    let mut rest = tbs;
    // version [0] (optional), serialNumber, signature algorithm.
    let (tag, _, after) = element(rest)?;
    rest = if tag == VERSION {
        element(after)?.2
    } else {
        after
    };
    rest = element(rest)?.2;
    let (_, issuer, after) = element(rest)?;
    let (_, _validity, after) = element(after)?;
    let (_, subject, _) = element(after)?;
    Some((issuer, subject))
}

/// Whether the certificate names itself as its issuer (self-signed).
pub(crate) fn is_self_issued(der: &[u8]) -> bool {
    names(der).is_some_and(|(issuer, subject)| issuer == subject)
}

/// The subject's common name (`CN=`), if it has one.
pub(crate) fn subject_common_name(der: &[u8]) -> Option<String> {
    let (_, mut rdns) = names(der)?;
    while !rdns.is_empty() {
        let (_, set, after) = element(rdns)?;
        rdns = after;
        let (_, attribute, _) = element(set)?;
        let (_, oid, value) = element(attribute)?;
        if oid == COMMON_NAME {
            let (_, text, _) = element(value)?;
            return Some(String::from_utf8_lossy(text).into_owned());
        }
    }
    None
}

/// `secs` since 1970 as a UTC date and time (`2020-01-02 00:00:00 UTC`),
/// for certificate validity in errors (days to civil dates as in Howard
/// Hinnant's `civil_from_days`).
pub(crate) fn utc(secs: u64) -> String {
    let days = secs / 86_400;
    let (hh, mm, ss) = (secs % 86_400 / 3_600, secs % 3_600 / 60, secs % 60);
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {hh:02}:{mm:02}:{ss:02} UTC")
}

#[cfg(test)]
mod tests {
    use super::utc;

    #[test]
    fn utc_dates_across_leap_days_and_centuries() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_577_923_200 + 3_661), "2020-01-02 01:01:01 UTC");
        assert_eq!(utc(4_102_444_800), "2100-01-01 00:00:00 UTC");
        assert_eq!(utc(32_503_680_000), "3000-01-01 00:00:00 UTC");
    }
}
