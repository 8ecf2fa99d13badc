//! Durations as people write them in config files and as Vault clients send them: a bare
//! number of seconds, or a number with one unit suffix (`s`, `m`, `h`, `d`).

/// Parses `"90"`, `"90s"`, `"15m"`, `"1h"`, `"7d"` into seconds.
pub fn parse_seconds(text: &str) -> Option<u64> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&text[..i], c),
        _ => (text, 's'),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value: u64 = digits.parse().ok()?;
    let scale = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return None,
    };
    value.checked_mul(scale)
}

/// Formats seconds the short way round (`"90s"`, `"15m"`, `"1h"`, `"7d"`).
pub fn format_seconds(seconds: u64) -> String {
    match seconds {
        s if s != 0 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s != 0 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s != 0 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_refuses_garbage() {
        assert_eq!(parse_seconds("3600"), Some(3600));
        assert_eq!(parse_seconds("90s"), Some(90));
        assert_eq!(parse_seconds("15m"), Some(900));
        assert_eq!(parse_seconds("1h"), Some(3600));
        assert_eq!(parse_seconds("7d"), Some(604_800));
        for bad in ["", "h", "1.5h", "-1s", "1w", "1 h", "99999999999999999999d"] {
            assert_eq!(parse_seconds(bad), None, "{bad}");
        }
        assert_eq!(format_seconds(7 * 86_400), "7d");
        assert_eq!(format_seconds(90), "90s");
        assert_eq!(format_seconds(0), "0s");
    }
}
