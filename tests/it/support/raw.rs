//! Hand-built S3 requests for what a well-behaved SDK never sends: tampered bodies, bad chunk
//! signatures, bad trailing checksums, skewed clocks, and GiB-sized streamed bodies.

use std::net::SocketAddr;

use base64::Engine as _;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderValue, Method, Request};
use http_body_util::BodyExt as _;
use http_body_util::combinators::BoxBody;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use s3ferry::upstream::sign::{SigningParams, hex_sha256, sign_v4};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

pub type RawBody = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

pub fn full_body(data: impl Into<Bytes>) -> RawBody {
    http_body_util::Full::new(data.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A response, read whole (tests only send small ones through here).
pub struct RawResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl RawResponse {
    /// The `<Code>` of an S3 error body.
    pub fn code(&self) -> String {
        s3ferry::error::parse_error_code(self.body.as_bytes())
            .map(|(c, _)| c)
            .unwrap_or_default()
    }

    /// The `<Message>` of an S3 error body, unescaped.
    pub fn message(&self) -> String {
        s3ferry::error::parse_error_code(self.body.as_bytes())
            .map(|(_, m)| m)
            .unwrap_or_default()
    }
}

/// The headers of an `aws-chunked` upload of `decoded_len` bytes framed into `encoded_len`,
/// with a CRC32 trailer announced when `trailer`.
pub fn chunked_headers(decoded_len: usize, encoded_len: usize, trailer: bool) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("content-encoding", HeaderValue::from_static("aws-chunked"));
    h.insert("x-amz-decoded-content-length", HeaderValue::from(decoded_len));
    h.insert("content-length", HeaderValue::from(encoded_len));
    if trailer {
        h.insert("x-amz-trailer", HeaderValue::from_static("x-amz-checksum-crc32"));
        h.insert("x-amz-sdk-checksum-algorithm", HeaderValue::from_static("CRC32"));
    }
    h
}

/// Signs a request as a client of the gateway would (SigV4 header auth).
pub struct Signer<'a> {
    pub addr: SocketAddr,
    pub key: &'a str,
    pub secret: &'a str,
    pub time: OffsetDateTime,
}

impl Signer<'static> {
    /// The test client's key pair (`CLIENT_KEY`), signing now, for the gateway at `addr`.
    pub fn client(addr: SocketAddr) -> Self {
        Signer {
            addr,
            key: super::CLIENT_KEY,
            secret: super::CLIENT_SECRET,
            time: OffsetDateTime::now_utc(),
        }
    }
}

/// PUTs `data` as unsigned aws-chunked chunks (50,000 bytes each) with a CRC32 trailer
/// (`trailer_value` instead of the right checksum), as SDKs send over TLS.
pub async fn put_unsigned_trailer(
    signer: &Signer<'_>,
    path: &str,
    data: &[u8],
    trailer_value: Option<&str>,
) -> RawResponse {
    let body = unsigned_trailer_chunks(data, 50_000, trailer_value);
    let (req, _) = signer.sign(
        Method::PUT,
        path,
        chunked_headers(data.len(), body.len(), true),
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    );
    send(req.body(full_body(body)).expect("request")).await
}

