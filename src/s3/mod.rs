//! S3 vocabulary shared by every layer, below both IO (`upstream`) and the request path:
//! operations, percent-encoding, the copy-source header, and header names and lengths. Pure:
//! nothing here owns a socket or knows a provider.

pub mod addressing;
pub mod bucket_name;
pub mod copy_source;
pub mod encoding;
pub mod headers;
pub mod operation;
pub mod timestamp;
