//! The dashboard in a browser: eframe's web runner draws it into a canvas through WebGPU,
//! and training runs on the same device between frames (a browser gives compute no thread of
//! its own). Each frame advances the session once and never waits for the GPU: results are
//! picked up on a later frame, once the browser has mapped them. The page reads the state
//! through `srgptStatus()`.
use eframe::egui;

use std::cell::RefCell;
use std::rc::Rc;

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::opfs::{self, Saved};
use super::{App, Driver, Settings};
use crate::data::Corpus;
use crate::gpu::{AdapterReport, Gpu, OPTIONAL_FEATURES};
use crate::train::checkpoint::Checkpoint;
use crate::train::session::{Driving, Event, Session, SessionOptions};
use crate::train::{Metric, TrainSpec};

/// Runs the session on the renderer's thread, one `tick` per frame. The session keeps
/// snapshots in the page's private file system (see [`opfs`]) as often as the settings'
/// checkpoints say, at the end, and whenever the page is hidden or left.
pub struct FrameDriver {
    gpu: Rc<Gpu>,
    /// shared with the page's visibilitychange and pagehide handlers
    session: Rc<RefCell<Option<Session>>>,
    paused: bool,
    events: Vec<Event>,
}

impl FrameDriver {
    pub fn new(gpu: Gpu) -> FrameDriver {
        let driver = FrameDriver { gpu: Rc::new(gpu), session: Rc::new(RefCell::new(None)), paused: false, events: Vec::new() };
        driver.keep_when_hidden();
        driver
    }

    /// A hidden tab draws no frames, and a closed one none ever again: on `visibilitychange`
    /// to hidden and on `pagehide`, snapshot the session now. The GPU's copy and the writes
    /// complete through callbacks, which a hidden page still runs.
    fn keep_when_hidden(&self) {
        let (gpu, session) = (self.gpu.clone(), self.session.clone());
        let on_hide = Closure::<dyn FnMut()>::new(move || {
            let hidden = web_sys::window().and_then(|w| w.document()).is_none_or(|d| d.hidden());
            let Ok(guard) = session.try_borrow() else {
                return;
            };
            if let Some((session, keep)) = guard.as_ref().and_then(|s| Some((s, s.keeper()?))).filter(|_| hidden) {
                let _ = session.snapshot(&gpu, keep);
            }
        });
        if let Some(window) = web_sys::window() {
            let _ = window.add_event_listener_with_callback("pagehide", on_hide.as_ref().unchecked_ref());
            if let Some(document) = window.document() {
                let _ = document.add_event_listener_with_callback("visibilitychange", on_hide.as_ref().unchecked_ref());
            }
        }
        // the handlers live as long as the page
        on_hide.forget();
    }

    fn open(&mut self, opened: anyhow::Result<(Session, Event)>) {
        self.paused = false;
        match opened {
            Ok((session, started)) => {
                *self.session.borrow_mut() = Some(session);
                self.events.push(started);
            }
            Err(e) => self.events.push(Event::Error(format!("{e:#}"))),
        }
    }
}

/// A page writes no files: it keeps its session in the private file system instead, with
/// the corpus's bytes when the corpus came from the file picker.
fn in_browser(options: SessionOptions, corpus: &Corpus) -> SessionOptions {
    let bytes = (!crate::data::BUILT_IN_CORPORA.contains(&corpus.source.as_str())).then(|| corpus.bytes().into());
    SessionOptions { out_dir: None, keep: Some(opfs::keeper(corpus.source.clone(), bytes)), ..options }
}

