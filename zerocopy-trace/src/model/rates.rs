//! Rates over the time between two snapshots (their differences are
//! `ProcessCounters::difference`).

/// `n` over `seconds`; 0 for an empty interval rather than infinity.
pub fn per_second(n: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        n as f64 / seconds
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_over_an_empty_interval_are_zero() {
        assert_eq!(per_second(5, 0.0), 0.0);
        assert_eq!(per_second(10, 2.0), 5.0);
    }
}
