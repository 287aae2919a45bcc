//! Prometheus metrics: one [`Metrics`] per running gateway, made at start-up and handed to
//! whoever records (the edge, the gateway, the accept loop) as `Arc<Metrics>`; rendered in the
//! text exposition format by the admin listener's `/metrics`.
//!
//! Each instance owns its own registry, so two gateways in one process (the integration tests)
//! never see each other's numbers. Label values are bounded sets: operation names, provider
//! names, status codes, error kinds and configured bucket names — never keys or client input.

use std::time::Duration;

use prometheus::{
    Encoder as _, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

/// The label value for "not known" (no provider chosen, operation not classified), as in the
/// access log.
pub const UNKNOWN: &str = "-";

/// Whole requests: quick HEADs to multi-minute transfers of large objects.
const REQUEST_SECONDS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];
/// Time to the provider's response headers.
const UPSTREAM_SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Every metric s3ferry exports.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    request_seconds: HistogramVec,
    request_bytes: IntCounterVec,
    response_bytes: IntCounterVec,
    upstream_seconds: HistogramVec,
    upstream_errors: IntCounterVec,
    upstream_retries: IntCounterVec,
    active_connections: IntGauge,
    buffered_body_budget_free: IntGauge,
    connection_limit_reached: IntCounter,
    config_reloads: IntCounterVec,
    migration_new_hits: IntCounterVec,
    migration_fallbacks: IntCounterVec,
    migration_copies: IntCounterVec,
    migration_copy_bytes: IntCounterVec,
    migration_copies_already_in_new: IntCounterVec,
    migration_tombstones: IntCounterVec,
    migration_status: MigrationGauges,
}

/// The gauges of each migrated bucket's status (see `migration::status`), set from the
/// `/migration` view each time it is read from the providers.
struct MigrationGauges {
    only_in_old_objects: GaugeVec,
    only_in_old_bytes: GaugeVec,
    copied_objects: GaugeVec,
    copied_bytes: GaugeVec,
    tombstoned_objects: GaugeVec,
    failed_objects: GaugeVec,
    left_behind_objects: GaugeVec,
    copy_rate_objects: GaugeVec,
    copy_rate_bytes: GaugeVec,
    eta_seconds: GaugeVec,
}

impl MigrationGauges {
    fn all(&self) -> [&GaugeVec; 10] {
        [
            &self.only_in_old_objects,
            &self.only_in_old_bytes,
            &self.copied_objects,
            &self.copied_bytes,
            &self.tombstoned_objects,
            &self.failed_objects,
            &self.left_behind_objects,
            &self.copy_rate_objects,
            &self.copy_rate_bytes,
            &self.eta_seconds,
        ]
    }
}

/// One migrated bucket's status as gauges; `None`: not known, and the series is left out
/// (rather than a 0 that would read as "done").
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MigrationReadings {
    pub bucket: String,
    pub only_in_old: Option<(u64, u64)>,
    pub copied: (u64, u64),
    pub tombstoned: Option<u64>,
    pub failed: u64,
    pub left_behind: Option<u64>,
    /// Objects and bytes per second.
    pub copy_rate: Option<(f64, f64)>,
    pub eta_seconds: Option<u64>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// The `s3ferry_upstream_*` metrics of one running gateway, as a provider's client records
/// them.
#[derive(Clone)]
pub struct UpstreamMetrics {
    seconds: HistogramVec,
    errors: IntCounterVec,
    retries: IntCounterVec,
}

impl std::fmt::Debug for UpstreamMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamMetrics").finish_non_exhaustive()
    }
}

impl UpstreamMetrics {
    /// A provider answered with response headers after `elapsed`.
    pub fn answered(&self, provider: &str, elapsed: Duration) {
        self.seconds
            .with_label_values(&[provider])
            .observe(elapsed.as_secs_f64());
    }

    /// A provider exchange failed; `kind` is one of a fixed set.
    pub fn error(&self, provider: &str, kind: &str) {
        self.errors.with_label_values(&[non_empty(provider), kind]).inc();
    }

