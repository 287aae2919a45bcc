//! `/migration` on the admin listener: each migrated bucket's cut-over readiness as JSON or as a
//! plain HTML page, and the `s3ferry_migration_*` gauges set from the same numbers.
//!
//! The page only reads the status records `migrate` runs and surveys keep in the new providers
//! (`migration::status_store`), and adds this process's own copies on read. The records are read
//! again at most once per `migration.status_refresh`, by one caller at a time (the others take
//! its answers), like the readiness probes: the port is unauthenticated, and a flood of page
//! loads must not become a flood of provider requests. No background task: nothing is read
//! while nobody looks, and Prometheus's scrapes keep the gauges fresh.
//!
//! Keys appear on the page (the failed copies and the keys left behind, each list capped), as
//! operators need them to act before the cut-over; they are client data, so every value is
//! HTML-escaped and the page loads nothing else (a `Content-Security-Policy` says so too).

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::RoundCache;
use crate::error::GatewayError;
use crate::metrics::MigrationReadings;
use crate::migration::MigrationStats;
use crate::migration::status::{
    BucketStatus, StatusRecord, bucket_status, format_bytes, format_seconds, format_time_ms, now_ms,
};
use crate::migration::status_store::read_records;
use crate::route::Route;

/// How long one bucket's records may take to read.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// One generation's migrated buckets, as the page reads them.
pub(crate) trait MigratedBuckets {
    /// The routes with a `fallback` (explicit buckets; a wildcard route has no bucket names to
    /// read records of).
    fn migrated_routes(&self) -> Vec<Route>;
    /// `migration.status_refresh`.
    fn status_refresh(&self) -> Duration;
}

/// The records last read from the providers, shared by every `/migration` and `/metrics` call
/// for `migration.status_refresh` (see the module docs).
pub(crate) type StatusCache<G> = RoundCache<G, StatusRound>;

/// Every migrated bucket's records, or why they could not be read.
pub(crate) struct StatusRound {
    read_ms: u64,
    buckets: Vec<(String, Result<Vec<StatusRecord>, String>)>,
}

/// Reads every migrated bucket's records at once, each bounded by [`READ_TIMEOUT`].
async fn read_round<G: MigratedBuckets>(generation: &G) -> StatusRound {
    let reads = generation.migrated_routes().into_iter().map(|route| async move {
        let read = match tokio::time::timeout(READ_TIMEOUT, read_records(&route)).await {
            Ok(Ok(records)) => Ok(records),
            Ok(Err(e)) => Err(describe_error(&e)),
            Err(_) => Err(format!(
                "the status records were not read within {} s",
                READ_TIMEOUT.as_secs()
            )),
        };
        (route.client_bucket, read)
    });
    StatusRound {
        read_ms: now_ms(),
        buckets: futures_util::future::join_all(reads).await,
    }
}

fn describe_error(e: &GatewayError) -> String {
    format!("cannot read the status records: {e}")
}

/// What `/migration` answers as JSON.
#[derive(Debug, Serialize)]
pub(crate) struct MigrationPage {
    /// When the records were read from the providers (ms since the Unix epoch).
    pub read_ms: u64,
    pub refresh_seconds: u64,
    pub buckets: Vec<BucketStatus>,
}

/// The page's numbers now: the cached records (read again when older than the refresh time)
/// with this process's copies on read; the gauges are set from the same numbers.
pub(crate) async fn current_page<G: MigratedBuckets>(
    cache: &StatusCache<G>,
    generation: &Arc<G>,
    stats: &MigrationStats,
    metrics: &crate::metrics::Metrics,
) -> MigrationPage {
    let round = cache
        .latest(generation, generation.status_refresh(), read_round(&**generation))
        .await;
    let round = &round.answers;
    let now = now_ms();
    let buckets: Vec<BucketStatus> = round
        .buckets
        .iter()
        .map(|(bucket, read)| {
            let on_read = stats.on_read(bucket);
            match read {
                Ok(records) => bucket_status(bucket, records, &on_read, now),
                Err(e) => BucketStatus::unreadable(bucket, &on_read, e.clone()),
            }
        })
        .collect();
    metrics.set_migration_status(&buckets.iter().map(readings).collect::<Vec<_>>());
    MigrationPage {
        read_ms: round.read_ms,
        refresh_seconds: generation.status_refresh().as_secs(),
        buckets,
    }
}

