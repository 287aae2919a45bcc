//! One integration-test binary: real upstream servers, the gateway, real clients.
#![allow(clippy::unwrap_used, clippy::too_many_lines)]

mod body_budget;
mod chunked_properties;
mod connection_timeouts;
mod core_ops;
mod deploy;
mod dialects;
mod error_detail;
mod faults;
mod list_v1_only;
mod local_provider;
mod migration;
mod migration_dialects;
mod migration_faults;
mod moto;
mod sidecar;
mod signing_properties;
mod sigv2_upstream;
mod streaming;
mod support;
mod tls;
mod trailers;
mod trust_boundary;
mod upstream_failures;
mod verification;