    /// A request sent again, for `reason` (see `upstream::retry`).
    pub fn retried(&self, provider: &str, reason: &str) {
        self.retries.with_label_values(&[provider, reason]).inc();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            register(&registry, IntCounterVec::new(Opts::new(name, help), labels))
        };
        let gauge = |name: &str, help: &str| register(&registry, GaugeVec::new(Opts::new(name, help), &["bucket"]));
        let histogram = |name: &str, help: &str, labels: &[&str], buckets: &[f64]| {
            register(
                &registry,
                HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets.to_vec()), labels),
            )
        };
        Self {
            requests: counter(
                "s3ferry_requests_total",
                "Client requests answered, by S3 operation, HTTP status and provider.",
                &["operation", "status", "provider"],
            ),
            request_seconds: histogram(
                "s3ferry_request_duration_seconds",
                "Client request duration, from the request head to the last response byte.",
                &["operation"],
                REQUEST_SECONDS,
            ),
            request_bytes: counter(
                "s3ferry_request_bytes_total",
                "Request body bytes received from clients.",
                &["operation", "provider"],
            ),
            response_bytes: counter(
                "s3ferry_response_bytes_total",
                "Response body bytes sent to clients.",
                &["operation", "provider"],
            ),
            upstream_seconds: histogram(
                "s3ferry_upstream_duration_seconds",
                "Time from sending a request to a provider to its response headers.",
                &["provider"],
                UPSTREAM_SECONDS,
            ),
            upstream_errors: counter(
                "s3ferry_upstream_errors_total",
                "Provider exchanges that failed, by kind: unreachable, timeout, protocol, response_body.",
                &["provider", "kind"],
            ),
            upstream_retries: counter(
                "s3ferry_upstream_retries_total",
                "Provider requests sent again after a failed attempt, by reason: not_connected, no_response, status_5xx.",
                &["provider", "reason"],
            ),
            active_connections: register(
                &registry,
                IntGauge::new("s3ferry_active_connections", "Client connections open now."),
            ),
            buffered_body_budget_free: register(
                &registry,
                IntGauge::new(
                    "s3ferry_buffered_body_budget_free_bytes",
                    "Bytes of server.max_buffered_body_bytes that no buffered request or response body holds now.",
                ),
            ),
            connection_limit_reached: register(
                &registry,
                IntCounter::new(
                    "s3ferry_connection_limit_reached_total",
                    "Times the listener stopped accepting because server.max_connections were open.",
                ),
            ),
            config_reloads: counter(
                "s3ferry_config_reloads_total",
                "Config reloads (SIGHUP), by outcome: applied or refused.",
                &["outcome"],
            ),
            migration_new_hits: counter(
                "s3ferry_migration_new_hits_total",
                "Requests on a migrating bucket served by the new provider.",
                &["bucket"],
            ),
            migration_fallbacks: counter(
                "s3ferry_migration_fallbacks_total",
                "Requests on a migrating bucket that fell back to the old provider.",
                &["bucket"],
            ),
            migration_copies: counter(
                "s3ferry_migration_copies_total",
                "Objects copied from the old provider to the new one, by outcome: done, failed, skipped.",
                &["bucket", "outcome"],
            ),
            migration_copy_bytes: counter(
                "s3ferry_migration_copy_bytes_total",
                "Bytes of objects copied to the new provider (completed copies only).",
                &["bucket"],
            ),
            migration_copies_already_in_new: counter(
                "s3ferry_migration_copies_already_in_new_total",
                "Copies on read (counted as skipped) that found the key already in the new provider when they checked or wrote it: copied by another replica or `s3ferry migrate`, or written by a client. The conditional write refused them; nothing was overwritten.",
                &["bucket"],
            ),
            migration_tombstones: counter(
                "s3ferry_migration_tombstones_total",
                "Deletes recorded as tombstones so the old provider's copy stays hidden.",
                &["bucket"],
            ),
            migration_status: MigrationGauges {
                only_in_old_objects: gauge(
                    "s3ferry_migration_only_in_old_objects",
                    "Objects only in the old provider, as last measured (migrate --status, or the runs since).",
                ),
                only_in_old_bytes: gauge(
                    "s3ferry_migration_only_in_old_bytes",
                    "Bytes of the objects only in the old provider, as last measured.",
                ),
                copied_objects: gauge(
                    "s3ferry_migration_copied_objects",
                    "Objects copied to the new provider by migrate runs (their status records) and by this process's copies on read.",
                ),
                copied_bytes: gauge(
                    "s3ferry_migration_copied_bytes",
                    "Bytes of the objects in s3ferry_migration_copied_objects.",
                ),
                tombstoned_objects: gauge(
                    "s3ferry_migration_tombstoned_objects",
                    "Objects only in the old provider that were deleted through s3ferry (never copied), as last measured.",
                ),
                failed_objects: gauge(
                    "s3ferry_migration_failed_objects",
                    "Copies that failed in the last run of each shard and in this process's copies on read.",
                ),
                left_behind_objects: gauge(
                    "s3ferry_migration_left_behind_objects",
                    "Old objects that can never reach the new provider (lost at cut-over), as last measured.",
                ),
                copy_rate_objects: gauge(
                    "s3ferry_migration_copy_rate_objects_per_second",
                    "Objects per second the migrate runs copying now achieve together.",
                ),
                copy_rate_bytes: gauge(
                    "s3ferry_migration_copy_rate_bytes_per_second",
                    "Bytes per second the migrate runs copying now achieve together.",
                ),
                eta_seconds: gauge(
                    "s3ferry_migration_eta_seconds",
                    "Estimated seconds until the migrate runs copying now are done (absent when none is).",
                ),
            },
            registry,
        }
    }

    /// Sets the migration status gauges to `buckets`, the whole set: a bucket no longer
    /// migrated, or a value no longer known, loses its series.
    pub fn set_migration_status(&self, buckets: &[MigrationReadings]) {
        let gauges = &self.migration_status;
        for gauge in gauges.all() {
            gauge.reset();
        }
        for b in buckets {
            let set = |gauge: &GaugeVec, value: Option<f64>| {
                if let Some(value) = value {
                    gauge.with_label_values(&[b.bucket.as_str()]).set(value);
                }
            };
            set(&gauges.only_in_old_objects, b.only_in_old.map(|(o, _)| o as f64));
            set(&gauges.only_in_old_bytes, b.only_in_old.map(|(_, by)| by as f64));
            set(&gauges.copied_objects, Some(b.copied.0 as f64));
            set(&gauges.copied_bytes, Some(b.copied.1 as f64));
            set(&gauges.tombstoned_objects, b.tombstoned.map(|n| n as f64));
            set(&gauges.failed_objects, Some(b.failed as f64));
            set(&gauges.left_behind_objects, b.left_behind.map(|n| n as f64));
            set(&gauges.copy_rate_objects, b.copy_rate.map(|(o, _)| o));
            set(&gauges.copy_rate_bytes, b.copy_rate.map(|(_, by)| by));
            set(&gauges.eta_seconds, b.eta_seconds.map(|s| s as f64));
        }
    }

    /// One finished client request (recorded once, at the edge, with the access-log event).
    pub fn observe_request(&self, request: &RequestObservation<'_>) {
        let operation = non_empty(request.operation);
        let provider = non_empty(request.provider);
        let status = request.status.to_string();
        self.requests
            .with_label_values(&[operation, status.as_str(), provider])
            .inc();
        self.request_seconds
            .with_label_values(&[operation])
            .observe(request.duration.as_secs_f64());
        self.request_bytes
            .with_label_values(&[operation, provider])
            .inc_by(request.bytes_in);
        self.response_bytes
            .with_label_values(&[operation, provider])
            .inc_by(request.bytes_out);
    }

    /// A provider exchange failed; `kind` is one of a fixed set (see
    /// `GatewayError::upstream_error_kind`, and `response_body` for a body cut short).
    pub fn upstream_error(&self, provider: &str, kind: &str) {
        self.upstream().error(provider, kind);
    }

    /// The upstream metrics, handed to each provider's client: every exchange with a provider
    /// is recorded where it is sent (`upstream::exchange`).
    pub fn upstream(&self) -> UpstreamMetrics {
        UpstreamMetrics {
            seconds: self.upstream_seconds.clone(),
            errors: self.upstream_errors.clone(),
            retries: self.upstream_retries.clone(),
        }
    }

    pub fn connection_opened(&self) {
        self.active_connections.inc();
    }

    pub fn connection_closed(&self) {
        self.active_connections.dec();
    }

    /// The gauge the body budget keeps up to date (see `small_body::BodyBudget`).
    pub fn buffered_body_budget_free(&self) -> IntGauge {
        self.buffered_body_budget_free.clone()
    }

    pub fn connection_limit_reached(&self) {
        self.connection_limit_reached.inc();
    }

    /// A SIGHUP reload: applied, or refused (the previous config keeps serving).
    pub fn config_reload(&self, applied: bool) {
        let outcome = if applied { "applied" } else { "refused" };
        self.config_reloads.with_label_values(&[outcome]).inc();
    }

    /// A request on a migrating bucket was answered by the new provider.
    pub fn migration_new_hit(&self, bucket: &str) {
        self.migration_new_hits.with_label_values(&[bucket]).inc();
    }

    /// A request on a migrating bucket fell back to the old provider.
    pub fn migration_fallback(&self, bucket: &str) {
        self.migration_fallbacks.with_label_values(&[bucket]).inc();
    }

    /// A copy on read found its key already in the new provider (also counted as skipped).
    pub fn migration_copy_already_in_new(&self, bucket: &str) {
        self.migration_copies_already_in_new.with_label_values(&[bucket]).inc();
    }

    /// A copy from the old provider to the new one ended; `outcome` is "done", "failed" or
    /// "skipped". `bytes` count only for "done": a failed copy stored nothing.
    pub fn migration_copy(&self, bucket: &str, outcome: &str, bytes: u64) {
        self.migration_copies.with_label_values(&[bucket, outcome]).inc();
        if outcome == "done" {
            self.migration_copy_bytes.with_label_values(&[bucket]).inc_by(bytes);
        }
    }

    /// A delete on a migrating bucket left a tombstone.
    pub fn migration_tombstone(&self, bucket: &str) {
        self.migration_tombstones.with_label_values(&[bucket]).inc();
    }

    /// Everything, in the Prometheus text exposition format.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut out = String::new();
        TextEncoder::new().encode_utf8(&self.registry.gather(), &mut out)?;
        Ok(out)
    }

    /// The `Content-Type` of [`Metrics::render`]'s output.
    pub fn content_type(&self) -> String {
        TextEncoder::new().format_type().to_string()
    }
}

