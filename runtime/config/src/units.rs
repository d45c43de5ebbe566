//! Durations and sizes written with units: `"50ms"`, `"1m30s"`, `"64MiB"`, `"1.5GB"`.

use std::time::Duration;

/// Why a duration or size string could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// Nothing but whitespace.
    #[error("empty value")]
    Empty,
    /// A number without a unit where one is needed.
    #[error("missing unit, as in \"{example}\"")]
    MissingUnit {
        /// A correct value to show.
        example: &'static str,
    },
    /// A unit that is not one of `units`.
    #[error("unknown unit \"{unit}\" (use {units})")]
    UnknownUnit {
        /// The unit as written.
        unit: String,
        /// The units that are accepted.
        units: &'static str,
    },
    /// Not a number followed by a unit.
    #[error("expected a number followed by a unit, as in \"{example}\"")]
    Malformed {
        /// A correct value to show.
        example: &'static str,
    },
    /// More than the type can hold, or a duration finer than a nanosecond.
    #[error("out of range")]
    OutOfRange,
    /// A size that works out to a fraction of a byte, such as `"0.1KiB"`.
    #[error("not a whole number of bytes")]
    FractionalBytes,
}

const DURATION_UNITS: &str = "ns, us, ms, s, m, h, d";
const DURATION_EXAMPLE: &str = "100ms";
const SIZE_UNITS: &str = "B, KB, MB, GB, TB, KiB, MiB, GiB, TiB";
const SIZE_EXAMPLE: &str = "64MiB";

/// Reads a duration such as `"50ms"`, `"1s"`, `"1m30s"` or `"1h 15m"`: one or more numbers
/// each followed by a unit. `"0"` is the only value accepted without a unit.
pub fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    use humantime::DurationError as E;

    let text = text.trim();
    humantime::parse_duration(text).map_err(|error| match error {
        E::Empty => UnitError::Empty,
        E::UnknownUnit { unit, .. } if unit.is_empty() => UnitError::MissingUnit {
            example: DURATION_EXAMPLE,
        },
        E::UnknownUnit { unit, .. } => UnitError::UnknownUnit {
            unit,
            units: DURATION_UNITS,
        },
        E::InvalidCharacter(_) | E::NumberExpected(_) => UnitError::Malformed {
            example: DURATION_EXAMPLE,
        },
        E::NumberOverflow => UnitError::OutOfRange,
    })
}

/// Reads a size in bytes such as `"64MiB"`, `"512KiB"`, `"1GB"` or `"1.5GiB"`.
///
/// Binary units (`KiB`, `MiB`, `GiB`, `TiB`) are powers of 1024, decimal ones (`KB`, `MB`,
/// `GB`, `TB`) powers of 1000; `B` or no unit at all means bytes. Units are case-sensitive.
pub fn parse_size(text: &str) -> Result<u64, UnitError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(UnitError::Empty);
    }
    let malformed = UnitError::Malformed {
        example: SIZE_EXAMPLE,
    };
    let number_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(number_end);
    let multiplier: u128 = match unit.trim_start() {
        "" | "B" => 1,
        "KB" => 1000,
        "MB" => 1000_u128.pow(2),
        "GB" => 1000_u128.pow(3),
        "TB" => 1000_u128.pow(4),
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        _ if number.is_empty() => return Err(malformed),
        other => {
            return Err(UnitError::UnknownUnit {
                unit: other.to_owned(),
                units: SIZE_UNITS,
            });
        }
    };

    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let is_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !is_digits(fraction) {
        return Err(malformed);
    }
    // Exact arithmetic: `whole.fraction` is `digits / scale`.
    let digits: u128 = format!("{whole}{fraction}")
        .parse()
        .map_err(|_| UnitError::OutOfRange)?;
    let scale = u32::try_from(fraction.len())
        .ok()
        .and_then(|places| 10_u128.checked_pow(places))
        .ok_or(UnitError::OutOfRange)?;
    let scaled = digits
        .checked_mul(multiplier)
        .ok_or(UnitError::OutOfRange)?;
    if scaled % scale != 0 {
        return Err(UnitError::FractionalBytes);
    }
    u64::try_from(scaled / scale).map_err(|_| UnitError::OutOfRange)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ms = Duration::from_millis;
        assert_eq!(parse_duration("50ms"), Ok(ms(50)));
        assert_eq!(parse_duration("1s"), Ok(ms(1000)));
        assert_eq!(parse_duration("1m30s"), Ok(ms(90_000)));
        assert_eq!(parse_duration("1h 15m"), Ok(ms(4_500_000)));
        assert_eq!(parse_duration(" 2s "), Ok(ms(2000)));
        assert_eq!(parse_duration("1.5s"), Ok(ms(1500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn bad_durations() {
        assert_eq!(parse_duration(""), Err(UnitError::Empty));
        assert_eq!(
            parse_duration("50"),
            Err(UnitError::MissingUnit { example: "100ms" })
        );
        assert_eq!(
            parse_duration("5 parsecs"),
            Err(UnitError::UnknownUnit {
                unit: "parsecs".into(),
                units: DURATION_UNITS
            })
        );
        assert!(matches!(
            parse_duration("-5s"),
            Err(UnitError::Malformed { .. })
        ));
        assert!(matches!(
            parse_duration("ms"),
            Err(UnitError::Malformed { .. })
        ));
        assert_eq!(
            parse_duration("99999999999999999999s"),
            Err(UnitError::OutOfRange)
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("2TiB"), Ok(2 << 40));
        assert_eq!(parse_size("64MB"), Ok(64_000_000));
        assert_eq!(parse_size("3KB"), Ok(3000));
        assert_eq!(parse_size("1 GB"), Ok(1_000_000_000));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("0.5KB"), Ok(500));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("12B"), Ok(12));
        assert_eq!(parse_size("0"), Ok(0));
    }

    #[test]
    fn bad_sizes() {
        let unknown = |unit: &str| {
            Err(UnitError::UnknownUnit {
                unit: unit.into(),
                units: SIZE_UNITS,
            })
        };
        assert_eq!(parse_size(" "), Err(UnitError::Empty));
        assert_eq!(parse_size("64mib"), unknown("mib"));
        assert_eq!(parse_size("64MX"), unknown("MX"));
        assert_eq!(parse_size("64 MiB!"), unknown("MiB!"));
        let malformed = Err(UnitError::Malformed {
            example: SIZE_EXAMPLE,
        });
        assert_eq!(parse_size("MiB"), malformed);
        assert_eq!(parse_size("-1MiB"), malformed);
        assert_eq!(parse_size(".5MiB"), malformed);
        assert_eq!(parse_size("1.2.3MiB"), malformed);
        assert_eq!(parse_size("0.1KiB"), Err(UnitError::FractionalBytes));
        assert_eq!(parse_size("1.5"), Err(UnitError::FractionalBytes));
        assert_eq!(parse_size("16777216TiB"), Err(UnitError::OutOfRange));
        assert_eq!(
            parse_size("99999999999999999999999999999999999999999"),
            Err(UnitError::OutOfRange)
        );
    }
}
