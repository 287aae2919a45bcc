//! S3's percent-encoding: keys and query strings as clients send them, decoded once, and
//! encoded again in the one canonical form that is both sent and signed.
//!
//! Keys are decoded from whatever encoding the client used and re-encoded once in the S3
//! canonical form (every byte but `A-Z a-z 0-9 - . _ ~` and `/`), which is both what goes on the
//! wire and what is signed. S3 paths are never normalised: `//`, `./` and a trailing `/` survive.

/// Percent-encodes `input` per the SigV4 rules; `/` is kept when `keep_slash`.
pub fn uri_encode(input: &[u8], keep_slash: bool) -> String {
    let mut out = String::with_capacity(input.len() + input.len() / 2);
    for &b in input {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') || (keep_slash && b == b'/') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
    out
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Decodes `%XX` escapes (a `+` stays a `+`: in a path it is a literal plus).
pub fn percent_decode(raw: &str) -> Vec<u8> {
    percent_encoding::percent_decode_str(raw).collect()
}

/// Parses a raw query string into decoded `(name, value)` pairs, in order. A `+` means a
/// space, as in form encoding (and as S3 itself reads query strings).
pub fn parse_query(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (name, value) = part.split_once('=').unwrap_or((part, ""));
            (decode_query_component(name), decode_query_component(value))
        })
        .collect()
}

/// Decodes one form-encoded component: `+` is a space, `%XX` a byte. Also how AWS-style
/// `encoding-type=url` listings read (a literal `+` is sent as `%2B`).
pub fn decode_query_component(raw: &str) -> String {
    let plus_as_space = raw.replace('+', " ");
    String::from_utf8_lossy(&percent_decode(&plus_as_space)).into_owned()
}

/// The canonical query string: each name and value encoded, sorted by name then value, and
/// `name=` for an empty value (`?uploads` becomes `uploads=`).
pub fn canonical_query(pairs: &[(String, String)]) -> String {
    let mut encoded: Vec<(String, String)> = pairs
        .iter()
        .map(|(n, v)| (uri_encode(n.as_bytes(), false), uri_encode(v.as_bytes(), false)))
        .collect();
    encoded.sort();
    encoded
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_keeps_unreserved_and_slash_only() {
        assert_eq!(uri_encode("a b+c%d~e/f".as_bytes(), true), "a%20b%2Bc%25d~e/f");
        assert_eq!(uri_encode("a/b".as_bytes(), false), "a%2Fb");
        assert_eq!(uri_encode("é".as_bytes(), true), "%C3%A9");
    }

    #[test]
    fn keys_round_trip_whatever_the_client_escaped() {
        // A client may send `+` raw or as %2B, and a space as %20: the key is the same.
        for raw in ["dir//a+b%20c/", "dir//a%2Bb%20c/"] {
            assert_eq!(uri_encode(&percent_decode(raw), true), "dir//a%2Bb%20c/");
        }
    }

    #[test]
    fn canonical_query_sorts_and_encodes() {
        let pairs = parse_query("prefix=a%2Fb+c&uploads&max-keys=2");
        assert_eq!(canonical_query(&pairs), "max-keys=2&prefix=a%2Fb%20c&uploads=");
    }
}