impl Signer<'_> {
    /// Builds `method http://addr/path[?query]` with the given extra headers, signed for
    /// `payload_hash`.
    /// Returns the request head and the seed signature (for aws-chunked chunk signing).
    pub fn sign(
        &self,
        method: Method,
        path: &str,
        mut headers: HeaderMap,
        payload_hash: &str,
    ) -> (http::request::Builder, String) {
        let host = format!("127.0.0.1:{}", self.addr.port());
        headers.insert("host", HeaderValue::from_str(&host).expect("host"));
        let (canonical_path, query) = path.split_once('?').unwrap_or((path, ""));
        let canonical_query = s3ferry::s3::encoding::canonical_query(&s3ferry::s3::encoding::parse_query(query));
        sign_v4(
            &method,
            canonical_path,
            &canonical_query,
            &mut headers,
            payload_hash,
            &SigningParams {
                access_key_id: self.key,
                secret_access_key: self.secret,
                region: "us-east-1",
                time: self.time,
            },
        );
        let auth = headers["authorization"].to_str().expect("ascii").to_string();
        let seed = auth.rsplit("Signature=").next().expect("signature").to_string();
        let mut builder = Request::builder().method(method).uri(format!("http://{host}{path}"));
        for (name, value) in &headers {
            builder = builder.header(name, value);
        }
        (builder, seed)
    }

    /// A SigV4 presigned URL for `method path` valid `expires` seconds, signing `host` plus
    /// the given headers (name, value), with the query parameters in the order AWS SDKs use.
    /// Returns the URL (`http://127.0.0.1:PORT/...`) and the headers to send with it.
    pub fn presign(&self, method: &Method, path: &str, expires: u64, signed: &[(&str, &str)]) -> (String, HeaderMap) {
        use s3ferry::s3::encoding::{canonical_query, uri_encode};
        let host = format!("127.0.0.1:{}", self.addr.port());
        let mut headers: Vec<(String, String)> = vec![("host".into(), host.clone())];
        headers.extend(signed.iter().map(|(n, v)| ((*n).to_string(), (*v).to_string())));
        headers.sort();
        let signed_names = headers.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(";");
        let credential = format!("{}/{}", self.key, self.scope());
        let params = vec![
            ("X-Amz-Algorithm".to_string(), "AWS4-HMAC-SHA256".to_string()),
            ("X-Amz-Credential".to_string(), credential),
            ("X-Amz-Date".to_string(), self.amz_date()),
            ("X-Amz-Expires".to_string(), expires.to_string()),
            ("X-Amz-SignedHeaders".to_string(), signed_names.clone()),
        ];
        let (canonical_path, extra_query) = path.split_once('?').unwrap_or((path, ""));
        let mut all = params.clone();
        all.extend(s3ferry::s3::encoding::parse_query(extra_query));
        let query = canonical_query(&all);
        let canonical_headers: String = headers.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
        let canonical_request =
            format!("{method}\n{canonical_path}\n{query}\n{canonical_headers}\n{signed_names}\nUNSIGNED-PAYLOAD");
        let sts = format!(
            "AWS4-HMAC-SHA256\n{}\n{}\n{}",
            self.amz_date(),
            self.scope(),
            hex_sha256(canonical_request.as_bytes())
        );
        let signature = hex::encode(hmac(&self.signing_key(), sts.as_bytes()));
        let url_query: Vec<String> = all
            .iter()
            .map(|(n, v)| {
                format!(
                    "{}={}",
                    uri_encode(n.as_bytes(), false),
                    uri_encode(v.as_bytes(), false)
                )
            })
            .collect();
        let url = format!(
            "http://{host}{canonical_path}?{}&X-Amz-Signature={signature}",
            url_query.join("&")
        );
        let mut header_map = HeaderMap::new();
        for (n, v) in signed {
            header_map.insert(
                http::HeaderName::from_bytes(n.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        (url, header_map)
    }

    fn amz_date(&self) -> String {
        let f = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
        self.time.format(f).expect("format")
    }

    fn scope(&self) -> String {
        format!("{}/us-east-1/s3/aws4_request", &self.amz_date()[..8])
    }

    fn signing_key(&self) -> Vec<u8> {
        let date = &self.amz_date()[..8];
        let k = hmac(format!("AWS4{}", self.secret).as_bytes(), date.as_bytes());
        let k = hmac(&k, b"us-east-1");
        let k = hmac(&k, b"s3");
        hmac(&k, b"aws4_request")
    }

    /// Frames `data` as a signed aws-chunked body (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD`).
    /// With `corrupt_chunk = Some(i)`, chunk `i` carries a wrong signature.
    pub fn signed_chunks(&self, seed: &str, data: &[u8], chunk_size: usize, corrupt_chunk: Option<usize>) -> Vec<u8> {
        let key = self.signing_key();
        let mut prev = seed.to_string();
        let mut out = Vec::new();
        let mut chunks: Vec<&[u8]> = data.chunks(chunk_size).collect();
        chunks.push(&[]);
        for (i, chunk) in chunks.iter().enumerate() {
            let sts = format!(
                "AWS4-HMAC-SHA256-PAYLOAD\n{}\n{}\n{prev}\n{}\n{}",
                self.amz_date(),
                self.scope(),
                hex_sha256(b""),
                hex_sha256(chunk)
            );
            let mut sig = hex::encode(hmac(&key, sts.as_bytes()));
            prev = sig.clone();
            if corrupt_chunk == Some(i) {
                sig = "0".repeat(64);
            }
            out.extend_from_slice(format!("{:x};chunk-signature={sig}\r\n", chunk.len()).as_bytes());
            out.extend_from_slice(chunk);
            out.extend_from_slice(b"\r\n");
        }
        out
    }
}

impl Signer<'_> {
    /// Frames `data` as a signed aws-chunked body with a signed CRC32 trailer
    /// (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER`). `trailer_value` overrides the checksum.
    pub fn signed_chunks_with_trailer(
        &self,
        seed: &str,
        data: &[u8],
        chunk_size: usize,
        trailer_value: Option<&str>,
    ) -> Vec<u8> {
        let key = self.signing_key();
        let mut prev = seed.to_string();
        let mut out = Vec::new();
        let mut chunks: Vec<&[u8]> = data.chunks(chunk_size).collect();
        chunks.push(&[]);
        for chunk in chunks {
            let sts = format!(
                "AWS4-HMAC-SHA256-PAYLOAD\n{}\n{}\n{prev}\n{}\n{}",
                self.amz_date(),
                self.scope(),
                hex_sha256(b""),
                hex_sha256(chunk)
            );
            prev = hex::encode(hmac(&key, sts.as_bytes()));
            out.extend_from_slice(format!("{:x};chunk-signature={prev}\r\n", chunk.len()).as_bytes());
            out.extend_from_slice(chunk);
            if !chunk.is_empty() {
                out.extend_from_slice(b"\r\n");
            }
        }
        let crc = crc32_base64(data);
        let trailer = format!("x-amz-checksum-crc32:{}", trailer_value.unwrap_or(&crc));
        let sts = format!(
            "AWS4-HMAC-SHA256-TRAILER\n{}\n{}\n{prev}\n{}",
            self.amz_date(),
            self.scope(),
            hex_sha256(format!("{trailer}\n").as_bytes())
        );
        let trailer_signature = hex::encode(hmac(&key, sts.as_bytes()));
        out.extend_from_slice(format!("{trailer}\r\nx-amz-trailer-signature:{trailer_signature}\r\n\r\n").as_bytes());
        out
    }
}

/// Signs `GET /path` with AWS Signature Version 2 (header auth), as old clients do.
pub fn sigv2_get(addr: SocketAddr, path: &str, key: &str, secret: &str) -> Request<RawBody> {
    sigv2_get_dated(addr, path, key, secret, std::time::SystemTime::now())
}

/// [`sigv2_get`] dated `when` (a captured request replayed later, or a skewed clock). The
/// signature covers `path` without its query (no sub-resource is signed).
pub fn sigv2_get_dated(
    addr: SocketAddr,
    path: &str,
    key: &str,
    secret: &str,
    when: std::time::SystemTime,
) -> Request<RawBody> {
    sigv2_request(Method::GET, addr, path, key, secret, when)
        .body(full_body(""))
        .expect("request")
}

/// `method path` signed with SigV2 header auth dated `when`, without `Content-MD5` or
/// `Content-Type`; the signature covers `path` without its query.
pub fn sigv2_request(
    method: Method,
    addr: SocketAddr,
    path: &str,
    key: &str,
    secret: &str,
    when: std::time::SystemTime,
) -> http::request::Builder {
    let date = httpdate::fmt_http_date(when);
    let resource = path.split_once('?').map_or(path, |(p, _)| p);
    let string_to_sign = format!("{method}\n\n\n{date}\n{resource}");
    let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(string_to_sign.as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    Request::builder()
        .method(method)
        .uri(format!("http://127.0.0.1:{}{path}", addr.port()))
        .header("date", date)
        .header("authorization", format!("AWS {key}:{signature}"))
}

/// A body whose length is stated nowhere: hyper sends it with `Transfer-Encoding: chunked`
/// over HTTP/1.1 and as an HTTP/2 stream without `content-length`.
pub fn unsized_body(pieces: &[&'static [u8]]) -> RawBody {
    let frames: Vec<Result<http_body::Frame<Bytes>, Box<dyn std::error::Error + Send + Sync>>> = pieces
        .iter()
        .map(|p| Ok(http_body::Frame::data(Bytes::from_static(p))))
        .collect();
    http_body_util::StreamBody::new(futures_util::stream::iter(frames)).boxed()
}

/// Frames `data` as an unsigned aws-chunked body with a CRC32 trailer
/// (`STREAMING-UNSIGNED-PAYLOAD-TRAILER`). `trailer_value` overrides the right checksum.
pub fn unsigned_trailer_chunks(data: &[u8], chunk_size: usize, trailer_value: Option<&str>) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in data.chunks(chunk_size) {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    let crc = crc32_base64(data);
    let value = trailer_value.unwrap_or(&crc);
    out.extend_from_slice(format!("0\r\nx-amz-checksum-crc32:{value}\r\n\r\n").as_bytes());
    out
}

pub fn crc32_base64(data: &[u8]) -> String {
    let mut hasher = s3ferry::checksum::ChecksumHasher::new(s3ferry::checksum::ChecksumAlgorithm::Crc32);
    hasher.update(data);
    hasher.finalize_base64()
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// `GET path` (query included) through the gateway at `addr`, signed by the test client.
pub async fn signed_get(addr: SocketAddr, path: &str) -> RawResponse {
    let signer = Signer {
        addr,
        key: crate::support::CLIENT_KEY,
        secret: crate::support::CLIENT_SECRET,
        time: OffsetDateTime::now_utc(),
    };
    let (req, _) = signer.sign(Method::GET, path, HeaderMap::new(), &sha256_hex(b""));
    send(req.body(full_body("")).expect("request")).await
}

/// Sends a request and reads the response whole.
pub async fn send(request: Request<RawBody>) -> RawResponse {
    let client: Client<HttpConnector, RawBody> = Client::builder(TokioExecutor::new()).build_http();
    let response = tokio::time::timeout(std::time::Duration::from_secs(60), client.request(request))
        .await
        .expect("response within 60 s")
        .expect("response");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    RawResponse {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}
