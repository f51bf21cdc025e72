//! The dashboard in a native window (eframe + wgpu). Training runs on a worker thread on the
//! renderer's own device: one device means no copies and one set of limits, and the worker's
//! command queue interleaves with the frames, so the window stays responsive.
use eframe::egui;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use anyhow::{anyhow, Result};

use super::{App, Driver, Settings};
use crate::data::Corpus;
use crate::gpu::{choose_adapter, AdapterReport, Gpu};
use crate::train::checkpoint::Checkpoint;
use crate::train::session::{Driving, Event, Session, SessionOptions};
use crate::train::{Metric, TrainSpec};

enum Command {
    Pause,
    Resume,
    Stop,
    Save,
}

/// Runs sessions on a worker thread.
pub struct ThreadDriver {
    gpu: Arc<Gpu>,
    ctx: egui::Context,
    commands: Option<Sender<Command>>,
    events: Receiver<Event>,
    events_tx: Sender<Event>,
    worker: Option<JoinHandle<()>>,
    running: Arc<AtomicBool>,
}

impl ThreadDriver {
    pub fn new(gpu: Arc<Gpu>, ctx: egui::Context) -> ThreadDriver {
        let (events_tx, events) = channel();
        ThreadDriver { gpu, ctx, commands: None, events, events_tx, worker: None, running: Arc::new(AtomicBool::new(false)) }
    }

    fn send(&self, c: Command) {
        if let Some(tx) = &self.commands {
            let _ = tx.send(c);
        }
    }

    /// Runs the session that `open` makes on a new worker thread, after stopping the last.
    fn spawn(&mut self, open: impl FnOnce(&Gpu) -> Result<(Session, Event)> + Send + 'static) {
        self.shutdown();
        let (tx, rx) = channel();
        self.commands = Some(tx);
        let (gpu, events, ctx, running) = (self.gpu.clone(), self.events_tx.clone(), self.ctx.clone(), self.running.clone());
        running.store(true, Ordering::SeqCst);
        self.worker = Some(std::thread::spawn(move || {
            let result = open(&gpu).and_then(|(mut session, started)| {
                let _ = events.send(started);
                work(&gpu, &mut session, &rx, &events, &ctx)
            });
            if let Err(e) = result {
                let _ = events.send(Event::Error(format!("{e:#}")));
            }
            running.store(false, Ordering::SeqCst);
            ctx.request_repaint();
        }));
    }

