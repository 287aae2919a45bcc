//! S3's bucket naming rules, one rule for the config file and for requests.

use crate::error::GatewayError;

/// The route (and grant) name that stands for every bucket without a route of its own.
pub const WILDCARD_BUCKET: &str = "*";

/// S3's bucket naming rules: 3-63 characters of lowercase letters, digits, `-` and `.`,
/// starting and ending with a letter or digit, no `..`, not an IP address. A name that passes
/// needs no encoding anywhere (path, Host, XML).
pub fn bucket_name_problem(name: &str) -> Option<String> {
    let ok_len = (3..=63).contains(&name.len());
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    let ok_ends = name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && name.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric());
    let is_ip = name.parse::<std::net::Ipv4Addr>().is_ok();
    if ok_len && ok_chars && ok_ends && !name.contains("..") && !is_ip {
        None
    } else {
        Some(
            "a bucket name has 3-63 characters: lowercase letters, digits, '-' and '.', starting and \
             ending with a letter or digit, without '..', and is not an IP address"
                .to_string(),
        )
    }
}

/// [`bucket_name_problem`] as the client's error (`InvalidBucketName`, 400).
pub fn check_bucket_name(name: &str) -> Result<(), GatewayError> {
    match bucket_name_problem(name) {
        None => Ok(()),
        Some(rule) => Err(GatewayError::InvalidBucketName(format!(
            "The specified bucket is not valid: {rule}"
        ))),
    }
}
