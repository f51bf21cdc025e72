//! The dashboard drawn: the controls on the left, the loss curves, the small plots, the run
//! table and the samples.

use eframe::egui;
use egui::Color32;
use egui_plot::{Legend, Line, Plot, PlotPoints, Points};

#[cfg(target_arch = "wasm32")]
use super::web;
use super::{mode_color, App, RunView, XAxis};
use crate::data::TokenizerChoice;
use crate::model::config::PRESETS;
use crate::precision::Precision;
use crate::train::curves::{gap, smoothed_points};
use crate::train::sweep::SweepCell;

impl App {
    /// The whole dashboard, inside `ui`.
    pub fn show(&mut self, ui: &mut egui::Ui) {
        self.poll();
        #[cfg(not(target_arch = "wasm32"))]
        self.take_dialogs();
        #[cfg(target_arch = "wasm32")]
        if let Some(picked) = web::take_picked() {
            match picked.purpose {
                web::Purpose::Checkpoints => self.continue_from_files(picked.files),
                web::Purpose::Corpus => {
                    if let Some((name, bytes)) = picked.files.into_iter().next() {
                        self.settings.corpus = name;
                        self.settings.corpus_bytes = Some(bytes.into());
                    }
                }
                web::Purpose::Metrics => {
                    if let Some((name, bytes)) = picked.files.first() {
                        self.open_metrics_text(name, &String::from_utf8_lossy(bytes));
                    }
                }
                web::Purpose::Tokenizer => {
                    if let Some((name, bytes)) = picked.files.into_iter().next() {
                        match TokenizerChoice::read(name, bytes) {
                            Ok(choice) => self.settings.tokenizer = Some(choice),
                            Err(e) => self.error = Some(e.to_string()),
                        }
                    }
                }
            }
        }
        let dt = ui.input(|i| i.unstable_dt) * 1000.0;
        self.frame_ms.push_back(dt);
        if self.frame_ms.len() > 60 {
            self.frame_ms.pop_front();
        }
        if self.running() && !self.paused {
            self.training_frames.0 += 1;
            self.training_frames.1 += dt as f64;
        }
        egui::Panel::bottom("status").show(ui, |ui| self.status_bar(ui));
        egui::Panel::left("controls").resizable(false).default_size(250.0).show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| self.controls(ui));
        });
        egui::CentralPanel::default().show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| self.main_view(ui));
        });
        if self.running() {
            ui.ctx().request_repaint();
        }
    }

    fn status_bar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            let mean = self.frame_ms.iter().sum::<f32>() / self.frame_ms.len().max(1) as f32;
            ui.label(format!("adapter: {}", self.adapter));
            ui.separator();
            ui.label(format!("frame {mean:.1} ms ({:.0} fps)", 1000.0 / mean.max(0.01)));
            if let Some(n) = &self.notice {
                ui.separator();
                ui.label(n);
            }
        });
    }

    fn controls(&mut self, ui: &mut egui::Ui) {
        ui.heading("srgpt");
        ui.label("bf16 training with stochastic rounding");
        ui.separator();
        let idle = !self.running();
        ui.add_enabled_ui(idle, |ui| self.settings_form(ui));
        ui.separator();
        self.session_buttons(ui, idle);
        ui.separator();
        self.run_files(ui, idle);
        if let Some(e) = &self.error {
            ui.separator();
            ui.colored_label(Color32::from_rgb(220, 60, 60), format!("error: {e}"));
        }
    }

    /// The form: corpus, preset, model, schedule, seed, output folder and the modes.
    fn settings_form(&mut self, ui: &mut egui::Ui) {
        egui::Grid::new("settings").num_columns(2).show(ui, |ui| {
            let label = ui.label("corpus");
            #[cfg(not(target_arch = "wasm32"))]
            ui.horizontal(|ui| {
                ui.add(egui::TextEdit::singleline(&mut self.settings.corpus).desired_width(150.0))
                    .labelled_by(label.id)
                    .on_hover_text("builtin (srgpt's sources), shakespeare (37 plays), a path to any text file, or a folder `srgpt prepare` wrote");
                if ui.small_button("…").on_hover_text("choose a corpus file").clicked() {
                    super::dialogs::open(super::dialogs::Dialog::Corpus, ui.ctx());
                }
            });
            #[cfg(target_arch = "wasm32")]
            ui.horizontal(|ui| {
                ui.label(&self.settings.corpus).labelled_by(label.id);
                if ui.button("Choose file…").on_hover_text("any text file, tokenized with the tokenizer below").clicked() {
                    web::pick_file(web::Purpose::Corpus, ui.ctx());
                }
            });
            ui.end_row();
            ui.label("");
            ui.horizontal(|ui| {
                for name in crate::data::BUILT_IN_CORPORA {
                    if self.settings.corpus != name && ui.small_button(name).on_hover_text("a corpus built into srgpt").clicked() {
                        self.settings.corpus = name.into();
                        self.settings.corpus_bytes = None;
                    }
                }
            });
            ui.end_row();
            let label = ui.label("tokenizer");
            let shown = |t: &Option<TokenizerChoice>| t.as_ref().map_or("byte (or the folder's)".to_string(), TokenizerChoice::to_string);
            ui.horizontal(|ui| {
                let combo = egui::ComboBox::from_id_salt("tokenizer").selected_text(shown(&self.settings.tokenizer)).show_ui(ui, |ui| {
                    for choice in [None, Some(TokenizerChoice::Gpt2)] {
                        let text = shown(&choice);
                        ui.selectable_value(&mut self.settings.tokenizer, choice, text);
                    }
                });
                combo.response.labelled_by(label.id).on_hover_text(
                    "byte: one token per distinct byte of the corpus (a prepared folder: the tokenizer it was made with); gpt2: GPT-2's BPE, 50,257 tokens; or a tokenizer.json",
                );
                if ui.small_button("…").on_hover_text("choose a Hugging Face tokenizer.json").clicked() {
                    #[cfg(not(target_arch = "wasm32"))]
                    super::dialogs::open(super::dialogs::Dialog::Tokenizer, ui.ctx());
                    #[cfg(target_arch = "wasm32")]
                    web::pick_file(web::Purpose::Tokenizer, ui.ctx());
                }
            });
            ui.end_row();
            let label = ui.label("preset");
            let mut chosen = self.settings.preset.clone();
            let combo = egui::ComboBox::from_id_salt("preset").selected_text(&chosen).show_ui(ui, |ui| {
                for p in PRESETS {
                    ui.selectable_value(&mut chosen, p.name.to_string(), p.name);
                }
            });
            combo.response.labelled_by(label.id);
            if chosen != self.settings.preset {
                self.settings.apply_preset(&chosen);
            }
            ui.end_row();
            let s = &mut self.settings;
            for (label, value, max) in [
                ("layers", &mut s.model.n_layer, 64),
                ("heads", &mut s.model.n_head, 64),
                ("d", &mut s.model.d, 4096),
                ("ctx", &mut s.model.ctx, 4096),
                ("batch", &mut s.train.batch, 4096),
            ] {
                let label = ui.label(label);
                ui.add(egui::DragValue::new(value).range(1..=max)).labelled_by(label.id);
                ui.end_row();
            }
            let label = ui.label("lr");
            ui.add(egui::DragValue::new(&mut s.train.lr).speed(1e-4).range(0.0..=1.0).max_decimals(5)).labelled_by(label.id);
            ui.end_row();
            for (label, value) in [
                ("warm-up", &mut s.train.warmup),
                ("steps", &mut s.train.steps),
                ("eval every", &mut s.eval_every),
                ("sample every", &mut s.sample_every),
            ] {
                let label = ui.label(label);
                ui.add(egui::DragValue::new(value).range(0..=1_000_000)).labelled_by(label.id);
                ui.end_row();
            }
            let label = ui.label("seed");
            ui.add(egui::DragValue::new(&mut s.seed)).labelled_by(label.id);
            ui.end_row();
            #[cfg(not(target_arch = "wasm32"))]
            {
                let label = ui.label("output");
                ui.horizontal(|ui| {
                    ui.add(egui::TextEdit::singleline(&mut s.out_dir).desired_width(150.0))
                        .labelled_by(label.id)
                        .on_hover_text("the run's folder for metrics and checkpoints (empty: a new runs/<date>_<time>)");
                    if ui.small_button("…").on_hover_text("choose the folder").clicked() {
                        super::dialogs::open(super::dialogs::Dialog::OutDir, ui.ctx());
                    }
                });
                ui.end_row();
            }
        });
        ui.label("modes to compare:");
        ui.horizontal_wrapped(|ui| {
            for (i, p) in Precision::ALL.iter().enumerate() {
                ui.checkbox(&mut self.settings.modes[i], egui::RichText::new(p.name()).color(mode_color(p.name())));
            }
        });
    }

    /// Start, Pause / Resume, Stop and Save.
    fn session_buttons(&mut self, ui: &mut egui::Ui, idle: bool) {
        ui.horizontal_wrapped(|ui| {
            if ui.add_enabled(idle && self.driver.is_some(), egui::Button::new("Start")).clicked() {
                self.start();
            }
            let running = self.running();
            if self.paused {
                if ui.add_enabled(running, egui::Button::new("Resume")).clicked() {
                    self.paused = false;
                    if let Some(d) = &mut self.driver {
                        d.resume();
                    }
                }
            } else if ui.add_enabled(running, egui::Button::new("Pause")).clicked() {
                self.paused = true;
                if let Some(d) = &mut self.driver {
                    d.pause();
                }
            }
            if ui.add_enabled(running, egui::Button::new("Stop")).clicked() {
                if let Some(d) = &mut self.driver {
                    d.stop();
                }
            }
            let save = if cfg!(target_arch = "wasm32") { "Download checkpoints" } else { "Save checkpoint" };
            if self.driver.is_some() && ui.add_enabled(running, egui::Button::new(save)).clicked() {
                if let Some(d) = &mut self.driver {
                    d.save();
                }
            }
        });
    }

    /// Opening a finished run, continuing from checkpoints, exporting one.
    fn run_files(&mut self, ui: &mut egui::Ui, idle: bool) {
        let label = ui.label("view a finished run:");
        #[cfg(not(target_arch = "wasm32"))]
        ui.horizontal(|ui| {
            ui.text_edit_singleline(&mut self.view_path).labelled_by(label.id).on_hover_text("a run folder or its metrics.jsonl");
            if ui.add_enabled(idle, egui::Button::new("Open")).clicked() {
                let path = self.view_path.clone();
                self.open_metrics(&path);
            }
        });
        #[cfg(not(target_arch = "wasm32"))]
        ui.add_enabled_ui(idle, |ui| {
            use super::dialogs::{open, Dialog};
            ui.horizontal(|ui| {
                if ui.button("Folder…").on_hover_text("view a run's folder").clicked() {
                    open(Dialog::ViewFolder, ui.ctx());
                }
                if ui.button("Metrics file…").on_hover_text("view a metrics.jsonl").clicked() {
                    open(Dialog::ViewFile, ui.ctx());
                }
            });
            if ui
                .add_enabled(self.driver.is_some(), egui::Button::new("Continue from checkpoints…"))
                .on_hover_text("one run's <precision>.safetensors files, with its metrics.jsonl for the curves so far")
                .clicked()
            {
                open(Dialog::Checkpoints, ui.ctx());
            }
            if ui.button("Export a checkpoint…").on_hover_text("for Hugging Face transformers (srgpt export --format hf)").clicked() {
                open(Dialog::Export, ui.ctx());
            }
        });
        #[cfg(target_arch = "wasm32")]
        if ui.add_enabled(idle, egui::Button::new("Open metrics.jsonl…")).labelled_by(label.id).clicked() {
            web::pick_file(web::Purpose::Metrics, ui.ctx());
        }
        #[cfg(target_arch = "wasm32")]
        if ui
            .add_enabled(idle && self.driver.is_some(), egui::Button::new("Continue from checkpoints…"))
            .on_hover_text("one run's downloaded <precision>.safetensors files, with its metrics.jsonl for the curves so far")
            .clicked()
        {
            web::pick_file(web::Purpose::Checkpoints, ui.ctx());
        }
    }

    fn main_view(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.checkbox(&mut self.log_scale, "log scale");
            ui.label("x axis:");
            for axis in [XAxis::Step, XAxis::Tokens, XAxis::Time] {
                ui.radio_value(&mut self.x_axis, axis, axis.label());
            }
            ui.add(egui::Slider::new(&mut self.smoothing, 0.0..=0.99).text("smoothing"));
            if let Some(v) = &self.viewing {
                ui.label(format!("viewing {v}"));
            }
        });
        if let Some(cells) = &self.sweep {
            sweep_view(ui, cells);
            return;
        }
        self.legend(ui);
        self.loss_plot(ui);
        self.run_table(ui);
        self.gap_plot(ui);
        ui.columns(2, |cols| {
            self.small_plot(&mut cols[0], "throughput", "tokens/s", |r| &r.tokens_per_s);
            self.small_plot(&mut cols[1], "learning rate", "lr", |r| &r.lr);
        });
        ui.columns(2, |cols| {
            self.small_plot(&mut cols[0], "update ratio", "update ratio: share of each update that landed", |r| &r.update_ratio);
            self.small_plot(&mut cols[1], "lost fraction", "lost fraction: weights an update left unchanged", |r| &r.lost_fraction);
        });
        ui.heading("samples");
        for r in &self.runs {
            if r.sample.is_empty() {
                continue;
            }
            ui.colored_label(mode_color(&r.name), format!("{} at step {}:", r.name, r.sample_step));
            ui.monospace(printable(&r.sample));
        }
    }

    /// One legend for every plot, above them: each mode in its colour, a click hides or shows
    /// its curves everywhere (the plots themselves stay free of legends).
    fn legend(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.label("modes:");
            for r in &self.runs {
                let mut shown = !self.hidden.contains(&r.name);
                let text = egui::RichText::new(r.name.as_str()).color(mode_color(&r.name)).strong();
                if ui.checkbox(&mut shown, text).changed() {
                    if shown {
                        self.hidden.remove(&r.name);
                    } else {
                        self.hidden.insert(r.name.clone());
                    }
                }
            }
            ui.label("(lines: smoothed train loss over the faint raw one; points: val loss)");
        });
    }

    /// The runs the legend shows.
    fn shown(&self) -> impl Iterator<Item = &RunView> {
        self.runs.iter().filter(|r| !self.hidden.contains(&r.name))
    }

    fn loss_plot(&mut self, ui: &mut egui::Ui) {
        let x = self.x_axis.index();
        let log = self.log_scale;
        let y = move |v: f64| if log { v.max(1e-9).ln() } else { v };
        let plot = Plot::new("loss")
            .height(320.0)
            .x_axis_label(self.x_axis.label())
            .y_axis_label(if log { "loss (log scale)" } else { "loss" })
            .y_axis_formatter(move |mark, _| if log { format!("{:.3}", mark.value.exp()) } else { format!("{:.3}", mark.value) })
            .y_grid_spacer(egui_plot::log_grid_spacer(5))
            .label_formatter(move |hover| {
                let (name, p) = match hover {
                    egui_plot::HoverPosition::NearDataPoint { plot_name, position, .. } => (plot_name.to_string(), *position),
                    egui_plot::HoverPosition::Elsewhere { position } => (String::new(), *position),
                };
                let value = if log { p.y.exp() } else { p.y };
                Some(format!("{name}\nx {:.0}\nloss {value:.4}", p.x))
            });
        let alpha = self.smoothing as f64;
        let shown: Vec<&RunView> = self.shown().collect();
        let drawn = plot.show(ui, |plot_ui| {
            for r in &shown {
                let raw: PlotPoints = r.train.iter().map(|p| [p[x], y(p[3])]).collect();
                plot_ui.line(Line::new(format!("{} train", r.name), raw).color(mode_color(&r.name).gamma_multiply(0.25)).width(1.0));
            }
            for (i, r) in shown.iter().enumerate() {
                let (color, widen) = (mode_color(&r.name), overlap_widening(i, shown.len()));
                let smooth: PlotPoints = smoothed_points(&r.train, |p| p[3], alpha).into_iter().map(|(p, e)| [p[x], y(e)]).collect();
                plot_ui.line(Line::new(format!("{} smoothed", r.name), smooth).color(color).width(2.0 + widen));
                let val: PlotPoints = r.val.iter().map(|p| [p[x], y(p[3])]).collect();
                plot_ui.points(Points::new(format!("{} val", r.name), val).color(color).radius(3.0 + widen / 2.0).filled(true));
            }
        });
        let (frame, ppp) = (*drawn.transform.frame(), ui.ctx().pixels_per_point());
        self.loss_plot_px = Some([frame.min.x * ppp, frame.min.y * ppp, frame.max.x * ppp, frame.max.y * ppp]);
    }

    /// Each mode's smoothed train loss minus fp32's at the same step (lines) and its val loss
    /// minus fp32's (points): the gap between modes fills the plot instead of a hair's width
    /// of the loss plot. Shown when fp32 is among the runs.
    fn gap_plot(&self, ui: &mut egui::Ui) {
        let Some(fp32) = self.runs.iter().find(|r| r.name == Precision::Fp32.name()) else {
            return;
        };
        let (x, alpha) = (self.x_axis.index(), self.smoothing as f64);
        let smooth =
            |r: &RunView| -> Vec<(f64, f64)> { smoothed_points(&r.train, |p| p[3], alpha).into_iter().map(|(p, e)| (p[0], e)).collect() };
        let by_step = |series: &[[f64; 4]]| -> Vec<(f64, f64)> { series.iter().map(|p| (p[0], p[3])).collect() };
        // the plot's x for a step, from the run's own points
        let x_at = |r: &RunView, step: f64| r.train.iter().chain(&r.val).find(|p| p[0] == step).map_or(step, |p| p[x]);
        let (fp32_train, fp32_val) = (smooth(fp32), by_step(&fp32.val));
        ui.label("gap to fp32: smoothed train loss (lines) and val loss (points) minus fp32's at the same step");
        Plot::new("gap to fp32").height(200.0).x_axis_label(self.x_axis.label()).y_axis_label("loss - fp32's").show(ui, |plot_ui| {
            let others: Vec<&RunView> = self.shown().filter(|r| r.name != Precision::Fp32.name()).collect();
            for (i, r) in others.iter().enumerate() {
                let (color, widen) = (mode_color(&r.name), overlap_widening(i, others.len()));
                let train: PlotPoints = gap(&smooth(r), &fp32_train).into_iter().map(|(s, g)| [x_at(r, s), g]).collect();
                plot_ui.line(Line::new(format!("{} train gap", r.name), train).color(color).width(2.0 + widen));
                let val: PlotPoints = gap(&by_step(&r.val), &fp32_val).into_iter().map(|(s, g)| [x_at(r, s), g]).collect();
                plot_ui.points(Points::new(format!("{} val gap", r.name), val).color(color).radius(3.0 + widen / 2.0).filled(true));
            }
        });
    }

    fn small_plot(&self, ui: &mut egui::Ui, id: &str, label: &str, series: impl Fn(&RunView) -> &Vec<[f64; 4]>) {
        let x = self.x_axis.index();
        ui.label(label);
        Plot::new(id).height(140.0).show(ui, |plot_ui| {
            for r in self.shown() {
                let pts: PlotPoints = series(r).iter().map(|p| [p[x], p[3]]).collect();
                plot_ui.line(Line::new(r.name.clone(), pts).color(mode_color(&r.name)));
            }
        });
    }

    fn run_table(&self, ui: &mut egui::Ui) {
        egui::Grid::new("runs").striped(true).num_columns(10).show(ui, |ui| {
            for h in ["mode", "step", "train loss", "val loss", "val bpb", "tokens/s", "state MiB", "bytes/param", "elapsed s", "status"] {
                ui.strong(h);
            }
            ui.end_row();
            for r in &self.runs {
                let fmt = |v: Option<f64>, digits: usize| v.map_or("-".to_string(), |v| format!("{v:.digits$}"));
                ui.colored_label(mode_color(&r.name), &r.name);
                ui.label(r.train.last().map_or("0".into(), |p| format!("{}", p[0])));
                ui.label(fmt(RunView::last(&r.train), 4));
                ui.label(fmt(RunView::last(&r.val), 4));
                ui.label(fmt(RunView::last(&r.val_bpb), 4))
                    .on_hover_text("val loss in bits per byte of text: comparable across tokenizers");
                ui.label(fmt(RunView::last(&r.tokens_per_s), 0));
                ui.label(format!("{:.2}", r.state_mib));
                ui.label(format!("{:.1}", r.bytes_per_param));
                ui.label(r.train.last().map_or("-".into(), |p| format!("{:.1}", p[2])));
                let status = if self.paused && r.status == "running" { "paused" } else { &r.status };
                ui.label(status);
                ui.end_row();
            }
        });
    }
}

