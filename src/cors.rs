//! CORS for browsers: preflights answered at the edge, CORS headers on actual answers.
//!
//! A bucket route may carry CORS rules (`[[buckets.cors]]`, the fields of S3's `CORSRule`). They
//! are evaluated as Amazon S3 evaluates a bucket's CORS configuration
//! (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/cors.html>, "How Amazon S3 evaluates
//! the CORS configuration on a bucket"): the first rule whose allowed origins match the request's
//! `Origin`, whose allowed methods hold the method (`Access-Control-Request-Method` on a
//! preflight, the request's own method otherwise) and, on a preflight, whose allowed headers
//! match every header named in `Access-Control-Request-Headers`, decides; no match on a
//! preflight is 403 `AccessForbidden`. [`decide_preflight`] and [`decide_actual`] are that rule
//! as pure functions. Which headers S3 answers with (`*` or the echoed origin, credentials with an
//! echoed origin only, `Vary`) follows Scality's S3-compatible server, which models AWS's answers
//! (<https://github.com/scality/cloudserver>, `lib/api/apiUtils/object/corsResponse.js`); the
//! refusal messages are S3's, as moto (`moto/s3/responses.py`) reproduces them.
//!
//! Every `OPTIONS` request is answered here, before authentication, and never reaches s3s (a
//! browser's preflight carries no credentials, by the Fetch standard):
//! - a bucket with rules: answered from the rules; nothing reaches a provider;
//! - a bucket without rules: the preflight goes to the bucket's provider *unsigned*, with no body,
//!   no query and only the three CORS request headers, so the provider's own CORS configuration
//!   (set with PutBucketCors, which passes through as any operation does) answers, and s3ferry
//!   lends the request none of its keys. The provider's CORS headers come back; its error body
//!   does not (see [`relay_provider_preflight`]);
//! - no bucket, or a bucket no route serves: 403, as S3 answers a bucket without CORS.
//!
//! On a bucket with rules, every other answer (errors included) gets the matching rule's headers
//! and the provider's own `Access-Control-*` headers are replaced; on a bucket without rules the
//! provider's pass through unchanged.

use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use serde::Deserialize;

use crate::access_log::RequestContext;
use crate::error::{GatewayError, render_error};
use crate::route::{Route, RouteTable};
use crate::small_body::{ReadLimits, read_capped};
use crate::target::ClientTarget;
use crate::upstream::OutgoingRequest;
use crate::upstream::exchange::Exchange;
use crate::upstream::sign::EMPTY_PAYLOAD_SHA256;

/// The methods a CORS rule may allow, as S3 takes them.
const CORS_METHODS: &[&str] = &["GET", "PUT", "POST", "DELETE", "HEAD"];

/// S3's `Vary` on CORS answers: the answer depends on these request headers.
const VARY_CORS: &str = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method";

/// The answer S3 gives a preflight no rule allows ("evalution" is S3's spelling).
pub const NOT_ALLOWED_MESSAGE: &str = "CORSResponse: This CORS request is not allowed. This is usually because the \
     evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not \
     whitelisted by the resource's CORS spec.";

/// The answer S3 gives a preflight to a bucket without CORS configuration.
pub const NOT_ENABLED_MESSAGE: &str = "CORSResponse: CORS is not enabled for this bucket.";

/// A preflight's answer from the provider is read up to this size (an S3 error document).
const PROVIDER_PREFLIGHT_BODY_MAX: usize = 16 * 1024;

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

/// What the edge needs to know of a request's CORS side, read before the trust boundary cuts
/// the headers down.
#[derive(Debug)]
pub struct EdgeCors {
    /// The rules of the addressed bucket (empty: none, or no bucket routed).
    rules: Arc<[CorsRule]>,
    origin: Option<String>,
    method: Method,
}

impl EdgeCors {
    /// Reads the request's `Origin` and the rules of the bucket it addresses.
    pub fn of(method: &Method, headers: &HeaderMap, target: Option<&ClientTarget>, routes: &RouteTable) -> Self {
        let rules = target
            .and_then(|t| t.bucket.as_deref())
            .and_then(|bucket| routes.resolve(bucket).ok())
            .map_or_else(|| Arc::from(Vec::new()), |route| route.cors.clone());
        Self {
            rules,
            origin: header_text(headers, "origin").map(str::to_string),
            method: method.clone(),
        }
    }

