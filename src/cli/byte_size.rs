//! Sizes and rates on the command line: `512MiB`, `50MB`, `1G`, or plain bytes.

use std::str::FromStr;

/// A number of bytes written with an optional unit: `k`/`KB`, `M`/`MB`, `G`/`GB` (powers of
/// 1,000) or `KiB`, `MiB`, `GiB` (powers of 1,024).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

#[derive(Debug, thiserror::Error)]
#[error("'{0}' is not a size: write bytes, or a number with k, KB, KiB, M, MB, MiB, G, GB or GiB (e.g. 50MB)")]
pub struct BadByteSize(String);

impl FromStr for ByteSize {
    type Err = BadByteSize;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || BadByteSize(text.to_string());
        let trimmed = text.trim();
        let split = trimmed.find(|c: char| !c.is_ascii_digit()).unwrap_or(trimmed.len());
        let (number, unit) = trimmed.split_at(split);
        let number: u64 = number.parse().map_err(|_| bad())?;
        let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1_000,
            "kib" => 1 << 10,
            "m" | "mb" => 1_000_000,
            "mib" => 1 << 20,
            "g" | "gb" => 1_000_000_000,
            "gib" => 1 << 30,
            _ => return Err(bad()),
        };
        number.checked_mul(scale).map(Self).ok_or_else(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_decimal_and_binary_units() {
        let parse = |s: &str| s.parse::<ByteSize>().ok().map(|b| b.0);
        assert_eq!(parse("1234"), Some(1234));
        assert_eq!(parse("50MB"), Some(50_000_000));
        assert_eq!(parse("512MiB"), Some(512 << 20));
        assert_eq!(parse("2g"), Some(2_000_000_000));
        assert_eq!(parse("1 GiB"), Some(1 << 30));
        for bad in ["", "MB", "1.5GB", "10TB", "-1", "99999999999999999999"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