/// How much wider than the last the `i`-th of `n` overlapping curves is drawn: the modes start
/// from the same weights and their curves coincide for a while, so each earlier one shows as
/// a border around the later ones instead of vanishing under them.
fn overlap_widening(i: usize, n: usize) -> f32 {
    // 1.5 px a side: a border that a later line a pixel off its centre, or anti-aliasing,
    // does not cover
    3.0 * (n - 1 - i) as f32
}

/// Sample text for display: newlines as ¶, characters that are not printable as ·.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c == '\n' {
                '¶'
            } else if c.is_control() || c == char::REPLACEMENT_CHARACTER {
                '·'
            } else {
                c
            }
        })
        .collect()
}

/// A sweep's results over the learning rate (log scale), one line per mode with error bars of
/// one standard deviation over the seeds: the final validation loss, then its difference from
/// fp32's at the same rate and seed (the modes' small differences, which the first plot's
/// scale hides), and the table.
fn sweep_view(ui: &mut egui::Ui, cells: &[SweepCell]) {
    let mut modes: Vec<&str> = Vec::new();
    for c in cells {
        if !modes.contains(&c.precision.as_str()) {
            modes.push(&c.precision);
        }
    }
    let has_fp32 = modes.contains(&Precision::Fp32.name());
    type Value = fn(&SweepCell) -> Option<(f64, f64)>;
    let final_val: Value = |c| Some((c.final_val_mean?, c.final_val_std.unwrap_or(0.0)));
    // fp32's own difference is zero by definition: its line is the baseline
    let gap: Value = |c| {
        if c.precision == Precision::Fp32.name() {
            c.final_val_mean.map(|_| (0.0, 0.0))
        } else {
            Some((c.gap_to_fp32_mean?, c.gap_to_fp32_std.unwrap_or(0.0)))
        }
    };
    let plots: &[(&str, &str, &str, Value)] = if has_fp32 {
        &[
            ("sweep", "final validation loss against the peak learning rate (mean ± std over seeds)", "final val loss", final_val),
            ("sweep gap", "final val loss minus fp32's at the same rate and seed (mean ± std over seeds)", "minus fp32's", gap),
        ]
    } else {
        &[("sweep", "final validation loss against the peak learning rate (mean ± std over seeds)", "final val loss", final_val)]
    };
    for &(id, title, y_label, value) in plots {
        ui.label(title);
        Plot::new(id)
            .height(260.0)
            .legend(Legend::default())
            .x_axis_label("learning rate")
            .y_axis_label(y_label)
            .x_axis_formatter(|mark, _| format!("{:.0e}", 10f64.powf(mark.value)))
            .show(ui, |plot_ui| {
                for (i, mode) in modes.iter().enumerate() {
                    let color = mode_color(mode);
                    let points: Vec<(f64, f64, f64)> = cells
                        .iter()
                        .filter(|c| c.precision == *mode)
                        .filter_map(|c| value(c).map(|(m, sd)| ((c.lr as f64).log10(), m, sd)))
                        .collect();
                    let line: PlotPoints = points.iter().map(|p| [p.0, p.1]).collect();
                    plot_ui.line(Line::new(mode.to_string(), line).color(color).width(2.5 + overlap_widening(i, modes.len())));
                    for (x, m, sd) in points {
                        plot_ui.line(
                            Line::new(format!("{mode} ±std"), PlotPoints::from(vec![[x, m - sd], [x, m + sd]])).color(color).width(1.5),
                        );
                    }
                }
            });
    }
    let fmt = |v: Option<f64>, digits: usize| v.map_or("-".to_string(), |v| format!("{v:.digits$}"));
    egui::Grid::new("sweep table").striped(true).num_columns(9).show(ui, |ui| {
        for h in ["mode", "lr", "seeds", "final val loss", "± std", "minus fp32's", "update ratio", "lost fraction", "steps to target"] {
            ui.strong(h);
        }
        ui.end_row();
        for c in cells {
            ui.colored_label(mode_color(&c.precision), &c.precision);
            ui.label(format!("{:e}", c.lr));
            ui.label(c.seeds.to_string());
            ui.label(fmt(c.final_val_mean, 4));
            ui.label(fmt(c.final_val_std, 4));
            ui.label(match (c.gap_to_fp32_mean, c.gap_to_fp32_std) {
                (Some(m), Some(sd)) => format!("{m:+.4} ± {sd:.4}"),
                _ => "-".into(),
            });
            ui.label(fmt(c.update_ratio, 3));
            ui.label(fmt(c.lost_fraction, 3));
            ui.label(format!("{} ({} of {})", fmt(c.steps_to_target_mean, 0), c.reached_target, c.seeds));
            ui.end_row();
        }
    });
}

