//! `srgpt plot`: a run's curves as a PNG, with no display and no system fonts (the font is
//! the one egui bundles). Four panels from metrics.jsonl: loss (raw, smoothed, val), the gap
//! to fp32, the update fidelity, and the learning rate. `train --headless` writes one as
//! DIR/curves.png when it ends.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::precision::Precision;
use crate::train::curves::{gap, mode_rgb, smoothed_points};
use crate::train::{metrics_path, read_metrics};
use crate::Failure;

/// Width and height of the picture: four panels of 800 x 450.
pub const SIZE: (u32, u32) = (1600, 900);

/// The smoothing of the loss panel's lines (weight on the past, as the dashboard's default).
const SMOOTHING: f64 = 0.9;

/// One run's series, (step, value) each.
#[derive(Default)]
struct Series {
    train: Vec<(f64, f64)>,
    val: Vec<(f64, f64)>,
    lr: Vec<(f64, f64)>,
    update_ratio: Vec<(f64, f64)>,
    lost_fraction: Vec<(f64, f64)>,
}

impl Series {
    fn smoothed_train(&self) -> Vec<(f64, f64)> {
        smoothed_points(&self.train, |p| p.1, SMOOTHING).into_iter().map(|(p, s)| (p.0, s)).collect()
    }
}

/// The metric lines of `path` (a run's folder or its metrics.jsonl), by mode in file order.
fn read_runs(path: &Path) -> Result<Vec<(String, Series)>> {
    let file = metrics_path(path);
    let mut order = Vec::new();
    let mut runs: BTreeMap<String, Series> = BTreeMap::new();
    for m in read_metrics(&file)? {
        if !runs.contains_key(&m.run) {
            order.push(m.run.clone());
        }
        let s = runs.entry(m.run.clone()).or_default();
        let step = m.step as f64;
        if let Some(t) = m.train_loss {
            s.train.push((step, t as f64));
            s.lr.push((step, m.lr as f64));
        }
        if let Some(v) = m.val_loss {
            s.val.push((step, v as f64));
        }
        if let (Some(r), Some(l)) = (m.update_ratio, m.lost_fraction) {
            s.update_ratio.push((step, r as f64));
            s.lost_fraction.push((step, l as f64));
        }
    }
    if order.is_empty() {
        return Err(Failure::BadInput(format!("{} holds no metric lines", file.display())).into());
    }
    Ok(order.into_iter().map(|name| (name.clone(), runs.remove(&name).unwrap_or_default())).collect())
}

/// The bundled font under the family name the pictures ask for (no system fonts needed).
fn register_font() -> Result<()> {
    plotters::style::register_font("sans-serif", FontStyle::Normal, epaint_default_fonts::UBUNTU_LIGHT)
        .map_err(|_| anyhow!("the bundled font could not be loaded"))
}

/// Lines drawn earlier are wider, so a mode whose curve lies under a later one (fp32 and
/// bf16-kahan often coincide) still shows at its edges: a border of 1.5 px or more on each
/// side, which a later line a pixel or two off its centre does not cover.
fn width(i: usize, runs: usize) -> u32 {
    2 + 3 * (runs - 1 - i.min(runs - 1)) as u32
}

fn colour(name: &str) -> RGBColor {
    let [r, g, b] = mode_rgb(name);
    RGBColor(r, g, b)
}

/// The range of `values` with a margin, never empty.
fn span(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-6);
    (lo - pad, hi + pad)
}

type Panel<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// (step, value) points.
type Points = Vec<(f64, f64)>;

/// A panel's axes: x over every run's steps, y over `y`.
fn axes<'a>(
    area: &Panel<'a>,
    title: &str,
    steps: (f64, f64),
    y: (f64, f64),
    y_label: &str,
) -> Result<ChartContext<'a, BitMapBackend<'a>, Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>>>
{
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(steps.0..steps.1, y.0..y.1)
        .map_err(|e| anyhow!("drawing '{title}': {e}"))?;
    chart
        .configure_mesh()
        .x_desc("step")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_desc(y_label)
        .y_labels(10)
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| anyhow!("drawing '{title}': {e}"))?;
    Ok(chart)
}

/// The series' names and colours in a box.
fn legend<'a, CT: plotters::coord::CoordTranslate>(chart: &mut ChartContext<'a, BitMapBackend<'a>, CT>) -> Result<()> {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 16))
        .draw()
        .map_err(|e| anyhow!("{e}"))
}

