//! s3ferry: an S3-compatible translating proxy gateway.
//!
//! A request's path through the crate, in order:
//!
//! - [`server`]      start, reload and shutdown; what one config builds (providers, routes, the
//!   front door); the listener (limits, TLS); the per-request edge (request id, access log)
//! - [`connection`]  one accepted connection: the connection cap, request-head and idle deadlines
//! - [`auth`]        the trust boundary: what a signature covers, and the client key pairs s3s
//!   verifies every signature form against
//! - [`access`]      who may do what: per-key grants and anonymous access, one pure decision
//! - [`target`]      the bucket, key and copy source a request names, parsed once
//! - [`cors`]        CORS: preflights answered before authentication, CORS headers on answers
//! - [`gateway`]     the lifecycle after verification: read, authorize, route, plan, send, relay;
//!   what s3ferry answers itself (ACLs a provider lacks, ListBuckets, cross-provider copies)
//! - [`post_upload`] browser form uploads (POST Object): the form read as a stream, its policy
//!   checked, the file spooled and sent on as a PutObject
//! - [`route`]       client bucket -> provider and upstream bucket (and fallback provider)
//! - [`dialect`]     provider profiles as data (ACLs, storage classes, ETag case, errors) and the
//!   pure request/response header translation they drive
//! - [`upstream`]    pooled hyper client over rustls, SigV4 and SigV2 signers, upstream addressing
//! - [`body`]        streamed bodies: unchanged, de-chunked and held back one piece, idle timeouts
//! - [`small_body`]  bodies read whole (control XML, answers to rewrite), capped, under one byte budget
//! - [`checksum`]    flexible-checksum algorithms: names, hashing, where s3ferry stores them
//! - [`rewrite`]     XML responses mapped back to the client's view (bucket names, ListBuckets)
//! - [`s3`]          S3 vocabulary below every layer: operations, percent-encoding, the copy
//!   source, header lengths and framing
//! - [`error`]       one error type, rendered as S3 XML in one place
//! - [`config`]      the TOML file as written, resolved and validated (dialect overrides applied);
//!   secrets from env or files
//! - [`local`]       `kind = "local"` providers: a directory served as S3 in-process
//! - [`probe`]       `s3ferry probe`: what a provider accepts, asked, and the settings that fit
//! - [`migration`]   lazy migration: fallback reads, tombstones, merged listings, copies, migrate/check,
//!   status records (cut-over readiness)
//! - [`access_log`]  the per-request record behind the one access-log event, and the bodies that
//!   count its bytes
//! - [`metrics`]     Prometheus metrics, one registry per running gateway
//! - [`admin`]       the admin listener: `/healthz`, `/readyz`, `/metrics`, `/migration` (sees the
//!   server through `AdminView`)
//!
//! The binary (`src/main.rs`, `src/cli/`) parses the command line and runs a command with these.

pub mod access;
pub mod access_log;
pub mod admin;
pub mod auth;
pub mod body;
pub mod checksum;
pub mod config;
pub mod connection;
pub mod cors;
pub mod dialect;
pub mod error;
pub mod gateway;
pub mod local;
pub mod metrics;
pub mod migration;
pub mod post_upload;
pub mod probe;
pub mod rewrite;
pub mod route;
pub mod s3;
pub mod server;
pub mod small_body;
pub mod target;
pub mod upstream;

#[cfg(test)]
mod test_support;
