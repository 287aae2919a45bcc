//! s3ferry's re-framer (`body::HoldBackLast` inside `body::UnsignedTrailerBody`): a verified,
//! de-chunked upload body framed again as `aws-chunked` with an unsigned trailer for the
//! provider. However the body arrives (any split into pieces, any length, repeated to cross
//! the 64 KiB chunk size), the framing is exactly the announced length and decodes to the same
//! bytes and checksum; a body with a wrong checksum or a wrong announced length never sends its
//! end of the framing.
#![no_main]

use bytes::Bytes;
use futures_util::StreamExt as _;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use s3ferry::body::{
    BoxError, ChecksumCheck, ExpectedChecksum, FailureSlot, HoldBackLast, UnsignedTrailerBody, recorded_failure,
    unsigned_trailer_encoded_length,
};
use s3ferry::checksum::ChecksumAlgorithm;

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    data: &'a [u8],
    /// How often `data` repeats (bodies of several 64 KiB chunks).
    repeat: u8,
    cuts: Vec<u32>,
    algorithm: u8,
    wrong_checksum: bool,
    /// Announced length minus the real one (0: right).
    length_error: i8,
}

/// Reads an `aws-chunked` body with an unsigned trailer: (data, trailer lines), or `None`
/// when it is not well framed.
fn decode(mut input: &[u8]) -> Option<(Vec<u8>, Vec<String>)> {
    fn line<'a>(input: &mut &'a [u8]) -> Option<&'a [u8]> {
        let end = input.windows(2).position(|w| w == b"\r\n")?;
        let (l, rest) = input.split_at(end);
        *input = &rest[2..];
        Some(l)
    }
    let mut data = Vec::new();
    loop {
        let size = usize::from_str_radix(std::str::from_utf8(line(&mut input)?).ok()?, 16).ok()?;
        if size == 0 {
            break;
        }
        data.extend_from_slice(input.get(..size)?);
        input = &input[size..];
        if !line(&mut input)?.is_empty() {
            return None;
        }
    }
    let mut trailers = Vec::new();
    loop {
        let l = line(&mut input)?;
        if l.is_empty() {
            break;
        }
        trailers.push(String::from_utf8(l.to_vec()).ok()?);
    }
    input.is_empty().then_some((data, trailers))
}

fuzz_target!(|input: Input<'_>| {
    let data = input.data.repeat(usize::from(input.repeat % 48) + 1);
    let algorithm = ChecksumAlgorithm::ALL[usize::from(input.algorithm) % ChecksumAlgorithm::ALL.len()];
    let right = algorithm.of(&data);
    let claimed = if input.wrong_checksum {
        algorithm.of(&[data.as_slice(), b"x"].concat())
    } else {
        right.clone()
    };
    let announced = data.len().saturating_add_signed(isize::from(input.length_error)) as u64;

    let mut at: Vec<usize> = input.cuts.iter().map(|c| *c as usize % (data.len() + 1)).collect();
    at.extend([0, data.len()]);
    at.sort_unstable();
    let pieces: Vec<Result<Bytes, BoxError>> = at
        .windows(2)
        .map(|w| Ok(Bytes::copy_from_slice(&data[w[0]..w[1]])))
        .collect();
    let stream = futures_util::stream::iter(pieces).map(|r| r.map(http_body::Frame::data));
    let body = s3s::Body::http_body(http_body_util::StreamBody::new(stream));

    let slot = FailureSlot::default();
    let check = ChecksumCheck::new(algorithm, ExpectedChecksum::Header(claimed.clone()));
    let held = HoldBackLast::new(body, Some(check), slot.clone());
    let out: Vec<Result<Bytes, BoxError>> =
        futures_executor::block_on(UnsignedTrailerBody::new(held, algorithm, announced).collect());
    let sent: Vec<u8> = out
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .flat_map(|b| b.to_vec())
        .collect();

    let valid = claimed == right && announced == data.len() as u64;
    if valid {
        assert!(out.iter().all(Result::is_ok), "{:?}", recorded_failure(&slot));
        assert_eq!(sent.len() as u64, unsigned_trailer_encoded_length(announced, algorithm));
        let (decoded, trailers) = decode(&sent).expect("well framed");
        assert!(decoded == data, "the data round-trips");
        assert_eq!(trailers, vec![format!("{}:{right}", algorithm.header_name())]);
    } else {
        assert!(out.last().is_some_and(Result::is_err), "a bad body ends with an error");
        assert!(recorded_failure(&slot).is_some());
        assert!(!reaches_final_chunk(&sent), "the end of the framing went out");
        // The upstream request ends short of its Content-Length, so the provider discards it.
        assert!((sent.len() as u64) < unsigned_trailer_encoded_length(announced, algorithm));
    }
});

/// Whether a (possibly cut short) `aws-chunked` prefix gets as far as its `0` chunk. Each
/// chunk's closing CRLF comes in front of the next size line.
fn reaches_final_chunk(mut input: &[u8]) -> bool {
    loop {
        input = input.strip_prefix(b"\r\n").unwrap_or(input);
        let Some(end) = input.windows(2).position(|w| w == b"\r\n") else {
            return false;
        };
        let Some(size) = std::str::from_utf8(&input[..end])
            .ok()
            .and_then(|h| usize::from_str_radix(h, 16).ok())
        else {
            return false;
        };
        if size == 0 {
            return true;
        }
        input = &input[end + 2..];
        if input.len() < size {
            return false;
        }
        input = &input[size..];
    }
}