/// What the edge knows about a finished request.
#[derive(Debug)]
pub struct RequestObservation<'a> {
    pub operation: &'a str,
    pub status: u16,
    pub provider: &'a str,
    pub duration: Duration,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

fn non_empty(label: &str) -> &str {
    if label.is_empty() { UNKNOWN } else { label }
}

/// Registers a metric defined in this file. The definitions are static (valid names, no
/// duplicates), so a failure here is a programming error caught by the unit tests.
fn register<M: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: prometheus::Result<M>) -> M {
    let metric = metric.expect("static metric definition is valid");
    registry
        .register(Box::new(metric.clone()))
        .expect("static metric names are unique");
    metric
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(metrics: &Metrics) -> String {
        metrics.render().expect("renders")
    }

    #[test]
    fn migration_counters_render_with_their_labels() {
        let m = Metrics::new();
        m.migration_new_hit("photos");
        m.migration_new_hit("photos");
        m.migration_fallback("photos");
        m.migration_copy("photos", "done", 1000);
        m.migration_copy("photos", "failed", 500);
        m.migration_copy("photos", "skipped", 0);
        m.migration_copy_already_in_new("photos");
        m.migration_tombstone("photos");
        let text = rendered(&m);
        for line in [
            "s3ferry_migration_new_hits_total{bucket=\"photos\"} 2",
            "s3ferry_migration_fallbacks_total{bucket=\"photos\"} 1",
            "s3ferry_migration_copies_total{bucket=\"photos\",outcome=\"done\"} 1",
            "s3ferry_migration_copies_total{bucket=\"photos\",outcome=\"failed\"} 1",
            "s3ferry_migration_copies_total{bucket=\"photos\",outcome=\"skipped\"} 1",
            "s3ferry_migration_copy_bytes_total{bucket=\"photos\"} 1000",
            "s3ferry_migration_copies_already_in_new_total{bucket=\"photos\"} 1",
            "s3ferry_migration_tombstones_total{bucket=\"photos\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
        }
    }

    #[test]
    fn a_request_counts_once_with_its_bytes_and_duration() {
        let m = Metrics::new();
        m.observe_request(&RequestObservation {
            operation: "PutObject",
            status: 200,
            provider: "aws",
            duration: Duration::from_millis(20),
            bytes_in: 4096,
            bytes_out: 0,
        });
        m.observe_request(&RequestObservation {
            operation: "",
            status: 403,
            provider: "",
            duration: Duration::from_millis(1),
            bytes_in: 0,
            bytes_out: 300,
        });
        let text = rendered(&m);
        for line in [
            "s3ferry_requests_total{operation=\"PutObject\",provider=\"aws\",status=\"200\"} 1",
            "s3ferry_requests_total{operation=\"-\",provider=\"-\",status=\"403\"} 1",
            "s3ferry_request_bytes_total{operation=\"PutObject\",provider=\"aws\"} 4096",
            "s3ferry_response_bytes_total{operation=\"-\",provider=\"-\"} 300",
            "s3ferry_request_duration_seconds_count{operation=\"PutObject\"} 1",
            "s3ferry_request_duration_seconds_bucket{operation=\"PutObject\",le=\"0.025\"} 1",
            "s3ferry_request_duration_seconds_bucket{operation=\"PutObject\",le=\"0.01\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
        }
    }

    #[test]
    fn migration_gauges_show_what_is_known_and_drop_what_is_not() {
        let m = Metrics::new();
        m.set_migration_status(&[
            MigrationReadings {
                bucket: "photos".into(),
                only_in_old: Some((3, 3000)),
                copied: (7, 7000),
                tombstoned: Some(2),
                failed: 1,
                left_behind: Some(0),
                copy_rate: Some((1.5, 2048.0)),
                eta_seconds: Some(42),
            },
            MigrationReadings {
                bucket: "logs".into(),
                ..MigrationReadings::default()
            },
        ]);
        let text = rendered(&m);
        for line in [
            "s3ferry_migration_only_in_old_objects{bucket=\"photos\"} 3",
            "s3ferry_migration_only_in_old_bytes{bucket=\"photos\"} 3000",
            "s3ferry_migration_copied_objects{bucket=\"photos\"} 7",
            "s3ferry_migration_copied_bytes{bucket=\"photos\"} 7000",
            "s3ferry_migration_tombstoned_objects{bucket=\"photos\"} 2",
            "s3ferry_migration_failed_objects{bucket=\"photos\"} 1",
            "s3ferry_migration_left_behind_objects{bucket=\"photos\"} 0",
            "s3ferry_migration_copy_rate_objects_per_second{bucket=\"photos\"} 1.5",
            "s3ferry_migration_copy_rate_bytes_per_second{bucket=\"photos\"} 2048",
            "s3ferry_migration_eta_seconds{bucket=\"photos\"} 42",
            "s3ferry_migration_copied_objects{bucket=\"logs\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
        }
        assert!(
            !text.contains("s3ferry_migration_eta_seconds{bucket=\"logs\"}"),
            "{text}"
        );
        // The next reading replaces the whole set.
        m.set_migration_status(&[]);
        assert!(
            !rendered(&m).contains("bucket=\"photos\""),
            "only counters of photos remain"
        );
    }

    #[test]
    fn instances_do_not_share_numbers() {
        let a = Metrics::new();
        let b = Metrics::new();
        a.connection_opened();
        assert!(rendered(&a).lines().any(|l| l == "s3ferry_active_connections 1"));
        assert!(rendered(&b).lines().any(|l| l == "s3ferry_active_connections 0"));
    }
}
