//! Helpers the unit tests share: golden XML files and header maps.

use std::path::PathBuf;

use http::{HeaderMap, HeaderName, HeaderValue};

/// `tests/fixtures/xml`, where the golden XML files live.
fn xml_fixture_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/xml"))
}

/// One golden XML file, by name.
pub fn xml_fixture(name: &str) -> Vec<u8> {
    std::fs::read(xml_fixture_dir().join(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// Every golden XML file, in name order.
pub fn xml_fixtures() -> Vec<Vec<u8>> {
    let mut files: Vec<_> = std::fs::read_dir(xml_fixture_dir())
        .expect("fixtures")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .collect();
    files.sort();
    files.iter().map(|p| std::fs::read(p).expect("fixture")).collect()
}

/// A header map of `(name, value)` pairs, repeated names appended in order.
pub fn header_map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_str(value).expect("header value"),
        );
    }
    map
}
