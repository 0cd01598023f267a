//! Plain statistics over run times: medians and ranges. Pure, so the empty and one-value cases
//! are tested here rather than discovered in a bench run.

use serde::Serialize;

/// The median and range of a few measurements.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

/// The spread of `values`, ignoring non-finite ones; `None` when nothing is left.
pub fn spread(values: &[f64]) -> Option<Spread> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    Some(Spread {
        median,
        min: sorted[0],
        max: sorted[n - 1],
        n,
    })
}

/// `a / b`, or `None` where the quotient would mean nothing (a zero or non-finite divisor).
pub fn ratio(a: f64, b: f64) -> Option<f64> {
    let q = a / b;
    (b != 0.0 && q.is_finite()).then_some(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_has_no_spread() {
        assert_eq!(spread(&[]), None);
        assert_eq!(spread(&[f64::NAN, f64::INFINITY]), None);
    }

    #[test]
    fn odd_and_even_medians() {
        let one = spread(&[2.0]).unwrap();
        assert_eq!((one.median, one.min, one.max, one.n), (2.0, 2.0, 2.0, 1));
        let odd = spread(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((odd.median, odd.min, odd.max), (2.0, 1.0, 3.0));
        let even = spread(&[4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!(
            (even.median, even.min, even.max, even.n),
            (2.5, 1.0, 4.0, 4)
        );
    }

    #[test]
    fn non_finite_values_are_skipped() {
        let s = spread(&[1.0, f64::NAN, 3.0]).unwrap();
        assert_eq!((s.median, s.n), (2.0, 2));
    }

    #[test]
    fn ratio_refuses_zero_divisors() {
        assert_eq!(ratio(1.0, 0.0), None);
        assert_eq!(ratio(0.0, 0.0), None);
        assert_eq!(ratio(3.0, 2.0), Some(1.5));
    }
}
