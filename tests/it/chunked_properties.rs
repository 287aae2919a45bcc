//! The `aws-chunked` upload forms as property tests, through a real s3s `S3Service` in-process
//! (the decoder the gateway relies on) and, for trailers, s3ferry's `HoldBackLast` checking the
//! trailing CRC32 as the gateway does:
//!
//! - any split of a valid stream into transport frames decodes to the same bytes;
//! - any single-byte change of the data, a chunk or trailer signature, or the trailer's
//!   checksum is refused;
//! - any single-byte change anywhere is refused or decodes to the same bytes (a change in the
//!   framing that means the same, such as the case of a hex size): never to other bytes.

use bytes::Bytes;
use http::Method;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use time::OffsetDateTime;

use crate::support::raw::{Signer, chunked_headers, unsigned_trailer_chunks};
use crate::support::verifier::Verifier;
use crate::support::{CLIENT_KEY, CLIENT_SECRET};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`
    SignedChunks,
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER` (a signed CRC32 trailer)
    SignedChunksSignedTrailer,
    /// `STREAMING-UNSIGNED-PAYLOAD-TRAILER` (a CRC32 trailer, checked by s3ferry)
    UnsignedChunksTrailer,
}

impl Form {
    fn payload_hash(self) -> &'static str {
        match self {
            Form::SignedChunks => "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            Form::SignedChunksSignedTrailer => "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
            Form::UnsignedChunksTrailer => "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        }
    }

    fn frame(self, signer: &Signer<'_>, seed: &str, data: &[u8], chunk_size: usize) -> Vec<u8> {
        match self {
            Form::SignedChunks => signer.signed_chunks(seed, data, chunk_size, None),
            Form::SignedChunksSignedTrailer => signer.signed_chunks_with_trailer(seed, data, chunk_size, None),
            Form::UnsignedChunksTrailer => unsigned_trailer_chunks(data, chunk_size, None),
        }
    }
}

#[derive(Debug, Clone)]
struct Upload {
    form: Form,
    data: Vec<u8>,
    chunk_size: usize,
    cuts: Vec<prop::sample::Index>,
}

fn upload() -> impl Strategy<Value = Upload> {
    (
        prop::sample::select(vec![
            Form::SignedChunks,
            Form::SignedChunksSignedTrailer,
            Form::UnsignedChunksTrailer,
        ]),
        (0..140_000usize, any::<u8>()),
        prop_oneof![1..64usize, 8192..70_000usize],
        prop::collection::vec(any::<prop::sample::Index>(), 0..10),
    )
        .prop_map(|(form, (len, seed), chunk_size, cuts)| Upload {
            form,
            // Small chunks with large bodies make thousands of chunks: keep those bodies short.
            data: (0..if chunk_size < 64 { len % 2000 } else { len })
                .map(|i| (i as u8).wrapping_mul(29) ^ seed)
                .collect(),
            chunk_size,
            cuts,
        })
}

/// The signed request head and the framed body for `upload`.
fn framed(upload: &Upload) -> (http::Request<()>, Vec<u8>) {
    let signer = Signer {
        addr: "127.0.0.1:9000".parse().expect("addr"),
        key: CLIENT_KEY,
        secret: CLIENT_SECRET,
        time: OffsetDateTime::now_utc(),
    };
    let trailer = upload.form != Form::SignedChunks;
    // The body length is signed, so frame once with a dummy seed to measure it.
    let encoded_len = upload
        .form
        .frame(&signer, &"0".repeat(64), &upload.data, upload.chunk_size)
        .len();
    let (head, seed) = signer.sign(
        Method::PUT,
        "/prop-bucket/chunked",
        chunked_headers(upload.data.len(), encoded_len, trailer),
        upload.form.payload_hash(),
    );
    let body = upload.form.frame(&signer, &seed, &upload.data, upload.chunk_size);
    (head.body(()).expect("request"), body)
}

/// `body` cut at `cuts` into transport frames (empty frames included).
fn frames(body: &[u8], cuts: &[prop::sample::Index]) -> Vec<Bytes> {
    let mut at: Vec<usize> = cuts.iter().map(|i| i.index(body.len() + 1)).collect();
    at.extend([0, body.len()]);
    at.sort_unstable();
    at.windows(2)
        .map(|w| Bytes::copy_from_slice(&body[w[0]..w[1]]))
        .collect()
}