#[cfg(not(target_arch = "wasm32"))]
impl App {
    /// Acts on the answers of the file dialogs (or of a test that delivers them).
    pub fn take_dialogs(&mut self) {
        use super::dialogs::Picked;
        for picked in super::dialogs::take() {
            match picked {
                Picked::Corpus(path) => {
                    self.settings.corpus = path.display().to_string();
                    self.settings.corpus_bytes = None;
                }
                Picked::Tokenizer(path) => self.settings.tokenizer = Some(TokenizerChoice::File(path)),
                Picked::OutDir(path) => self.settings.out_dir = path.display().to_string(),
                Picked::View(path) => {
                    self.view_path = path.display().to_string();
                    self.open_metrics(&self.view_path.clone());
                }
                Picked::Checkpoints(paths) => {
                    let mut files = Vec::new();
                    for p in &paths {
                        match std::fs::read(p) {
                            Ok(bytes) => files.push((p.display().to_string(), bytes)),
                            Err(e) => {
                                self.error = Some(format!("cannot read {}: {e}", p.display()));
                                return;
                            }
                        }
                    }
                    self.continue_from_files(files);
                }
                Picked::Export { checkpoint, to } => {
                    let exported = crate::train::checkpoint::load(&checkpoint)
                        .and_then(|c| crate::export::export(&c, crate::export::ExportFormat::Hf, &to));
                    match exported {
                        Ok(_) => {
                            self.error = None;
                            self.notice = Some(format!("exported {} to {}", checkpoint.display(), to.display()));
                        }
                        Err(e) => self.error = Some(format!("{e:#}")),
                    }
                }
            }
        }
    }
}