    /// On a bucket with rules, the answer's CORS headers are the matching rule's (none when no
    /// rule matches), never the provider's; `Vary` is set on every answer of such a bucket,
    /// since what it carries depends on the `Origin`. Other buckets' answers are left as the
    /// provider gave them. `OPTIONS` answers carry their own.
    pub fn apply(&self, headers: &mut HeaderMap) {
        if self.rules.is_empty() || self.method == Method::OPTIONS {
            return;
        }
        let provider_cors: Vec<HeaderName> = headers
            .keys()
            .filter(|name| name.as_str().starts_with("access-control-"))
            .cloned()
            .collect();
        for name in provider_cors {
            headers.remove(name);
        }
        if let Some(grant) = self
            .origin
            .as_deref()
            .and_then(|origin| decide_actual(&self.rules, origin, self.method.as_str()))
        {
            grant.write(headers);
        }
        headers.append(http::header::VARY, HeaderValue::from_static(VARY_CORS));
    }
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

/// Answers an `OPTIONS` request, before authentication (see the module documentation).
/// `target` is the edge's one parse of the request target; `ctx` gets the access-log fields.
pub async fn answer_options(
    headers: &HeaderMap,
    target: &ClientTarget,
    routes: &RouteTable,
    ctx: &RequestContext,
) -> http::Response<s3s::Body> {
    let request_id = &*ctx.request_id;
    let preflight = Preflight {
        origin: header_text(headers, "origin"),
        method: header_text(headers, "access-control-request-method"),
        request_headers: header_text(headers, "access-control-request-headers"),
    };
    let route = target.bucket.as_deref().and_then(|bucket| routes.resolve(bucket).ok());
    ctx.record(|f| {
        f.operation = "OptionsObject";
        f.bucket.clone_from(&target.bucket);
    });
    let decided = match &route {
        Some(route) if route.cors.is_empty() && preflight.origin.is_some() && preflight.method.is_some() => {
            ctx.record(|f| f.upstream = Some(route.provider.settings.name.clone()));
            return relay_provider_preflight(route, target, preflight, request_id).await;
        }
        Some(route) => decide_preflight(&route.cors, preflight),
        None => decide_preflight(&[], preflight),
    };
    match decided {
        Ok(grant) => {
            let mut response = http::Response::new(s3s::Body::empty());
            grant.write(response.headers_mut());
            response
                .headers_mut()
                .insert(http::header::VARY, HeaderValue::from_static(VARY_CORS));
            response
        }
        Err(refusal) => refusal_response(refusal, request_id),
    }
}

fn refusal_response(refusal: PreflightRefusal, request_id: &str) -> http::Response<s3s::Body> {
    let (code, status, message) = refusal.code_status_message();
    render_error(status, code, message, None, request_id).map(s3s::Body::from)
}

/// A preflight for a bucket without rules, sent on to its provider unsigned: the provider's
/// CORS configuration answers. What comes back is the status and the CORS headers
/// (`Access-Control-*`, `Vary`); an error body is never relayed (it may name the upstream
/// bucket or host): any other answer but a server error is S3's 403 `AccessForbidden`, with the
/// provider's message only when it is one of S3's fixed `CORSResponse:` messages.
async fn relay_provider_preflight(
    route: &Route,
    target: &ClientTarget,
    preflight: Preflight<'_>,
    request_id: &str,
) -> http::Response<s3s::Body> {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("origin", preflight.origin),
        ("access-control-request-method", preflight.method),
        ("access-control-request-headers", preflight.request_headers),
    ] {
        if let Some(value) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.insert(name, value);
        }
    }
    let request = OutgoingRequest {
        method: Method::OPTIONS,
        bucket: Some(route.upstream_bucket.clone()),
        encoded_key: target.encoded_key(),
        query: Vec::new(),
        headers,
        body: crate::body::empty(),
        payload_hash: EMPTY_PAYLOAD_SHA256.into(),
    };
    let provider = &route.provider;
    let answer = match Exchange::new(request).unsigned().send(provider).await {
        Ok(answer) => answer,
        Err(error) => {
            tracing::warn!(request_id, provider = %provider.settings.name, error = %error, "CORS preflight to the provider failed");
            return error.to_response(request_id).map(s3s::Body::from);
        }
    };
    let (parts, body) = answer.into_parts();
    if parts.status.is_success() {
        let mut response = http::Response::new(s3s::Body::empty());
        for (name, value) in &parts.headers {
            if name.as_str().starts_with("access-control-") || name == http::header::VARY {
                response.headers_mut().append(name.clone(), value.clone());
            }
        }
        return response;
    }
    // A provider without CORS support may answer 501 (s3s-fs does): for the browser that is a
    // bucket without CORS. Other server errors are the provider failing, and said so.
    if parts.status.is_server_error() && parts.status != StatusCode::NOT_IMPLEMENTED {
        let error = GatewayError::unreadable_error_answer(&provider.settings.name, parts.status);
        return error.to_response(request_id).map(s3s::Body::from);
    }
    let limits = ReadLimits {
        max: PROVIDER_PREFLIGHT_BODY_MAX,
        idle: provider.settings.read_timeout,
    };
    let read = read_capped(body, None, limits, provider.budget()).await.ok();
    let message = read
        .as_deref()
        .and_then(crate::error::parse_error_code)
        .map(|(_, message)| message)
        .filter(|m| m.starts_with("CORSResponse:") && m.len() <= 512);
    match message {
        Some(message) => {
            render_error(StatusCode::FORBIDDEN, "AccessForbidden", &message, None, request_id).map(s3s::Body::from)
        }
        None => refusal_response(PreflightRefusal::NotEnabled, request_id),
    }
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
