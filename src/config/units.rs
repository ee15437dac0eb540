//! Parsing of rclone-style sizes (`5Mi`, `200M`, `1.5G`) and durations (`10s`, `1h30m`, `24h`).
//! rclone's size suffixes are binary (`M` = MiB) and a bare number means KiB; we follow that so
//! values copied from an existing `rclone.conf` or command line mean the same thing here.

use std::time::Duration;

/// Why a size or duration string was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UnitError {
    #[error(
        "invalid size {0:?}: use a number with an optional suffix B, K, M, G, T or P (binary, e.g. 16Mi)"
    )]
    Size(String),
    #[error("invalid duration {0:?}: use e.g. 30s, 10m, 1h30m or 7d")]
    Duration(String),
}

/// Parse an rclone `SizeSuffix`: `<number>[B|K|M|G|T|P][i][B]`, binary multiples, KiB when bare.
pub fn parse_size(text: &str) -> Result<u64, UnitError> {
    let err = || UnitError::Size(text.to_string());
    let s = text.trim();
    if s.is_empty() {
        return Err(err());
    }
    if s.eq_ignore_ascii_case("off") {
        return Ok(u64::MAX);
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let value: f64 = num.parse().map_err(|_| err())?;
    let mut suffix = suffix.to_ascii_lowercase();
    if suffix.len() > 1 && suffix.ends_with('b') {
        suffix.pop();
    }
    if suffix.len() > 1 && suffix.ends_with('i') {
        suffix.pop();
    }
    let shift = match suffix.as_str() {
        "" | "k" => 10,
        "b" => 0,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => return Err(err()),
    };
    let bytes = value * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(err());
    }
    Ok(bytes.round() as u64)
}

/// Parse a duration: a bare number is seconds, otherwise humantime's syntax (`1h30m`, `7d`).
pub fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    let s = text.trim();
    if let Ok(secs) = s.parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        return Ok(Duration::from_secs_f64(secs));
    }
    humantime::parse_duration(s).map_err(|_| UnitError::Duration(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let cases: &[(&str, u64)] = &[
            ("5Mi", 5 << 20),
            ("5M", 5 << 20),
            ("5MiB", 5 << 20),
            ("200M", 200 << 20),
            ("1G", 1 << 30),
            ("1.5G", 3 << 29),
            ("100", 100 << 10),
            ("100k", 100 << 10),
            ("4096B", 4096),
            ("4096b", 4096),
            ("0", 0),
        ];
        for (text, want) in cases {
            assert_eq!(parse_size(text), Ok(*want), "{text}");
        }
        for bad in ["", "M", "5X", "-1M", "1.2.3M"] {
            assert!(parse_size(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86400));
        assert_eq!(
            parse_duration("7d").unwrap(),
            Duration::from_secs(7 * 86400)
        );
        assert_eq!(parse_duration("2.5").unwrap(), Duration::from_millis(2500));
        assert!(parse_duration("soon").is_err());
    }
}
