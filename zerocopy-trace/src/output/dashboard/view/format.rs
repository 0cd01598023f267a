//! Short forms of times and bars for the dashboard (compact bytes and counts are in `units`).

use std::time::Duration;

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
