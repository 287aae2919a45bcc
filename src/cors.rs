//! CORS rules and what they decide, as pure functions: the rules a bucket route carries
//! (`[[buckets.cors]]`, the fields of S3's `CORSRule`), evaluated as Amazon S3 evaluates a bucket's
//! CORS configuration (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/cors.html>, "How
//! Amazon S3 evaluates the CORS configuration on a bucket"): the first rule whose allowed origins
//! match the request's `Origin`, whose allowed methods hold the method (`Access-Control-Request-Method`
//! on a preflight, the request's own method otherwise) and, on a preflight, whose allowed headers
//! match every header named in `Access-Control-Request-Headers`, decides; no match on a preflight
//! is 403 `AccessForbidden`. [`decide_preflight`] and [`decide_actual`] are that rule. Which
//! headers S3 answers with (`*` or the echoed origin, credentials with an echoed origin only,
//! `Vary`) follows Scality's S3-compatible server, which models AWS's answers
//! (<https://github.com/scality/cloudserver>, `lib/api/apiUtils/object/corsResponse.js`); the
//! refusal messages are S3's, as moto (`moto/s3/responses.py`) reproduces them.
//!
//! The edge applies them (`server::cors`): preflights answered before authentication, CORS
//! headers on actual answers.

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde::Deserialize;

/// The methods a CORS rule may allow, as S3 takes them.
const CORS_METHODS: &[&str] = &["GET", "PUT", "POST", "DELETE", "HEAD"];

/// S3's `Vary` on CORS answers: the answer depends on these request headers.
pub const VARY_CORS: &str = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method";

/// The answer S3 gives a preflight no rule allows ("evalution" is S3's spelling).
pub const NOT_ALLOWED_MESSAGE: &str = "CORSResponse: This CORS request is not allowed. This is usually because the \
     evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not \
     whitelisted by the resource's CORS spec.";

/// The answer S3 gives a preflight to a bucket without CORS configuration.
pub const NOT_ENABLED_MESSAGE: &str = "CORSResponse: CORS is not enabled for this bucket.";

/// `[[buckets.cors]]` as written: S3's `CORSRule` fields.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsRuleConfig {
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Vec<String>,
    #[serde(default)]
    pub allowed_headers: Vec<String>,
    #[serde(default)]
    pub expose_headers: Vec<String>,
    pub max_age_secs: Option<u32>,
}

/// One validated CORS rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsRule {
    /// Origins, each with at most one `*` (which matches any run of characters).
    allowed_origins: Vec<String>,
    /// Among [`CORS_METHODS`].
    allowed_methods: Vec<String>,
    /// Lowercase, each with at most one `*`; matched without regard to case.
    allowed_headers: Vec<String>,
    /// Response headers the browser may show the page.
    expose_headers: Vec<String>,
    max_age_secs: Option<u32>,
}

impl CorsRule {
    /// Validates a rule as S3's PutBucketCors does. The error names the field and the reason.
    pub fn new(config: CorsRuleConfig) -> Result<Self, (&'static str, String)> {
        if config.allowed_origins.is_empty() {
            return Err(("allowed_origins", "at least one origin is needed".into()));
        }
        for origin in &config.allowed_origins {
            if origin.matches('*').count() > 1 {
                return Err((
                    "allowed_origins",
                    format!("'{origin}': an origin may hold at most one '*' wildcard"),
                ));
            }
            if origin.is_empty() || HeaderValue::from_str(origin).is_err() {
                return Err(("allowed_origins", format!("'{origin}' is not an origin")));
            }
        }
        if config.allowed_methods.is_empty() {
            return Err(("allowed_methods", "at least one method is needed".into()));
        }
        for method in &config.allowed_methods {
            if !CORS_METHODS.contains(&method.as_str()) {
                return Err((
                    "allowed_methods",
                    format!("'{method}' is not one of {}", CORS_METHODS.join(", ")),
                ));
            }
        }
        for header in &config.allowed_headers {
            let name = header.replace('*', "");
            if header.matches('*').count() > 1 || (!name.is_empty() && HeaderName::from_bytes(name.as_bytes()).is_err())
            {
                return Err((
                    "allowed_headers",
                    format!("'{header}' is not a header name with at most one '*' wildcard"),
                ));
            }
        }
        for header in &config.expose_headers {
            if HeaderName::from_bytes(header.as_bytes()).is_err() {
                return Err(("expose_headers", format!("'{header}' is not a header name")));
            }
        }
        Ok(Self {
            allowed_origins: config.allowed_origins,
            allowed_methods: config.allowed_methods,
            allowed_headers: config.allowed_headers.iter().map(|h| h.to_ascii_lowercase()).collect(),
            expose_headers: config.expose_headers,
            max_age_secs: config.max_age_secs,
        })
    }