impl Driver for FrameDriver {
    fn start(&mut self, corpus: Corpus, spec: TrainSpec, options: SessionOptions) {
        let options = in_browser(options, &corpus);
        let opened = Session::start(&self.gpu, corpus, spec, options, Driving::FrameLoop);
        self.open(opened);
    }
    fn continue_run(&mut self, corpus: Corpus, checkpoints: Vec<Checkpoint>, log: Vec<Metric>, options: SessionOptions) {
        let options = in_browser(options, &corpus);
        let opened = Session::resume(&self.gpu, corpus, checkpoints, log, options, Driving::FrameLoop);
        self.open(opened);
    }
    fn pause(&mut self) {
        self.paused = true;
    }
    fn resume(&mut self) {
        self.paused = false;
    }
    fn stop(&mut self) {
        if let Some(session) = self.session.borrow_mut().as_mut() {
            session.request_stop();
        }
        // the steps in flight still come back before the session ends
        self.paused = false;
    }
    /// Downloads every run's checkpoint and metrics.jsonl.
    fn save(&mut self) {
        if let Some(session) = self.session.borrow().as_ref() {
            if let Err(e) = session.snapshot(&self.gpu, opfs::downloader()) {
                self.events.push(Event::Error(format!("{e:#}")));
            }
        }
    }
    fn poll(&mut self) -> Vec<Event> {
        let mut slot = self.session.borrow_mut();
        if let Some(session) = slot.as_mut().filter(|_| !self.paused) {
            match session.tick(&self.gpu) {
                Ok(events) => self.events.extend(events),
                Err(e) => {
                    self.events.push(Event::Error(format!("{e:#}")));
                    *slot = None;
                }
            }
        }
        if slot.as_ref().is_some_and(|s| s.is_done()) {
            *slot = None;
        }
        std::mem::take(&mut self.events)
    }
    fn running(&self) -> bool {
        self.session.borrow().is_some()
    }
}