/// Byte offsets in a framed body of the data and of what authenticates it (chunk signatures,
/// the trailer's checksum value and signature).
fn protected_offsets(body: &[u8]) -> (Vec<usize>, Vec<usize>) {
    let (mut data, mut auth) = (Vec::new(), Vec::new());
    let mut at = 0;
    let line_end = |from: usize| body[from..].windows(2).position(|w| w == b"\r\n").map(|p| from + p);
    // Chunks: `size[;chunk-signature=sig]\r\n data \r\n`, until the empty chunk.
    while let Some(end) = line_end(at) {
        let line = &body[at..end];
        let size_text = line.split(|b| *b == b';').next().unwrap_or_default();
        let size = usize::from_str_radix(std::str::from_utf8(size_text).unwrap_or("0"), 16).unwrap_or(0);
        if let Some(p) = line.windows(16).position(|w| w == b"chunk-signature=") {
            auth.extend(at + p + 16..end);
        }
        at = end + 2;
        if size == 0 {
            break;
        }
        data.extend(at..at + size);
        at += size + 2;
    }
    // Trailer lines: `name:value\r\n`; every value is protected.
    while let Some(end) = line_end(at) {
        if let Some(colon) = body[at..end].iter().position(|b| *b == b':') {
            auth.extend(at + colon + 1..end);
        }
        at = end + 2;
    }
    (data, auth)
}

fn runner(cases: u32) -> (tokio::runtime::Runtime, TestRunner) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    (rt, runner)
}

async fn any_split_decodes_the_same(upload: Upload) -> Result<(), TestCaseError> {
    let (head, body) = framed(&upload);
    let verifier = Verifier::new(CLIENT_KEY, CLIENT_SECRET);
    let (status, reached) = verifier.call_in_frames(head, frames(&body, &upload.cuts)).await;
    prop_assert_eq!(reached.len(), 1, "a valid upload reaches the route");
    let decoded = reached[0].body.as_ref().map_err(|e| TestCaseError::fail(e.clone()))?;
    prop_assert!(
        decoded == &upload.data,
        "decoded {} bytes, sent {}",
        decoded.len(),
        upload.data.len()
    );
    prop_assert_eq!(status, 200);
    Ok(())
}

#[test]
fn any_split_of_a_valid_chunked_upload_decodes_to_the_same_bytes() {
    let (rt, mut runner) = runner(128);
    if let Err(e) = runner.run(&upload(), |u| rt.block_on(any_split_decodes_the_same(u))) {
        panic!("{e}");
    }
}

/// Where to change a byte, and to what (XOR with a non-zero byte).
#[derive(Debug, Clone)]
struct Corruption {
    upload: Upload,
    /// Pick among the protected offsets (data or authentication) or among all bytes.
    protected: bool,
    at: prop::sample::Index,
    xor: u8,
}

fn corruption() -> impl Strategy<Value = Corruption> {
    (upload(), any::<bool>(), any::<prop::sample::Index>(), 1..=255u8).prop_map(|(upload, protected, at, xor)| {
        Corruption {
            upload,
            protected,
            at,
            xor,
        }
    })
}

async fn corruption_is_refused(c: Corruption) -> Result<(), TestCaseError> {
    let (head, mut body) = framed(&c.upload);
    let (data, auth) = protected_offsets(&body);
    let candidates: Vec<usize> = if c.protected {
        data.into_iter().chain(auth).collect()
    } else {
        (0..body.len()).collect()
    };
    prop_assume!(!candidates.is_empty());
    let offset = candidates[c.at.index(candidates.len())];
    let before = body[offset];
    body[offset] ^= c.xor;
    let verifier = Verifier::new(CLIENT_KEY, CLIENT_SECRET);
    let (status, reached) = verifier.call_in_frames(head, frames(&body, &c.upload.cuts)).await;
    let accepted = status == 200 && reached.first().is_some_and(|r| r.body.is_ok());
    let detail = format!(
        "{:?}: byte {offset} of {} changed from {:?} to {:?}",
        c.upload.form,
        body.len(),
        char::from(before),
        char::from(body[offset])
    );
    if c.protected {
        prop_assert!(!accepted, "a changed protected byte was accepted: {}", detail);
    } else if accepted {
        let decoded = reached[0].body.as_ref().ok();
        prop_assert_eq!(decoded, Some(&c.upload.data), "accepted with other bytes: {}", detail);
    }
    Ok(())
}

#[test]
fn a_changed_byte_of_a_chunked_upload_is_refused_or_means_the_same() {
    let (rt, mut runner) = runner(192);
    if let Err(e) = runner.run(&corruption(), |c| rt.block_on(corruption_is_refused(c))) {
        panic!("{e}");
    }
}
