//! Short forms for narrow columns: a table cell has 4 to 5 characters for a number.

use std::time::Duration;

/// `512B`, `1.5K`, `64M`, `1023K`, `1.2G`: at most 5 characters, binary units.
pub fn bytes(v: f64) -> String {
    if v < 1023.5 {
        return format!("{v:.0}B");
    }
    scaled(v, 1024.0, &["K", "M", "G", "T", "P", "E"])
}

/// `999`, `12k`, `9.9M`: at most 5 characters, decimal units.
pub fn count(v: f64) -> String {
    if v < 9999.5 {
        return format!("{v:.0}");
    }
    scaled(v, 1000.0, &["k", "M", "G", "T", "P", "E"])
}

fn scaled(v: f64, base: f64, units: &[&str]) -> String {
    let mut value = v / base;
    let mut unit = 0;
    // Move up while the rounded value would not fit (1023.6K -> 1.0M).
    while value >= base - 0.5 && unit + 1 < units.len() {
        value /= base;
        unit += 1;
    }
    if value < 9.95 {
        format!("{value:.1}{}", units[unit])
    } else {
        format!("{value:.0}{}", units[unit])
    }
}

/// `45s`, `3m07s`, `2h05m`.
pub fn elapsed(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

/// `1s`, `500ms`, `1.5s`.
pub fn interval(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// A bar of `width` cells filled by `ratio` (eighths of a cell), and the empty rest.
pub fn bar(ratio: f64, width: usize) -> (String, String) {
    const PARTS: [char; 7] = ['▏', '▎', '▍', '▌', '▋', '▊', '▉'];
    let eighths = (ratio.clamp(0.0, 1.0) * (width * 8) as f64).round() as usize;
    let (full, part) = (eighths / 8, eighths % 8);
    let mut filled = "█".repeat(full);
    if part > 0 {
        filled.push(PARTS[part - 1]);
    }
    let used = full + usize::from(part > 0);
    (filled, "·".repeat(width - used))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_bytes_and_counts() {
        assert_eq!(bytes(0.0), "0B");
        assert_eq!(bytes(512.4), "512B");
        assert_eq!(bytes(1536.0), "1.5K");
        assert_eq!(bytes(64.0 * 1024.0 * 1024.0), "64M");
        assert_eq!(bytes(1023.9 * 1024.0), "1.0M");
        assert_eq!(bytes(u64::MAX as f64), "16E");
        assert_eq!(count(999.0), "999");
        assert_eq!(count(12_345.0), "12k");
        assert_eq!(count(9_960_000.0), "10M");
        for v in [0.0, 1.0, 1023.0, 1024.0, 99_999.0, 1e12, u64::MAX as f64] {
            assert!(bytes(v).chars().count() <= 5, "{}", bytes(v));
            assert!(count(v).chars().count() <= 5, "{}", count(v));
        }
    }

    #[test]
    fn times() {
        assert_eq!(elapsed(Duration::from_secs(45)), "45s");
        assert_eq!(elapsed(Duration::from_secs(187)), "3m07s");
        assert_eq!(elapsed(Duration::from_secs(7500)), "2h05m");
        assert_eq!(interval(Duration::from_secs(1)), "1s");
        assert_eq!(interval(Duration::from_millis(500)), "500ms");
        assert_eq!(interval(Duration::from_millis(1500)), "1.5s");
    }

    #[test]
    fn bars() {
        assert_eq!(bar(0.0, 4), (String::new(), "····".into()));
        assert_eq!(bar(1.0, 4), ("████".into(), String::new()));
        assert_eq!(bar(0.5, 4), ("██".into(), "··".into()));
        assert_eq!(bar(0.9, 4), ("███▋".into(), String::new()));
        assert_eq!(bar(7.0, 2), ("██".into(), String::new()));
    }
}