thread_local! {
    /// The JSON `srgptStatus()` returns, refreshed every frame.
    static STATUS: RefCell<String> = RefCell::new(String::from(r#"{"adapter":null,"step":0,"runs":[]}"#));
    /// The session's metric lines as JSONL, for `srgptMetrics()`.
    static METRICS: RefCell<String> = const { RefCell::new(String::new()) };
    static PICKED: RefCell<Option<PickedFile>> = const { RefCell::new(None) };
}

/// `{"adapter", "corpus", "tokenizer", "step", "runs": [{"precision", "step", "train_loss", "val_loss",
/// "status"}], "running", "paused", "done", "error", "saved_step", "saved": {"step"} | null}` as
/// a JSON string (the page exposes it as `window.srgptStatus()`): `saved_step` is the step of
/// the newest snapshot this page has kept, `saved` the session found kept when it opened.
#[wasm_bindgen(js_name = srgptStatus)]
pub fn srgpt_status() -> String {
    STATUS.with(|s| s.borrow().clone())
}

/// The session's metrics.jsonl so far (the page exposes it as `window.srgptMetrics()`).
#[wasm_bindgen(js_name = srgptMetrics)]
pub fn srgpt_metrics() -> String {
    METRICS.with(|m| m.borrow().clone())
}

/// What a file picked in the browser is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    Corpus,
    Metrics,
    /// one run's checkpoints (several files), to continue
    Checkpoints,
    /// a Hugging Face tokenizer.json
    Tokenizer,
}

pub struct PickedFile {
    pub purpose: Purpose,
    /// (name, bytes) of each file chosen
    pub files: Vec<(String, Vec<u8>)>,
}

/// Opens the browser's file picker; the file arrives through [`take_picked`] on a later frame.
pub fn pick_file(purpose: Purpose, ctx: &egui::Context) {
    let Some(document) = web_sys::window().and_then(|w| w.document()) else {
        return;
    };
    let Ok(input) = document.create_element("input").map(|e| e.unchecked_into::<web_sys::HtmlInputElement>()) else {
        return;
    };
    input.set_type("file");
    match purpose {
        Purpose::Metrics => input.set_accept(".jsonl,.json,.txt"),
        Purpose::Checkpoints => {
            input.set_accept(".safetensors,.jsonl");
            input.set_multiple(true);
        }
        Purpose::Tokenizer => input.set_accept(".json"),
        Purpose::Corpus => {}
    }
    let ctx = ctx.clone();
    let chosen = input.clone();
    let on_change = Closure::once_into_js(move || {
        let Some(list) = chosen.files() else {
            return;
        };
        let chosen: Vec<web_sys::File> = (0..list.length()).filter_map(|i| list.get(i)).collect();
        wasm_bindgen_futures::spawn_local(async move {
            let mut files = Vec::new();
            for file in chosen {
                if let Ok(buffer) = wasm_bindgen_futures::JsFuture::from(file.array_buffer()).await {
                    files.push((file.name(), js_sys::Uint8Array::new(&buffer).to_vec()));
                }
            }
            PICKED.with(|p| *p.borrow_mut() = Some(PickedFile { purpose, files }));
            ctx.request_repaint();
        });
    });
    input.set_onchange(Some(on_change.unchecked_ref()));
    input.click();
}

/// The file the user picked since the last call, if any.
pub fn take_picked() -> Option<PickedFile> {
    PICKED.with(|p| p.borrow_mut().take())
}

/// The dashboard in the page, with the offer to continue a session kept in this browser.
struct WebApp {
    app: App,
    /// a kept session found when the page opened, until continued or discarded
    saved: Option<Saved>,
    /// the step of the kept session found when the page opened
    saved_step: Option<u32>,
    /// start a new session when the offer is declined (the page's autostart)
    autostart: bool,
    /// metric lines already copied to `srgptMetrics()`
    metrics_copied: usize,
}

impl WebApp {
    fn continue_saved(&mut self) {
        let Some(saved) = self.saved.take() else {
            return;
        };
        let (name, bytes) = saved.corpus;
        if let Some(bytes) = bytes {
            self.app.settings.corpus_bytes = Some(bytes.into());
        }
        self.app.settings.corpus = name;
        self.app.continue_run(saved.checkpoints, saved.log);
    }

    /// The offer, above the dashboard: continue the kept session, or discard it.
    fn offer(&mut self, ui: &mut egui::Ui) {
        let Some(saved) = &self.saved else {
            return;
        };
        let modes: Vec<&str> = saved.checkpoints.iter().map(|c| c.precision.name()).collect();
        let total = saved.checkpoints.first().map_or(0, |c| c.state.train.steps);
        let text =
            format!("This browser kept a run: {} at step {} of {}, on corpus {}.", modes.join(", "), saved.step, total, saved.corpus.0);
        let mut choice = None;
        egui::Panel::top("saved session").show(ui, |ui| {
            ui.horizontal_wrapped(|ui| {
                ui.label(text);
                if ui.button("Continue it").clicked() {
                    choice = Some(true);
                }
                if ui.button("Discard it").on_hover_text("delete it from this browser and start anew").clicked() {
                    choice = Some(false);
                }
            });
        });
        match choice {
            Some(true) => self.continue_saved(),
            Some(false) => {
                self.saved = None;
                wasm_bindgen_futures::spawn_local(async {
                    let _ = opfs::discard().await;
                });
                if self.autostart {
                    self.app.start();
                }
            }
            None => {}
        }
    }
}

impl eframe::App for WebApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.offer(ui);
        self.app.show(ui);
        if let Some(e) = opfs::keep_error() {
            self.app.notice = Some(e);
        }
        let mut status = self.app.status_json();
        status["saved_step"] = opfs::kept_step().into();
        status["saved"] = self.saved_step.map(|step| serde_json::json!({ "step": step })).unwrap_or_default();
        STATUS.with(|s| *s.borrow_mut() = status.to_string());
        if self.app.log.len() < self.metrics_copied {
            // a new session: its lines replace the last one's
            self.metrics_copied = 0;
            METRICS.with(|m| m.borrow_mut().clear());
        }
        METRICS.with(|m| {
            let mut text = m.borrow_mut();
            for line in &self.app.log[self.metrics_copied..] {
                text.push_str(&serde_json::to_string(line).unwrap_or_default());
                text.push('\n');
            }
        });
        self.metrics_copied = self.app.log.len();
    }
}

/// The bytes at `url` (relative to the page), or why they cannot be had.
async fn fetch(url: &str) -> Result<Vec<u8>, String> {
    use wasm_bindgen_futures::JsFuture;
    let window = web_sys::window().ok_or("no window")?;
    let said = |e: JsValue| e.as_string().or_else(|| js_sys::JSON::stringify(&e).ok().map(String::from)).unwrap_or_default();
    let response: web_sys::Response =
        JsFuture::from(window.fetch_with_str(url)).await.map_err(|e| format!("cannot fetch it ({})", said(e)))?.unchecked_into();
    if !response.ok() {
        return Err(format!("fetching it gave HTTP {} {}", response.status(), response.status_text()));
    }
    let body = response.array_buffer().map_err(said)?;
    let buffer = JsFuture::from(body).await.map_err(|e| format!("cannot read it ({})", said(e)))?;
    Ok(js_sys::Uint8Array::new(&buffer).to_vec())
}

