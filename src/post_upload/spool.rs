//! The form's file, written to a spool file while it arrives, then sent on with its exact
//! length.
//!
//! A provider needs an upload's length before its first byte, and nothing in a form states the
//! file's length (the request's `Content-Length` counts the fields and boundaries too, and an
//! aws-chunked upload needs `x-amz-decoded-content-length` up front as well). So the file goes
//! to disk first, bounded three ways: its own length by the policy's `content-length-range` and
//! `post_upload.max_file_bytes` (checked on every write, so a file over the limit stops being
//! read at the limit), and all spool files together by `post_upload.max_spool_bytes`. Each
//! spool file is unlinked as it is created (`tempfile::tempfile_in`): it lives as long as its
//! open handle and no path, error or crash leaves it behind.

use std::io::SeekFrom;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body as HttpBody, Frame, SizeHint};
use sha2::Digest as _;
use tokio::io::{AsyncRead, AsyncSeekExt, AsyncWriteExt, ReadBuf};

use crate::error::GatewayError;

/// The bytes all spool files hold, against `post_upload.max_spool_bytes`. Cloning shares it.
#[derive(Debug, Clone)]
pub struct SpoolBudget {
    used: Arc<AtomicU64>,
    max: u64,
}

impl SpoolBudget {
    pub fn new(max: u64) -> Self {
        Self {
            used: Arc::default(),
            max,
        }
    }

    /// Bytes in spool files now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    fn reserve(&self) -> Reservation {
        Reservation {
            budget: self.clone(),
            bytes: 0,
        }
    }
}

/// One spool file's share of the budget, given back when the file is dropped.
#[derive(Debug)]
struct Reservation {
    budget: SpoolBudget,
    bytes: u64,
}

impl Reservation {
    /// Takes `n` more bytes, or refuses with SlowDown when the budget has no room.
    fn grow(&mut self, n: u64) -> Result<(), GatewayError> {
        let before = self.budget.used.fetch_add(n, Ordering::Relaxed);
        if before.saturating_add(n) > self.budget.max {
            self.budget.used.fetch_sub(n, Ordering::Relaxed);
            return Err(GatewayError::SlowDown);
        }
        self.bytes += n;
        Ok(())
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// A spool file being written.
pub struct SpoolWriter {
    file: tokio::fs::File,
    reservation: Reservation,
    max: u64,
    length: u64,
    sha256: sha2::Sha256,
}

impl SpoolWriter {
    /// A new, already unlinked spool file in `dir` that may hold at most `max` bytes.
    pub async fn create(dir: &std::path::Path, max: u64, budget: &SpoolBudget) -> Result<Self, GatewayError> {
        let dir = dir.to_path_buf();
        let file = tokio::task::spawn_blocking(move || tempfile::tempfile_in(dir))
            .await
            .map_err(|e| GatewayError::Internal(format!("spool file task failed: {e}")))?
            .map_err(|e| GatewayError::Internal(format!("cannot create a spool file for a form upload: {e}")))?;
        Ok(Self {
            file: tokio::fs::File::from_std(file),
            reservation: budget.reserve(),
            max,
            length: 0,
            sha256: sha2::Sha256::new(),
        })
    }

    /// Appends `data`; a file longer than `max` is refused with EntityTooLarge before the
    /// bytes over it are written.
    pub async fn write(&mut self, data: &[u8]) -> Result<(), GatewayError> {
        let n = data.len() as u64;
        if self.length.saturating_add(n) > self.max {
            return Err(GatewayError::EntityTooLarge);
        }
        self.reservation.grow(n)?;
        self.file
            .write_all(data)
            .await
            .map_err(|e| GatewayError::Internal(format!("cannot write a spool file: {e}")))?;
        self.sha256.update(data);
        self.length += n;
        Ok(())
    }

    /// The file, rewound, ready to be sent.
    pub async fn finish(mut self) -> Result<Spooled, GatewayError> {
        let io = |e: std::io::Error| GatewayError::Internal(format!("cannot read back a spool file: {e}"));
        self.file.flush().await.map_err(io)?;
        self.file.seek(SeekFrom::Start(0)).await.map_err(io)?;
        Ok(Spooled {
            length: self.length,
            sha256: hex::encode(self.sha256.finalize()),
            body: SpoolBody {
                file: self.file,
                remaining: self.length,
                _reservation: self.reservation,
            },
        })
    }
}

/// A file spooled whole: its length, its SHA-256 (the payload hash the provider request is
/// signed with, so the provider checks the bytes s3ferry read back), and its bytes as a body.
pub struct Spooled {
    pub length: u64,
    pub sha256: String,
    pub body: SpoolBody,
}

/// The spool file as a request body, read in pieces; the file (and its budget share) goes when
/// the body is dropped.
pub struct SpoolBody {
    file: tokio::fs::File,
    remaining: u64,
    _reservation: Reservation,
}

/// The size of one piece read from a spool file.
const PIECE: usize = 64 * 1024;

impl HttpBody for SpoolBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        let want = usize::try_from(this.remaining).unwrap_or(PIECE).min(PIECE);
        let mut buf = BytesMut::zeroed(want);
        let mut read_buf = ReadBuf::new(&mut buf);
        std::task::ready!(Pin::new(&mut this.file).poll_read(cx, &mut read_buf))?;
        let n = read_buf.filled().len();
        if n == 0 {
            return Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the spool file is shorter than what was written to it",
            ))));
        }
        buf.truncate(n);
        this.remaining = this.remaining.saturating_sub(n as u64);
        Poll::Ready(Some(Ok(Frame::data(buf.freeze()))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;

    #[tokio::test]
    async fn a_spool_file_reads_back_whole_and_gives_its_budget_back() {
        let dir = tempfile::tempdir().unwrap();
        let budget = SpoolBudget::new(100_000);
        let data: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
        let mut writer = SpoolWriter::create(dir.path(), 80_000, &budget).await.unwrap();
        for piece in data.chunks(7_000) {
            writer.write(piece).await.unwrap();
        }
        assert_eq!(budget.used(), 70_000);
        let spooled = writer.finish().await.unwrap();
        assert_eq!(spooled.length, 70_000);
        assert_eq!(spooled.sha256, hex::encode(sha2::Sha256::digest(&data)));
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "unlinked at creation"
        );
        let read = spooled.body.collect().await.unwrap().to_bytes();
        assert!(read == data.as_slice());
        assert_eq!(budget.used(), 0, "the budget comes back when the body is done");
    }

    #[tokio::test]
    async fn files_over_their_cap_or_the_budget_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let budget = SpoolBudget::new(150);
        let mut first = SpoolWriter::create(dir.path(), 100, &budget).await.unwrap();
        first.write(&[0; 100]).await.unwrap();
        assert!(matches!(first.write(&[0; 1]).await, Err(GatewayError::EntityTooLarge)));
        let mut second = SpoolWriter::create(dir.path(), 100, &budget).await.unwrap();
        assert!(matches!(second.write(&[0; 60]).await, Err(GatewayError::SlowDown)));
        drop(first);
        second.write(&[0; 60]).await.unwrap();
        drop(second);
        assert_eq!(budget.used(), 0);
    }
}