/// Draws the runs of `metrics` (a run's folder or a metrics.jsonl) into the PNG `out`.
pub fn plot(metrics: &Path, out: &Path) -> Result<()> {
    let runs = read_runs(metrics)?;
    register_font()?;
    let steps = span(runs.iter().flat_map(|(_, s)| s.train.iter().chain(&s.val).map(|p| p.0)));
    let fp32 = runs.iter().find(|(name, _)| name == Precision::Fp32.name()).map(|(_, s)| (s.smoothed_train(), s.val.clone()));
    let mut pixels = vec![255u8; (SIZE.0 * SIZE.1 * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
        let panels = root.split_evenly((2, 2));

        let loss_y = span(runs.iter().flat_map(|(_, s)| s.train.iter().chain(&s.val).map(|p| p.1)));
        let mut chart = axes(&panels[0], "loss: train (faint), smoothed (line), val (dots)", steps, loss_y, "loss")?;
        let n = runs.len();
        for (i, (name, s)) in runs.iter().enumerate() {
            let c = colour(name);
            chart.draw_series(LineSeries::new(s.train.iter().copied(), c.mix(0.25))).map_err(|e| anyhow!("{e}"))?;
            chart
                .draw_series(LineSeries::new(s.smoothed_train(), c.stroke_width(width(i, n))))
                .map_err(|e| anyhow!("{e}"))?
                .label(name.as_str())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], c.stroke_width(3)));
            chart.draw_series(s.val.iter().map(|&p| Circle::new(p, 4, c.filled()))).map_err(|e| anyhow!("{e}"))?;
        }
        legend(&mut chart)?;

        match &fp32 {
            Some((fp32_train, fp32_val)) => {
                let gaps: Vec<(&str, Points, Points)> = runs
                    .iter()
                    .filter(|(name, _)| name != Precision::Fp32.name())
                    .map(|(name, s)| (name.as_str(), gap(&s.smoothed_train(), fp32_train), gap(&s.val, fp32_val)))
                    .collect();
                let y = span(gaps.iter().flat_map(|(_, t, v)| t.iter().chain(v).map(|p| p.1)).chain([0.0]));
                let mut chart =
                    axes(&panels[1], "gap to fp32 at the same step: smoothed train (line), val (dots)", steps, y, "loss - fp32's")?;
                chart
                    .draw_series(LineSeries::new([(steps.0, 0.0), (steps.1, 0.0)], colour(Precision::Fp32.name()).stroke_width(2)))
                    .map_err(|e| anyhow!("{e}"))?;
                for (i, (name, train, val)) in gaps.iter().enumerate() {
                    let c = colour(name);
                    let w = width(i, gaps.len());
                    chart.draw_series(LineSeries::new(train.iter().copied(), c.stroke_width(w))).map_err(|e| anyhow!("{e}"))?;
                    chart.draw_series(val.iter().map(|&p| Circle::new(p, 4, c.filled()))).map_err(|e| anyhow!("{e}"))?;
                }
            }
            None => {
                panels[1]
                    .draw(&Text::new("gap to fp32: no fp32 run in these metrics", (40, 200), ("sans-serif", 20)))
                    .map_err(|e| anyhow!("{e}"))?;
            }
        }

        let y = span(runs.iter().flat_map(|(_, s)| s.update_ratio.iter().chain(&s.lost_fraction).map(|p| p.1)).chain([0.0, 1.0]));
        let title = "update fidelity: update ratio (line), lost fraction (dots)";
        let mut chart = axes(&panels[2], title, steps, y, "share")?;
        for (i, (name, s)) in runs.iter().enumerate() {
            let (c, w) = (colour(name), width(i, n));
            chart.draw_series(LineSeries::new(s.update_ratio.iter().copied(), c.stroke_width(w))).map_err(|e| anyhow!("{e}"))?;
            chart.draw_series(s.lost_fraction.iter().map(|&p| Circle::new(p, 1 + w / 2, c.filled()))).map_err(|e| anyhow!("{e}"))?;
        }

        // every mode of a run follows one schedule: one line
        let schedule = runs.iter().map(|(_, s)| &s.lr).max_by_key(|lr| lr.len()).cloned().unwrap_or_default();
        let y = span(schedule.iter().map(|p| p.1).chain([0.0]));
        let mut chart = axes(&panels[3], "learning rate (the schedule every mode follows)", steps, y, "lr")?;
        chart.draw_series(LineSeries::new(schedule, BLACK.stroke_width(2))).map_err(|e| anyhow!("{e}"))?;
        root.present().map_err(|e| anyhow!("{e}"))?;
    }
    write_png(pixels, SIZE, out)
}

/// One mode's lines of a sweep, points (learning rate, mean over seeds, standard deviation).
pub struct SweepLine {
    pub precision: String,
    /// final validation loss
    pub points: SweepPoints,
    /// final validation loss minus fp32's at the same learning rate and seed
    pub gaps: SweepPoints,
}

/// A sweep line's points: (learning rate, mean over seeds, standard deviation).
pub type SweepPoints = Vec<(f64, f64, f64)>;

/// The size of sweep.png: two panels of 1000 x 520, one above the other.
pub const SWEEP_SIZE: (u32, u32) = (1000, 1040);

