//! The per-request record behind the one access-log event each request produces at the edge.
//!
//! The server creates a [`RequestContext`] per request and hands it down in the request's
//! extensions; the gateway fills in what only it knows (who signed, which operation, which
//! bucket and provider); the server emits the event when the response body has been sent, so
//! bytes and duration are final. Nothing secret is ever stored here.

use std::sync::{Arc, Mutex};

/// Fields the gateway learns while handling a request.
#[derive(Debug, Default, Clone)]
pub struct AccessFields {
    pub client_key_id: Option<String>,
    pub operation: &'static str,
    pub bucket: Option<String>,
    pub upstream: Option<String>,
}

/// Shared between the edge and the gateway for one request.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub request_id: Arc<str>,
    fields: Arc<Mutex<AccessFields>>,
}

impl RequestContext {
    pub fn new(request_id: String) -> Self {
        Self {
            request_id: request_id.into(),
            fields: Arc::default(),
        }
    }

    /// Updates the fields.
    pub fn record(&self, update: impl FnOnce(&mut AccessFields)) {
        if let Ok(mut guard) = self.fields.lock() {
            update(&mut guard);
        }
    }

    /// A copy of the fields as they are now.
    pub fn fields(&self) -> AccessFields {
        self.fields.lock().map(|g| g.clone()).unwrap_or_default()
    }
}

/// Marks a response the gateway produced itself or relayed from a provider, as opposed to an
/// error the verification front door (s3s) rendered, which the edge re-renders.
#[derive(Debug, Clone, Copy)]
pub struct HandledByGateway;