    /// The first allowed origin that matches `origin`.
    fn matching_origin(&self, origin: &str) -> Option<&str> {
        self.allowed_origins
            .iter()
            .map(String::as_str)
            .find(|allowed| matches_wildcard(allowed, origin))
    }

    fn allows_method(&self, method: &str) -> bool {
        self.allowed_methods.iter().any(|m| m == method)
    }

    fn allows_header(&self, header: &str) -> bool {
        self.allowed_headers
            .iter()
            .any(|allowed| matches_wildcard(allowed, header))
    }
}

/// `pattern` with at most one `*` (any run of characters) against `value`.
fn matches_wildcard(pattern: &str, value: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == value,
        Some((prefix, suffix)) => {
            value.len() >= prefix.len() + suffix.len() && value.starts_with(prefix) && value.ends_with(suffix)
        }
    }
}

/// What a rule grants one request: the CORS response headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsGrant {
    /// `*` when the rule's matching origin is `*`; the request's origin otherwise.
    pub allow_origin: String,
    /// S3 sends `Access-Control-Allow-Credentials: true` whenever it echoes the origin (never
    /// with `*`, which browsers refuse together with credentials).
    pub allow_credentials: bool,
    pub allow_methods: String,
    /// The requested headers (preflight only), as requested, lowercase.
    pub allow_headers: Option<String>,
    pub expose_headers: Option<String>,
    pub max_age_secs: Option<u32>,
}

impl CorsGrant {
    fn of(rule: &CorsRule, matched_origin: &str, origin: &str, allow_headers: Option<String>) -> Self {
        let any_origin = matched_origin == "*";
        Self {
            allow_origin: if any_origin { "*".into() } else { origin.into() },
            allow_credentials: !any_origin,
            allow_methods: rule.allowed_methods.join(", "),
            allow_headers,
            expose_headers: (!rule.expose_headers.is_empty()).then(|| rule.expose_headers.join(", ")),
            max_age_secs: rule.max_age_secs,
        }
    }

    /// Writes the grant's headers (replacing any of the same name).
    pub fn write(&self, headers: &mut HeaderMap) {
        let mut set = |name: &'static str, value: &str| {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(name, value);
            }
        };
        set("access-control-allow-origin", &self.allow_origin);
        if self.allow_credentials {
            set("access-control-allow-credentials", "true");
        }
        set("access-control-allow-methods", &self.allow_methods);
        if let Some(h) = &self.allow_headers {
            set("access-control-allow-headers", h);
        }
        if let Some(h) = &self.expose_headers {
            set("access-control-expose-headers", h);
        }
        if let Some(age) = self.max_age_secs {
            set("access-control-max-age", &age.to_string());
        }
    }
}

/// Why a preflight is refused, with S3's code, status and message for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreflightRefusal {
    /// No `Origin` header.
    NoOrigin,
    /// No (or an unreadable) `Access-Control-Request-Method`.
    NoMethod,
    /// No rule matches.
    NotAllowed,
    /// The bucket has no CORS configuration (or is not routed).
    NotEnabled,
}

impl PreflightRefusal {
    pub fn code_status_message(self) -> (&'static str, StatusCode, &'static str) {
        match self {
            Self::NoOrigin => (
                "BadRequest",
                StatusCode::BAD_REQUEST,
                "Insufficient information. Origin request header needed.",
            ),
            Self::NoMethod => (
                "BadRequest",
                StatusCode::BAD_REQUEST,
                "Insufficient information. Access-Control-Request-Method request header needed.",
            ),
            Self::NotAllowed => ("AccessForbidden", StatusCode::FORBIDDEN, NOT_ALLOWED_MESSAGE),
            Self::NotEnabled => ("AccessForbidden", StatusCode::FORBIDDEN, NOT_ENABLED_MESSAGE),
        }
    }
}

/// A preflight as the browser sent it (header values as text, `None` when absent).
#[derive(Debug, Clone, Copy, Default)]
pub struct Preflight<'a> {
    pub origin: Option<&'a str>,
    pub method: Option<&'a str>,
    pub request_headers: Option<&'a str>,
}

/// The preflight answer of `rules`: the first rule whose origin, method and every requested
/// header match grants it.
pub fn decide_preflight(rules: &[CorsRule], preflight: Preflight<'_>) -> Result<CorsGrant, PreflightRefusal> {
    let origin = preflight.origin.ok_or(PreflightRefusal::NoOrigin)?;
    let method = preflight.method.ok_or(PreflightRefusal::NoMethod)?;
    if rules.is_empty() {
        return Err(PreflightRefusal::NotEnabled);
    }
    let requested: Vec<String> = preflight
        .request_headers
        .unwrap_or("")
        .split(',')
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect();
    rules
        .iter()
        .find_map(|rule| {
            let matched = rule.matching_origin(origin)?;
            let headers_ok = requested.iter().all(|h| rule.allows_header(h));
            (rule.allows_method(method) && headers_ok).then(|| {
                let allow_headers = (!requested.is_empty()).then(|| requested.join(", "));
                CorsGrant::of(rule, matched, origin, allow_headers)
            })
        })
        .ok_or(PreflightRefusal::NotAllowed)
}