    /// Stops the session (final checkpoints are written) and waits for the worker.
    pub fn shutdown(&mut self) {
        self.send(Command::Stop);
        self.commands = None;
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

impl Drop for ThreadDriver {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn work(gpu: &Gpu, session: &mut Session, commands: &Receiver<Command>, events: &Sender<Event>, ctx: &egui::Context) -> Result<()> {
    let mut paused = false;
    loop {
        let command = if paused {
            Some(commands.recv().unwrap_or(Command::Stop))
        } else {
            match commands.try_recv() {
                Ok(c) => Some(c),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => Some(Command::Stop),
            }
        };
        match command {
            Some(Command::Pause) => paused = true,
            Some(Command::Resume) => paused = false,
            Some(Command::Save) => {
                for e in session.save(gpu)? {
                    let _ = events.send(e);
                }
            }
            Some(Command::Stop) => {
                for e in session.finish(gpu)? {
                    let _ = events.send(e);
                }
                return Ok(());
            }
            None => {}
        }
        if paused {
            continue;
        }
        for e in session.tick(gpu)? {
            let _ = events.send(e);
        }
        ctx.request_repaint();
        if session.is_done() {
            return Ok(());
        }
    }
}

impl Driver for ThreadDriver {
    fn start(&mut self, corpus: Corpus, spec: TrainSpec, options: SessionOptions) {
        self.spawn(move |gpu| Session::start(gpu, corpus, spec, options, Driving::WorkerThread));
    }
    fn continue_run(&mut self, corpus: Corpus, checkpoints: Vec<Checkpoint>, log: Vec<Metric>, options: SessionOptions) {
        self.spawn(move |gpu| Session::resume(gpu, corpus, checkpoints, log, options, Driving::WorkerThread));
    }
    fn pause(&mut self) {
        self.send(Command::Pause);
    }
    fn resume(&mut self) {
        self.send(Command::Resume);
    }
    fn stop(&mut self) {
        self.send(Command::Stop);
    }
    fn save(&mut self) {
        self.send(Command::Save);
    }
    fn poll(&mut self) -> Vec<Event> {
        self.events.try_iter().collect()
    }
    fn running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }
}

/// How the window opens and closes.
pub struct WindowOptions {
    pub settings: Settings,
    /// start training at once
    pub autostart: bool,
    /// show this run's metrics.jsonl instead of training
    pub view: Option<PathBuf>,
    pub exit_when_done: bool,
    pub screenshot: Option<PathBuf>,
    pub adapter: Option<String>,
    /// set (to the signal's number) when Ctrl-C or SIGTERM asks the program to stop: the
    /// window then closes as if the user closed it, which writes the checkpoints
    pub stop_signal: Option<Arc<AtomicUsize>>,
}

/// Whether a window can be opened here (on Linux: an X11 or Wayland display is set).
pub fn display_available() -> bool {
    if cfg!(target_os = "linux") {
        std::env::var_os("DISPLAY").is_some_and(|v| !v.is_empty()) || std::env::var_os("WAYLAND_DISPLAY").is_some_and(|v| !v.is_empty())
    } else {
        true
    }
}

struct Window {
    app: App,
    exit_when_done: bool,
    screenshot: Option<PathBuf>,
    frames_done: u32,
    shot_requested: bool,
    shot_result: Arc<Mutex<Option<Result<(), String>>>>,
    /// the session's error, reported as the exit status once the window closes
    failure: Arc<Mutex<Option<String>>>,
    frame_stats: Arc<Mutex<(u64, f64)>>,
    stop_signal: Option<Arc<AtomicUsize>>,
}

impl eframe::App for Window {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.app.show(ui);
        if let Some(e) = &self.app.error {
            *self.failure.lock().unwrap() = Some(e.clone());
        }
        *self.frame_stats.lock().unwrap() = self.app.training_frames;
        if let Some(signal) = &self.stop_signal {
            if signal.load(Ordering::SeqCst) != 0 {
                ui.ctx().send_viewport_cmd(egui::ViewportCommand::Close);
                return;
            }
            // an idle window draws no frames: look again soon
            ui.ctx().request_repaint_after(std::time::Duration::from_millis(250));
        }
        let finished =
            self.app.done || (self.app.viewing.is_some() && !self.app.running()) || (self.app.error.is_some() && !self.app.running());
        if !(self.exit_when_done && finished) {
            return;
        }
        // let the final state be drawn for a few frames before the picture
        self.frames_done += 1;
        let ctx = ui.ctx().clone();
        ctx.request_repaint();
        if self.frames_done < 5 {
            return;
        }
        match (&self.screenshot, self.shot_requested) {
            (Some(path), false) => {
                self.shot_requested = true;
                let (path, slot, repaint) = (path.clone(), self.shot_result.clone(), ctx.clone());
                let status = self.app.status_json();
                ctx.send_viewport_cmd(egui::ViewportCommand::Screenshot(egui::ScreenshotCallback::new(
                    move |image: Arc<egui::ColorImage>| {
                        *slot.lock().unwrap() = Some(save_png(&image, &path).and_then(|()| save_status(&status, &path)));
                        repaint.request_repaint();
                    },
                )));
            }
            (Some(_), true) => {
                if self.shot_result.lock().unwrap().is_some() {
                    ctx.send_viewport_cmd(egui::ViewportCommand::Close);
                }
            }
            (None, _) => ctx.send_viewport_cmd(egui::ViewportCommand::Close),
        }
    }
}

fn save_png(image: &egui::ColorImage, path: &std::path::Path) -> Result<(), String> {
    let [w, h] = image.size;
    let bytes: Vec<u8> = image.pixels.iter().flat_map(|c| c.to_array()).collect();
    let img = image::RgbaImage::from_raw(w as u32, h as u32, bytes).ok_or("screenshot has the wrong size")?;
    img.save(path).map_err(|e| format!("cannot save screenshot {}: {e}", path.display()))
}

/// Beside a screenshot `shot.png`, `shot.png.json`: the dashboard's status as the page's
/// `srgptStatus()` gives it (modes, steps, losses, where the loss plot is in the picture).
fn save_status(status: &serde_json::Value, png: &std::path::Path) -> Result<(), String> {
    let mut path = png.as_os_str().to_owned();
    path.push(".json");
    let text = serde_json::to_string_pretty(status).map_err(|e| e.to_string())? + "\n";
    crate::files::write_atomically(std::path::Path::new(&path), text.as_bytes()).map_err(|e| format!("{e:#}"))
}

/// Opens the dashboard and returns when the window closes.
pub fn run(opts: WindowOptions) -> Result<()> {
    let filter = opts.adapter.clone();
    let setup = eframe::egui_wgpu::WgpuSetupCreateNew {
        native_adapter_selector: Some(Arc::new(move |adapters: &[wgpu::Adapter], _surface: Option<&wgpu::Surface<'_>>| {
            choose_adapter(adapters.to_vec(), filter.as_deref()).map_err(|e| e.to_string())
        })),
        device_descriptor: Arc::new(|adapter: &wgpu::Adapter| wgpu::DeviceDescriptor {
            label: Some("srgpt dashboard"),
            required_features: adapter.features() & crate::gpu::OPTIONAL_FEATURES,
            required_limits: adapter.limits(),
            ..Default::default()
        }),
        ..eframe::egui_wgpu::WgpuSetupCreateNew::without_display_handle()
    };
    let mut native = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_inner_size([1200.0, 800.0])
            .with_title("srgpt — bf16 training with stochastic rounding"),
        ..Default::default()
    };
    native.wgpu_options.wgpu_setup = eframe::egui_wgpu::WgpuSetup::CreateNew(setup);
    let shot_result = Arc::new(Mutex::new(None));
    let slot = shot_result.clone();
    let failure = Arc::new(Mutex::new(None));
    let failure_slot = failure.clone();
    let frame_stats = Arc::new(Mutex::new((0u64, 0.0f64)));
    let stats_slot = frame_stats.clone();
    let screenshot = opts.screenshot.clone();
    let stop_signal = opts.stop_signal.clone();
    eframe::run_native(
        "srgpt",
        native,
        Box::new(move |cc| {
            let rs = cc.wgpu_render_state.as_ref().ok_or("the window has no wgpu renderer")?;
            let report = AdapterReport::of(&rs.adapter);
            let adapter = report.label();
            let gpu = Arc::new(Gpu::from_device(rs.device.clone(), rs.queue.clone(), report));
            let driver = ThreadDriver::new(gpu, cc.egui_ctx.clone());
            let mut app = App::new(opts.settings, adapter, Some(Box::new(driver)));
            if let Some(view) = &opts.view {
                app.open_metrics(&view.display().to_string());
            } else if opts.autostart {
                app.start();
            }
            Ok(Box::new(Window {
                app,
                exit_when_done: opts.exit_when_done,
                screenshot,
                frames_done: 0,
                shot_requested: false,
                shot_result: slot,
                failure: failure_slot,
                frame_stats: stats_slot,
                stop_signal,
            }))
        }),
    )
    .map_err(|e| anyhow!("the dashboard window failed: {e}"))?;
    let (frames, ms) = *frame_stats.lock().unwrap();
    if frames > 0 {
        eprintln!(
            "dashboard: {frames} frames while training, {:.1} ms per frame ({:.0} fps)",
            ms / frames as f64,
            1000.0 * frames as f64 / ms
        );
    }
    if let Some(Err(e)) = shot_result.lock().unwrap().take() {
        return Err(anyhow!(e));
    }
    if let Some(e) = failure.lock().unwrap().take() {
        return Err(anyhow!("training stopped: {e}"));
    }
    Ok(())
}
