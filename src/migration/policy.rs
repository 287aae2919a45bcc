//! When a read on the new provider may fall back to the old one.
//!
//! Only a definite miss falls back: `404 NoSuchKey` on GET, `404` on HEAD (HEAD has no body to
//! tell NoSuchKey from NoSuchBucket; a missing bucket on the new side is a miss for every key).
//! A 403, a 5xx, a timeout or any other answer is an error the client must see: falling back
//! then would serve stale data from the old provider while the new one is merely unhealthy.

use http::{Method, StatusCode};

/// What to do with the new provider's answer to a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadDecision {
    /// Relay the new provider's answer.
    Serve,
    /// The key is not in the new provider: check for a tombstone, then try the old provider.
    FallBack,
}

/// Decides from the method, the new provider's status and (for GET) its error code.
pub fn decide_read(method: &Method, status: StatusCode, error_code: Option<&str>) -> ReadDecision {
    match (method, status) {
        (&Method::HEAD, StatusCode::NOT_FOUND) => ReadDecision::FallBack,
        (&Method::GET, StatusCode::NOT_FOUND) if matches!(error_code, Some("NoSuchKey" | "NoSuchBucket")) => {
            ReadDecision::FallBack
        }
        _ => ReadDecision::Serve,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_definite_miss_falls_back() {
        let table: &[(Method, u16, Option<&str>, ReadDecision)] = &[
            (Method::GET, 200, None, ReadDecision::Serve),
            (Method::GET, 206, None, ReadDecision::Serve),
            (Method::GET, 304, None, ReadDecision::Serve),
            (Method::GET, 404, Some("NoSuchKey"), ReadDecision::FallBack),
            (Method::GET, 404, Some("NoSuchBucket"), ReadDecision::FallBack),
            (Method::GET, 404, Some("NoSuchUpload"), ReadDecision::Serve),
            (Method::GET, 404, None, ReadDecision::Serve),
            (Method::GET, 403, Some("AccessDenied"), ReadDecision::Serve),
            (Method::GET, 412, None, ReadDecision::Serve),
            (Method::GET, 500, Some("InternalError"), ReadDecision::Serve),
            (Method::GET, 503, Some("SlowDown"), ReadDecision::Serve),
            (Method::HEAD, 404, None, ReadDecision::FallBack),
            (Method::HEAD, 403, None, ReadDecision::Serve),
            (Method::HEAD, 500, None, ReadDecision::Serve),
            (Method::PUT, 404, Some("NoSuchKey"), ReadDecision::Serve),
        ];
        for (method, status, code, expected) in table {
            let status = StatusCode::from_u16(*status).expect("status");
            assert_eq!(
                decide_read(method, status, *code),
                *expected,
                "{method} {status} {code:?}"
            );
        }
    }
}
