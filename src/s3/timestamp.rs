//! Times in XML answers s3ferry writes itself, in S3's form: ISO 8601 in UTC with milliseconds
//! (`2026-11-30T15:22:46.696Z`). Nanoseconds, which RFC 3339 allows, break clients that parse
//! S3's exact form (the MinIO Python client).

use time::OffsetDateTime;
use time::macros::format_description;

/// `t` as S3 writes `<LastModified>` and `<CreationDate>`.
pub fn s3_timestamp(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        ))
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000Z".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_carry_milliseconds_in_utc() {
        let t = time::macros::datetime!(2026-11-30 15:22:46.696790968 +01:00);
        assert_eq!(s3_timestamp(t), "2026-11-30T14:22:46.696Z");
    }
}
