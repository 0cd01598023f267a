//! Human units for bytes and counts, in two widths from one scaler: the full form of reports
//! and detail panes (`1.5 KiB`, `16 384`), and the compact form of the dashboard's table
//! columns, which have 4 to 5 characters for a number (`1.5K`, `16k`).

/// How much room a figure has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Width {
    /// One decimal and the unit's full name (`64.0 MiB`).
    Full,
    /// At most 5 characters: one decimal only below 10 (`9.9M`, `64M`).
    Compact,
}

impl Width {
    fn decimals(self, value: f64) -> usize {
        match self {
            Width::Full => 1,
            Width::Compact if value < 9.95 => 1,
            Width::Compact => 0,
        }
    }
}

/// `value` rounded as `width` shows it.
fn shown(value: f64, width: Width) -> f64 {
    let scale = 10f64.powi(width.decimals(value) as i32);
    (value * scale).round() / scale
}

/// `v` (at least one `base`) as a value and the index of its unit in `units`: moves up while
/// the value as shown would reach `base` (1023.96 KiB is shown as 1.0 MiB, not 1024.0 KiB).
fn scaled(v: f64, base: f64, units: usize, width: Width) -> (f64, usize) {
    let mut value = v / base;
    let mut unit = 0;
    while shown(value, width) >= base && unit + 1 < units {
        value /= base;
        unit += 1;
    }
    (value, unit)
}

/// Binary prefixes: K for KiB (full) or K (compact), and so on.
const BINARY: [&str; 6] = ["K", "M", "G", "T", "P", "E"];

/// Bytes in binary units, in either width. Below 1 KiB they stay exact.
fn binary(v: f64, width: Width) -> String {
    if v.round() < 1024.0 {
        return match width {
            Width::Full => format!("{v:.0} B"),
            Width::Compact => format!("{v:.0}B"),
        };
    }
    let (value, unit) = scaled(v, 1024.0, BINARY.len(), width);
    let decimals = width.decimals(value);
    match width {
        Width::Full => format!("{value:.decimals$} {}iB", BINARY[unit]),
        Width::Compact => format!("{value:.decimals$}{}", BINARY[unit]),
    }
}

/// `1536` -> `1.5 KiB`; bytes below 1 KiB stay exact (`512 B`).
pub fn bytes(n: u64) -> String {
    binary(n as f64, Width::Full)
}

/// `512B`, `1.5K`, `64M`, `1.2G`: at most 5 characters, for narrow columns and rates.
pub fn bytes_compact(v: f64) -> String {
    binary(v, Width::Compact)
}

/// `16384` -> `16 384`: thin groups keep big counts readable in a table.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(ch);
    }
    out
}

/// `999`, `12k`, `9.9M`: at most 5 characters, decimal units.
pub fn count_compact(v: f64) -> String {
    const DECIMAL: [&str; 6] = ["k", "M", "G", "T", "P", "E"];
    if v < 9999.5 {
        return format!("{v:.0}");
    }
    let (value, unit) = scaled(v, 1000.0, DECIMAL.len(), Width::Compact);
    let decimals = Width::Compact.decimals(value);
    format!("{value:.decimals$}{}", DECIMAL[unit])
}

/// A ratio as a percentage with one decimal, `-` when there is none.
pub fn percent(ratio: Option<f64>) -> String {
    match ratio {
        Some(r) => format!("{:.1}%", r * 100.0),
        None => "-".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_in_binary_units() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1024), "1.0 KiB");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(64 << 20), "64.0 MiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
        assert_eq!(bytes(u64::MAX), "16.0 EiB");
        // Just below the next unit, rounding would show 1024.0 KiB: the next unit is used.
        assert_eq!(bytes((1 << 20) - 1), "1.0 MiB");
        assert_eq!(bytes(1023 * 1024 + 900), "1023.9 KiB");
    }

    #[test]
    fn counts_grouped_by_thousands() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(16384), "16 384");
        assert_eq!(count(1_000_000), "1 000 000");
    }

    #[test]
    fn compact_bytes_and_counts() {
        assert_eq!(bytes_compact(0.0), "0B");
        assert_eq!(bytes_compact(512.4), "512B");
        assert_eq!(bytes_compact(1536.0), "1.5K");
        assert_eq!(bytes_compact(64.0 * 1024.0 * 1024.0), "64M");
        assert_eq!(bytes_compact(1023.9 * 1024.0), "1.0M");
        assert_eq!(bytes_compact(u64::MAX as f64), "16E");
        assert_eq!(count_compact(999.0), "999");
        assert_eq!(count_compact(12_345.0), "12k");
        assert_eq!(count_compact(9_960_000.0), "10M");
        for v in [0.0, 1.0, 1023.0, 1024.0, 99_999.0, 1e12, u64::MAX as f64] {
            assert!(
                bytes_compact(v).chars().count() <= 5,
                "{}",
                bytes_compact(v)
            );
            assert!(
                count_compact(v).chars().count() <= 5,
                "{}",
                count_compact(v)
            );
        }
    }

    /// The two widths of one figure agree: the compact form is the full one, shortened.
    #[test]
    fn the_two_widths_agree() {
        for n in [0, 1, 1023, 1024, 1536, 5 << 20, 64 << 20, 3 << 30, u64::MAX] {
            let (full, compact) = (bytes(n), bytes_compact(n as f64));
            let unit = compact.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.');
            assert!(
                full.contains(unit.trim_end_matches('B')),
                "{full} vs {compact}"
            );
            let number = |s: &str| -> f64 {
                s.trim_end_matches(|c: char| !c.is_ascii_digit())
                    .parse()
                    .unwrap()
            };
            assert!(
                (number(&full) - number(&compact)).abs() < 0.5 + 1e-9,
                "{full} vs {compact}"
            );
        }
    }

    #[test]
    fn percents() {
        assert_eq!(percent(None), "-");
        assert_eq!(percent(Some(0.998)), "99.8%");
        assert_eq!(percent(Some(0.0)), "0.0%");
    }
}
