//! Command-line pieces both programs share: durations given in seconds, and
//! the log set-up. (The socket options are in [`crate::sockopt`].)

use std::time::Duration;

/// Parses a positive number of seconds, fractions allowed (`10`, `0.5`), for
/// clap's `value_parser`.
pub fn parse_secs(text: &str) -> Result<Duration, String> {
    match seconds(text) {
        Some(secs) if !secs.is_zero() => Ok(secs),
        _ => Err(format!("{text:?} is not a number of seconds greater than 0, e.g. 10 or 0.5")),
    }
}

/// Like [`parse_secs`], but also accepts 0 (for flags where 0 means off).
pub fn parse_secs_or_zero(text: &str) -> Result<Duration, String> {
    seconds(text).ok_or_else(|| format!("{text:?} is not a number of seconds (0 for off), e.g. 10 or 0.5"))
}

/// A number of seconds from 0 to 10⁹, fractions allowed.
fn seconds(text: &str) -> Option<Duration> {
    match text.trim().parse::<f64>() {
        Ok(secs) if (0.0..=1e9).contains(&secs) => Some(Duration::from_secs_f64(secs)),
        _ => None,
    }
}

/// Logs to stderr, in colour only on a terminal. `RUST_LOG` wins; without
/// it, events at `default_level` (e.g. `info`) and above are shown. Does
/// nothing if logging was set up already. (Feature `logging`.)
#[cfg(feature = "logging")]
pub fn init_logging(default_level: &str) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;

    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn seconds_are_positive_numbers_or_zero_where_allowed() {
        assert_eq!(parse_secs("0.5").unwrap(), Duration::from_millis(500));
        for bad in ["0", "-1", "x", "", "1e10", "NaN", "inf"] {
            assert!(parse_secs(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_secs_or_zero("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_secs_or_zero(" 2.5 ").unwrap(), Duration::from_millis(2500));
        for bad in ["-1", "x", "1e10"] {
            assert!(parse_secs_or_zero(bad).is_err(), "{bad}");
        }
    }
}