/// `srgpt sweep`'s picture, two panels over the learning rate (log scale, every swept rate
/// labelled): above, each mode's final validation loss; below, its difference from fp32's at
/// the same rate and seed, the modes' 0.01-nat differences that the first panel's scale hides.
/// One line per mode with error bars of one standard deviation over the seeds; earlier lines
/// wider, so coincident ones stay visible.
pub fn plot_sweep(lines: &[SweepLine], lrs: &[f32], out: &Path) -> Result<()> {
    register_font()?;
    if lines.iter().all(|l| l.points.is_empty()) {
        return Err(anyhow!("the sweep has no finished runs to draw"));
    }
    // x is log10 of the rate, its ticks exactly the swept rates, labelled as they were given
    let mut ticks: Vec<(f64, f32)> = lrs.iter().map(|&lr| ((lr as f64).log10(), lr)).collect();
    ticks.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (first, last) = (ticks[0].0, ticks[ticks.len() - 1].0);
    let pad = ((last - first) * 0.08).max(0.15);
    let x = (first - pad, last + pad);
    let mut pixels = vec![255u8; (SWEEP_SIZE.0 * SWEEP_SIZE.1 * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, SWEEP_SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
        let panels = root.split_evenly((2, 1));
        let has_fp32 = lines.iter().any(|l| l.precision == Precision::Fp32.name());
        let gap_lines: Vec<(&str, SweepPoints)> = lines
            .iter()
            .filter(|_| has_fp32)
            .map(|l| {
                // fp32's own gap is zero by definition: its line is the baseline at every rate
                let gaps =
                    if l.precision == Precision::Fp32.name() { l.points.iter().map(|p| (p.0, 0.0, 0.0)).collect() } else { l.gaps.clone() };
                (l.precision.as_str(), gaps)
            })
            .collect();
        let loss_lines: Vec<(&str, SweepPoints)> = lines.iter().map(|l| (l.precision.as_str(), l.points.clone())).collect();
        let panels_drawn = [
            ("final validation loss against the learning rate (mean ± std over seeds)", "final val loss", &loss_lines, &panels[0]),
            ("final val loss minus fp32's at the same rate and seed (mean ± std over seeds)", "minus fp32's", &gap_lines, &panels[1]),
        ];
        for (title, y_label, series, area) in panels_drawn {
            if series.is_empty() {
                area.draw(&Text::new("minus fp32's: no fp32 run in this sweep", (60, 200), ("sans-serif", 20)))
                    .map_err(|e| anyhow!("{e}"))?;
                continue;
            }
            let y = span(series.iter().flat_map(|(_, p)| p.iter().flat_map(|p| [p.1 - p.2, p.1 + p.2])));
            let mut chart = ChartBuilder::on(area)
                .caption(title, ("sans-serif", 20))
                .margin(16)
                .x_label_area_size(40)
                .y_label_area_size(80)
                .build_cartesian_2d(x.0..x.1, y.0..y.1)
                .map_err(|e| anyhow!("{e}"))?;
            // no automatic x labels: each swept rate gets its own, drawn below
            chart
                .configure_mesh()
                .x_desc("peak learning rate")
                .y_desc(y_label)
                .x_labels(0)
                .y_labels(10)
                .label_style(("sans-serif", 14))
                .draw()
                .map_err(|e| anyhow!("{e}"))?;
            let n = series.len();
            for (i, (mode, points)) in series.iter().enumerate() {
                let c = colour(mode);
                let xy = points.iter().map(|p| (p.0.log10(), p.1));
                chart
                    .draw_series(LineSeries::new(xy, c.stroke_width(width(i, n))))
                    .map_err(|e| anyhow!("{e}"))?
                    .label(*mode)
                    .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], c.stroke_width(3)));
                chart
                    .draw_series(
                        points.iter().map(|&(lr, m, s)| ErrorBar::new_vertical(lr.log10(), m - s, m, m + s, c.stroke_width(2), 10)),
                    )
                    .map_err(|e| anyhow!("{e}"))?;
            }
            legend(&mut chart)?;
            for &(tick, lr) in &ticks {
                let (px, py) = chart.backend_coord(&(tick, y.0));
                let mark = PathElement::new([(px, py), (px, py + 6)], BLACK.stroke_width(1));
                let text = Text::new(format!("{lr:e}"), (px - 14, py + 9), ("sans-serif", 14));
                // in the picture's own pixels: below the plotting area, which clips
                root.draw(&mark).map_err(|e| anyhow!("{e}"))?;
                root.draw(&text).map_err(|e| anyhow!("{e}"))?;
            }
        }
        root.present().map_err(|e| anyhow!("{e}"))?;
    }
    write_png(pixels, SWEEP_SIZE, out)
}

/// Encodes RGB pixels as a PNG written whole or not at all.
fn write_png(pixels: Vec<u8>, size: (u32, u32), out: &Path) -> Result<()> {
    let image = image::RgbImage::from_raw(size.0, size.1, pixels).ok_or_else(|| anyhow!("picture buffer of the wrong size"))?;
    let mut png = Vec::new();
    image.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).context("encoding the PNG")?;
    crate::files::write_atomically(out, &png).with_context(|| format!("writing {}", out.display()))
}