fn readings(status: &BucketStatus) -> MigrationReadings {
    MigrationReadings {
        bucket: status.bucket.clone(),
        only_in_old: status.only_in_old.as_ref().map(|o| (o.objects, o.bytes)),
        copied: (status.copied.objects, status.copied.bytes),
        tombstoned: status.tombstoned,
        failed: status.failed_objects,
        left_behind: status.left_behind,
        copy_rate: status.copy_rate.map(|r| (r.objects_per_second, r.bytes_per_second)),
        eta_seconds: status.eta_seconds,
    }
}

/// Whether the caller asked for JSON: `?format=json`, or `Accept: application/json` without
/// `?format=html`.
pub(crate) fn wants_json(query: Option<&str>, accept: Option<&str>) -> bool {
    let format = query
        .unwrap_or("")
        .split('&')
        .find_map(|pair| pair.strip_prefix("format="));
    match format {
        Some("json") => true,
        Some(_) => false,
        None => accept.is_some_and(|a| a.to_ascii_lowercase().contains("application/json")),
    }
}

/// Text made safe to place in HTML content and attribute values.
pub(crate) fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page for people: one table per bucket, no scripts, no external assets.
pub(crate) fn render_html(page: &MigrationPage) -> String {
    let mut html = String::from(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>s3ferry migration</title>\n<style>\
         body{font-family:sans-serif;margin:2em;max-width:60em}\
         table{border-collapse:collapse;margin-bottom:1.5em}\
         th,td{text-align:left;padding:.2em .8em;border-bottom:1px solid #ddd;vertical-align:top}\
         .bad{color:#a00}.ok{color:#060}code{word-break:break-all}\
         </style></head><body>\n<h1>s3ferry migration</h1>\n",
    );
    let _ = writeln!(
        html,
        "<p>Read from the providers at {} (again every {} s at most). Copies on read are this \
         gateway process's own since it started.</p>",
        escape_html(&format_time_ms(page.read_ms)),
        page.refresh_seconds
    );
    if page.buckets.is_empty() {
        html.push_str("<p>No bucket is under lazy migration (no route has a <code>fallback</code>).</p>\n");
    }
    for bucket in &page.buckets {
        render_bucket(&mut html, bucket);
    }
    html.push_str("</body></html>\n");
    html
}

fn render_bucket(html: &mut String, b: &BucketStatus) {
    let _ = writeln!(html, "<h2>{}</h2>", escape_html(&b.bucket));
    if let Some(error) = &b.error {
        let _ = writeln!(html, "<p class=\"bad\">{}</p>", escape_html(error));
    }
    html.push_str("<table>\n");
    let mut row = |name: &str, value: String| {
        let _ = writeln!(html, "<tr><th>{name}</th><td>{value}</td></tr>");
    };
    row(
        "only in the old provider",
        match &b.only_in_old {
            Some(o) => escape_html(&format!(
                "{} objects ({}){}, as of {} ({})",
                o.objects,
                format_bytes(o.bytes),
                if o.prefix.is_empty() {
                    String::new()
                } else {
                    format!(" under '{}'", o.prefix)
                },
                format_time_ms(o.as_of_ms),
                match o.measured_by {
                    crate::migration::status::Measured::Survey => "survey",
                    crate::migration::status::Measured::Runs => "estimated from the runs: planned less copied",
                }
            )),
            None => "not measured yet: run <code>s3ferry migrate --status</code>".to_string(),
        },
    );
    row(
        "copied",
        escape_html(&format!(
            "{} objects ({}), of which on read here: {} objects ({})",
            b.copied.objects,
            format_bytes(b.copied.bytes),
            b.copied_on_read.objects,
            format_bytes(b.copied_on_read.bytes)
        )),
    );
    let known = |n: Option<u64>| n.map_or_else(|| "not measured yet".to_string(), |n| n.to_string());
    row("deleted through s3ferry (tombstoned)", known(b.tombstoned));
    row("already in the new provider", known(b.already_in_new));
    row(
        "copy rate",
        match b.copy_rate {
            Some(r) => escape_html(&format!(
                "{:.1} objects/s, {}/s ({} runs copying)",
                r.objects_per_second,
                format_bytes(r.bytes_per_second as u64),
                b.runs.active
            )),
            None => "no run is copying".to_string(),
        },
    );
    row(
        "time left",
        b.eta_seconds.map_or_else(
            || "unknown".to_string(),
            |s| escape_html(&format!("about {}", format_seconds(s))),
        ),
    );
    row(
        "runs",
        escape_html(&format!(
            "{} copying, {} stalled, {} finished, {} interrupted",
            b.runs.active, b.runs.stalled, b.runs.finished, b.runs.interrupted
        )),
    );
    let failed_class = if b.failed_objects > 0 { "bad" } else { "ok" };
    row(
        "failed copies",
        format!("<span class=\"{failed_class}\">{}</span>", b.failed_objects),
    );
    let left_class = if b.left_behind.unwrap_or(0) > 0 { "bad" } else { "ok" };
    row(
        "left behind (lost at cut-over)",
        format!("<span class=\"{left_class}\">{}</span>", known(b.left_behind)),
    );
    html.push_str("</table>\n");
    if !b.failed.is_empty() {
        html.push_str("<table>\n<tr><th>failed key</th><th>reason</th><th>at</th></tr>\n");
        for f in &b.failed {
            let _ = writeln!(
                html,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                escape_html(&f.key),
                escape_html(&f.reason),
                escape_html(&format_time_ms(f.at_ms))
            );
        }
        html.push_str("</table>\n");
    }
    if !b.left_behind_keys.is_empty() {
        html.push_str("<table>\n<tr><th>left-behind key</th><th>why</th></tr>\n");
        for item in &b.left_behind_keys {
            let why = serde_json::to_value(item.reason)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let _ = writeln!(
                html,
                "<tr><td><code>{}</code></td><td>{}</td></tr>",
                escape_html(&item.key),
                escape_html(&why)
            );
        }
        html.push_str("</table>\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::status::{Amount, CopyFailure, OnReadCopies};

    #[test]
    fn json_is_chosen_by_query_then_accept() {
        for (query, accept, json) in [
            (Some("format=json"), None, true),
            (Some("a=1&format=json"), Some("text/html"), true),
            (Some("format=html"), Some("application/json"), false),
            (None, Some("application/json"), true),
            (None, Some("Application/JSON; q=1"), true),
            (None, Some("text/html,*/*"), false),
            (None, None, false),
        ] {
            assert_eq!(wants_json(query, accept), json, "{query:?} {accept:?}");
        }
    }

    #[test]
    fn every_value_on_the_page_is_escaped() {
        let hostile = "<script>alert('x')</script>&\"";
        let mut on_read = OnReadCopies::default();
        on_read.failed(CopyFailure {
            key: hostile.into(),
            reason: format!("GET {hostile} answered 403"),
            at_ms: 1,
        });
        let mut status = bucket_status(hostile, &[], &on_read, 2);
        status.error = Some(hostile.into());
        status.copied = Amount { objects: 1, bytes: 2 };
        let html = render_html(&MigrationPage {
            read_ms: 0,
            refresh_seconds: 30,
            buckets: vec![status],
        });
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("alert('x')"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"),
            "{html}"
        );
        assert!(html.contains("GET &lt;script&gt;"), "the reason is escaped too: {html}");
    }
}