const NO_COMPUTE: &str = "This browser gave the page a graphics adapter without WebGPU compute shaders \
(most likely WebGL, its fallback), and srgpt trains with compute shaders. It needs WebGPU: Chrome or Edge 113+ \
(on Linux, enable chrome://flags/#enable-unsafe-webgpu and #enable-vulkan), Safari 26+, or Firefox 141+ on Windows \
(elsewhere, Firefox Nightly with dom.webgpu.enabled).";

/// Starts the dashboard in the canvas with id `canvas_id`, with the settings of the page's
/// query string (see [`Settings::from_query`]); by default it trains the tiny preset on the
/// builtin corpus at once. Fails (the page shows why) on a bad query or when the browser has
/// no WebGPU compute.
#[wasm_bindgen]
pub async fn start(canvas_id: String, query: String) -> Result<(), JsValue> {
    let (mut settings, start) = Settings::from_query(&query).map_err(|e| JsValue::from_str(&e))?;
    console_error_panic_hook::set_once();
    if let Some(url) = &start.tokenizer_url {
        let bytes = fetch(url).await.map_err(|e| JsValue::from_str(&format!("tokenizer={url}: {e}")))?;
        let choice = crate::data::TokenizerChoice::read(url.clone(), bytes).map_err(|e| JsValue::from_str(&e.to_string()))?;
        settings.tokenizer = Some(choice);
    }
    // a session kept in this browser is offered before anything new starts (and would be
    // replaced by it); one that cannot be read is said so, and a new one starts
    let (saved, unreadable) = match opfs::load().await {
        Ok(saved) => (saved, None),
        Err(e) => (None, Some(format!("the run kept in this browser cannot be continued: {e}"))),
    };
    let canvas = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.get_element_by_id(&canvas_id))
        .and_then(|e| e.dyn_into::<web_sys::HtmlCanvasElement>().ok())
        .ok_or_else(|| JsValue::from_str(&format!("no canvas with id '{canvas_id}'")))?;
    let mut options = eframe::WebOptions::default();
    let setup = eframe::egui_wgpu::WgpuSetupCreateNew {
        // WebGPU's default limits (what every browser grants without asking), but the largest
        // buffer and binding the adapter offers: a model's weights are one buffer, bound in
        // windows, and larger models need more than the defaults' 256 and 128 MiB
        device_descriptor: std::sync::Arc::new(|adapter: &wgpu::Adapter| wgpu::DeviceDescriptor {
            label: Some("srgpt dashboard"),
            required_features: adapter.features() & OPTIONAL_FEATURES,
            required_limits: wgpu::Limits {
                max_texture_dimension_2d: 8192,
                max_buffer_size: adapter.limits().max_buffer_size,
                max_storage_buffer_binding_size: adapter.limits().max_storage_buffer_binding_size,
                ..wgpu::Limits::default()
            },
            ..Default::default()
        }),
        ..eframe::egui_wgpu::WgpuSetupCreateNew::without_display_handle()
    };
    options.wgpu_options.wgpu_setup = eframe::egui_wgpu::WgpuSetup::CreateNew(setup);
    eframe::WebRunner::new()
        .start(
            canvas,
            options,
            Box::new(move |cc| {
                let rs = cc.wgpu_render_state.as_ref().ok_or("the page has no wgpu renderer")?;
                let compute = rs.adapter.get_downlevel_capabilities().flags.contains(wgpu::DownlevelFlags::COMPUTE_SHADERS);
                if rs.adapter.get_info().backend != wgpu::Backend::BrowserWebGpu || !compute {
                    return Err(NO_COMPUTE.into());
                }
                let report = AdapterReport::of(&rs.adapter);
                let label = report.label();
                let gpu = Gpu::from_device(rs.device.clone(), rs.queue.clone(), report);
                let app = App::new(settings, label, Some(Box::new(FrameDriver::new(gpu))));
                let saved_step = saved.as_ref().map(|s| s.step);
                let mut web = WebApp { app, saved, saved_step, autostart: start.autostart, metrics_copied: 0 };
                web.app.notice = unreadable;
                match (web.saved.is_some(), start.continue_saved) {
                    (true, true) => web.continue_saved(),
                    (true, false) => {}
                    (false, _) if start.autostart => web.app.start(),
                    (false, _) => {}
                }
                Ok(Box::new(web))
            }),
        )
        .await
}