/// The CORS headers of an actual (non-`OPTIONS`) request's answer: the first rule whose origin
/// matches and that allows the request's method; `None` when none does (the browser then
/// withholds the answer from the page).
pub fn decide_actual(rules: &[CorsRule], origin: &str, method: &str) -> Option<CorsGrant> {
    rules.iter().find_map(|rule| {
        let matched = rule.matching_origin(origin)?;
        rule.allows_method(method)
            .then(|| CorsGrant::of(rule, matched, origin, None))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(origins: &[&str], methods: &[&str], headers: &[&str], expose: &[&str], max_age: Option<u32>) -> CorsRule {
        let strings = |v: &[&str]| v.iter().map(|s| (*s).to_string()).collect();
        CorsRule::new(CorsRuleConfig {
            allowed_origins: strings(origins),
            allowed_methods: strings(methods),
            allowed_headers: strings(headers),
            expose_headers: strings(expose),
            max_age_secs: max_age,
        })
        .expect("valid rule")
    }

    fn grant(origin: &str, credentials: bool, methods: &str, headers: Option<&str>) -> CorsGrant {
        CorsGrant {
            allow_origin: origin.into(),
            allow_credentials: credentials,
            allow_methods: methods.into(),
            allow_headers: headers.map(str::to_string),
            expose_headers: None,
            max_age_secs: None,
        }
    }

    #[test]
    fn preflights_are_decided_by_the_first_matching_rule() {
        let rules = vec![
            rule(
                &["https://app.example"],
                &["GET", "PUT"],
                &["content-type", "x-amz-*"],
                &[],
                None,
            ),
            rule(&["https://*.example"], &["GET"], &[], &[], None),
            rule(&["*"], &["GET", "HEAD"], &["*"], &[], None),
        ];
        let pf = |origin, method, headers| Preflight {
            origin,
            method,
            request_headers: headers,
        };
        use PreflightRefusal::*;
        let table: Vec<(Preflight<'_>, Result<CorsGrant, PreflightRefusal>)> = vec![
            // The first rule: origin, method and every header match; the origin is echoed.
            (
                pf(
                    Some("https://app.example"),
                    Some("PUT"),
                    Some("Content-Type, X-Amz-Meta-A"),
                ),
                Ok(grant(
                    "https://app.example",
                    true,
                    "GET, PUT",
                    Some("content-type, x-amz-meta-a"),
                )),
            ),
            // A header the first rule does not allow: PUT is allowed by no later rule.
            (
                pf(Some("https://app.example"), Some("PUT"), Some("x-other")),
                Err(NotAllowed),
            ),
            // ... but GET with it falls to the `*` rule, whose origin is answered as `*`.
            (
                pf(Some("https://app.example"), Some("GET"), Some("x-other")),
                Ok(grant("*", false, "GET, HEAD", Some("x-other"))),
            ),
            // The wildcard origin of the second rule; no headers requested.
            (
                pf(Some("https://cdn.example"), Some("GET"), None),
                Ok(grant("https://cdn.example", true, "GET", None)),
            ),
            // Methods are case-sensitive, as S3's are.
            (pf(Some("https://cdn.example"), Some("get"), None), Err(NotAllowed)),
            (pf(Some("https://cdn.example"), Some("DELETE"), None), Err(NotAllowed)),
            (pf(None, Some("GET"), None), Err(NoOrigin)),
            (pf(Some("https://app.example"), None, None), Err(NoMethod)),
        ];
        for (preflight, expected) in table {
            assert_eq!(decide_preflight(&rules, preflight), expected, "{preflight:?}");
        }
        let only_app = vec![rules[0].clone()];
        assert_eq!(
            decide_preflight(&only_app, pf(Some("http://app.example"), Some("GET"), None)),
            Err(NotAllowed),
            "the scheme is part of the origin"
        );
        assert_eq!(
            decide_preflight(&[], pf(Some("https://app.example"), Some("GET"), None)),
            Err(NotEnabled)
        );
    }

    #[test]
    fn actual_requests_match_origin_and_method_only() {
        let rules = vec![
            rule(&["https://app.example"], &["PUT"], &[], &["ETag"], Some(3000)),
            rule(&["https://app.example", "*"], &["GET"], &[], &[], None),
        ];
        let mut put = grant("https://app.example", true, "PUT", None);
        put.expose_headers = Some("ETag".into());
        put.max_age_secs = Some(3000);
        assert_eq!(decide_actual(&rules, "https://app.example", "PUT"), Some(put));
        // The matching origin of the second rule is the literal one, so it is echoed.
        assert_eq!(
            decide_actual(&rules, "https://app.example", "GET"),
            Some(grant("https://app.example", true, "GET", None))
        );
        assert_eq!(
            decide_actual(&rules, "https://other.example", "GET"),
            Some(grant("*", false, "GET", None))
        );
        assert_eq!(decide_actual(&rules, "https://other.example", "PUT"), None);
        assert_eq!(decide_actual(&rules, "https://app.example", "DELETE"), None);
    }

    #[test]
    fn wildcards_match_any_run_of_characters_once() {
        for (pattern, value, expected) in [
            ("*", "", true),
            ("https://*.example", "https://a.b.example", true),
            ("https://*.example", "https://.example", true),
            ("https://*.example", "https://example", false),
            ("x-amz-*", "x-amz-meta-a", true),
            ("ab*ba", "aba", false),
            ("https://app.example", "https://app.example.evil", false),
        ] {
            assert_eq!(matches_wildcard(pattern, value), expected, "{pattern} vs {value}");
        }
    }

    #[test]
    fn rules_are_validated_as_s3_does() {
        let config = |origins: &[&str], methods: &[&str], headers: &[&str]| CorsRuleConfig {
            allowed_origins: origins.iter().map(|s| (*s).to_string()).collect(),
            allowed_methods: methods.iter().map(|s| (*s).to_string()).collect(),
            allowed_headers: headers.iter().map(|s| (*s).to_string()).collect(),
            expose_headers: Vec::new(),
            max_age_secs: None,
        };
        let field = |c| CorsRule::new(c).err().map(|(field, _)| field);
        assert_eq!(
            field(config(&["https://*.*.example"], &["GET"], &[])),
            Some("allowed_origins")
        );
        assert_eq!(field(config(&[], &["GET"], &[])), Some("allowed_origins"));
        assert_eq!(field(config(&["*"], &["PATCH"], &[])), Some("allowed_methods"));
        assert_eq!(field(config(&["*"], &["get"], &[])), Some("allowed_methods"));
        assert_eq!(field(config(&["*"], &[], &[])), Some("allowed_methods"));
        assert_eq!(field(config(&["*"], &["GET"], &["a*b*"])), Some("allowed_headers"));
        assert_eq!(
            field(config(&["*"], &["GET"], &["bad header"])),
            Some("allowed_headers")
        );
        assert_eq!(
            field(config(&["https://*.example"], &["GET", "HEAD"], &["*", "x-amz-*"])),
            None
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 512, ..Default::default() })]

        /// Whatever a browser (or anyone) sends, the decision does not panic, and a grant names
        /// either `*` (never with credentials) or exactly the request's origin, for a method
        /// and headers one rule allows.
        #[test]
        fn any_preflight_is_decided_without_panic_and_grants_only_what_a_rule_allows(
            origin in "[a-z:/.*-]{0,24}",
            method in "(GET|PUT|POST|DELETE|HEAD|get|PATCH|)",
            headers in "[a-zA-Z, *-]{0,40}",
            pattern in "(https://)?[a-z.]{1,6}\\*?[a-z.]{0,6}",
        ) {
            let rules = vec![
                rule(&[&pattern], &["GET", "PUT"], &["content-type", "x-amz-*"], &[], None),
                rule(&["*"], &["HEAD"], &[], &[], None),
            ];
            let preflight = Preflight { origin: Some(&origin), method: Some(&method), request_headers: Some(&headers) };
            if let Ok(grant) = decide_preflight(&rules, preflight) {
                proptest::prop_assert!(
                    (grant.allow_origin == "*" && !grant.allow_credentials)
                        || (grant.allow_origin == origin && grant.allow_credentials)
                );
                proptest::prop_assert!(grant.allow_methods.split(", ").any(|m| m == method));
            }
            if let Some(grant) = decide_actual(&rules, &origin, &method) {
                proptest::prop_assert!(grant.allow_origin == "*" || grant.allow_origin == origin);
                proptest::prop_assert!(grant.allow_headers.is_none());
            }
        }
    }

    #[test]
    fn a_grant_writes_s3s_headers() {
        let mut headers = HeaderMap::new();
        let mut g = grant("https://app.example", true, "GET, PUT", Some("content-type"));
        g.expose_headers = Some("ETag".into());
        g.max_age_secs = Some(3000);
        g.write(&mut headers);
        let get = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("-");
        assert_eq!(get("access-control-allow-origin"), "https://app.example");
        assert_eq!(get("access-control-allow-credentials"), "true");
        assert_eq!(get("access-control-allow-methods"), "GET, PUT");
        assert_eq!(get("access-control-allow-headers"), "content-type");
        assert_eq!(get("access-control-expose-headers"), "ETag");
        assert_eq!(get("access-control-max-age"), "3000");
    }
}
