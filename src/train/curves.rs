//! Series drawn from metric lines, shared by the dashboard and `srgpt plot`: each mode's
//! colour, a debiased moving average, and each mode's distance from fp32 at the same step.

use crate::precision::Precision;

/// The colour of the curves of a run named in a metrics file: its mode's (`Precision::rgb`),
/// grey for a name that is not a mode.
pub fn mode_rgb(name: &str) -> [u8; 3] {
    Precision::parse(name).map_or([128, 128, 128], Precision::rgb)
}

/// Exponential moving average with weight `alpha` on the past, debiased as TensorBoard does:
/// the average starts from zero and is divided by 1 - alpha^t, so the first point is the
/// first value and the line follows the data from its start instead of lagging behind it.
pub fn smoothed(values: &[f64], alpha: f64) -> Vec<f64> {
    let mut ema = 0.0;
    let mut weight = 1.0;
    values
        .iter()
        .map(|&v| {
            ema = alpha * ema + (1.0 - alpha) * v;
            weight *= alpha;
            if weight < 1.0 {
                ema / (1.0 - weight)
            } else {
                v
            }
        })
        .collect()
}

/// The debiased moving average of a series whose points carry their own coordinates (a step,
/// or step, tokens and time): each point with the smoothed value of `value(point)`.
pub fn smoothed_points<P: Copy>(points: &[P], value: impl Fn(&P) -> f64, alpha: f64) -> Vec<(P, f64)> {
    let values: Vec<f64> = points.iter().map(value).collect();
    points.iter().copied().zip(smoothed(&values, alpha)).collect()
}

/// `series` minus `reference` where both have a point at the same step: (step, difference)
/// for each step of `series` that `reference` has. Points are (step, value), steps ascending.
pub fn gap(series: &[(f64, f64)], reference: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    let mut j = 0;
    for &(step, value) in series {
        while j < reference.len() && reference[j].0 < step {
            j += 1;
        }
        if j < reference.len() && reference[j].0 == step {
            out.push((step, value - reference[j].1));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_debiased_average_starts_at_the_data_and_follows_a_constant_exactly() {
        let s = smoothed(&[4.0, 4.0, 4.0], 0.9);
        assert!(s.iter().all(|&v| (v - 4.0).abs() < 1e-12), "{s:?}");
        // a plain EMA seeded at 0 would read 0.2 after one step of 2.0; debiased, 2.0
        assert_eq!(smoothed(&[2.0], 0.9), vec![2.0]);
        // a falling curve: the average stays between the first value and the latest
        let falling: Vec<f64> = (0..50).map(|i| 4.0 - 0.05 * i as f64).collect();
        let s = smoothed(&falling, 0.9);
        assert!(s.iter().zip(&falling).all(|(s, v)| *s >= *v - 1e-12 && *s <= 4.0 + 1e-12));
        assert_eq!(smoothed(&[1.0, 3.0], 0.0), vec![1.0, 3.0], "no smoothing");
    }

    #[test]
    fn the_gap_pairs_equal_steps_only() {
        let fp32 = [(1.0, 3.0), (2.0, 2.5), (4.0, 2.0)];
        let bf16 = [(1.0, 3.1), (3.0, 2.6), (4.0, 2.05)];
        let g = gap(&bf16, &fp32);
        assert_eq!(g.len(), 2);
        assert!((g[0].1 - 0.1).abs() < 1e-12 && g[1].0 == 4.0 && (g[1].1 - 0.05).abs() < 1e-12);
    }
}
