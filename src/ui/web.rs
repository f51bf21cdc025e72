//! The dashboard in a browser: eframe's web runner draws it into a canvas through WebGPU,
//! and training runs on the same device between frames (a browser gives compute no thread of
//! its own). Each frame advances the session once and never waits for the GPU: results are
//! picked up on a later frame, once the browser has mapped them. The page reads the state
//! through `srgptStatus()`.

use std::cell::RefCell;

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::session::{Driving, Event, Session, SessionOptions};
use super::{App, Driver, Settings};
use crate::data::Corpus;
use crate::gpu::{AdapterReport, Gpu, OPTIONAL_FEATURES};
use crate::train::TrainSpec;

/// Runs the session on the renderer's thread, one `tick` per frame.
pub struct FrameDriver {
    gpu: Gpu,
    session: Option<Session>,
    paused: bool,
    events: Vec<Event>,
}

impl FrameDriver {
    pub fn new(gpu: Gpu) -> FrameDriver {
        FrameDriver { gpu, session: None, paused: false, events: Vec::new() }
    }
}

impl Driver for FrameDriver {
    fn start(&mut self, corpus: Corpus, spec: TrainSpec, options: SessionOptions) {
        self.paused = false;
        // a page writes no files
        let options = SessionOptions { out_dir: None, ..options };
        match Session::start(&self.gpu, corpus, spec, options, Driving::FrameLoop) {
            Ok((session, started)) => {
                self.session = Some(session);
                self.events.push(started);
            }
            Err(e) => self.events.push(Event::Error(format!("{e:#}"))),
        }
    }
    fn pause(&mut self) {
        self.paused = true;
    }
    fn resume(&mut self) {
        self.paused = false;
    }
    fn stop(&mut self) {
        if let Some(session) = &mut self.session {
            session.request_stop();
        }
        // the steps in flight still come back before the session ends
        self.paused = false;
    }
    /// Never called: `can_save` is false, so the dashboard shows no Save button.
    fn save(&mut self) {}
    fn poll(&mut self) -> Vec<Event> {
        if let Some(session) = self.session.as_mut().filter(|_| !self.paused) {
            match session.tick(&self.gpu) {
                Ok(events) => self.events.extend(events),
                Err(e) => {
                    self.events.push(Event::Error(format!("{e:#}")));
                    self.session = None;
                }
            }
        }
        if self.session.as_ref().is_some_and(|s| s.is_done()) {
            self.session = None;
        }
        std::mem::take(&mut self.events)
    }
    fn running(&self) -> bool {
        self.session.is_some()
    }
    fn can_save(&self) -> bool {
        false
    }
}

thread_local! {
    /// The JSON `srgptStatus()` returns, refreshed every frame.
    static STATUS: RefCell<String> = RefCell::new(String::from(r#"{"adapter":null,"step":0,"runs":[]}"#));
    static PICKED: RefCell<Option<PickedFile>> = const { RefCell::new(None) };
}

/// `{"adapter", "corpus", "step", "runs": [{"precision", "step", "train_loss", "val_loss",
/// "status"}], "running", "paused", "done", "error"}` as a JSON string (the page exposes it as
/// `window.srgptStatus()`).
#[wasm_bindgen(js_name = srgptStatus)]
pub fn srgpt_status() -> String {
    STATUS.with(|s| s.borrow().clone())
}

/// What a file picked in the browser is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    Corpus,
    Metrics,
}

pub struct PickedFile {
    pub purpose: Purpose,
    pub name: String,
    pub bytes: Vec<u8>,
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
    if purpose == Purpose::Metrics {
        input.set_accept(".jsonl,.json,.txt");
    }
    let ctx = ctx.clone();
    let chosen = input.clone();
    let on_change = Closure::once_into_js(move || {
        let Some(file) = chosen.files().and_then(|files| files.get(0)) else {
            return;
        };
        wasm_bindgen_futures::spawn_local(async move {
            if let Ok(buffer) = wasm_bindgen_futures::JsFuture::from(file.array_buffer()).await {
                let bytes = js_sys::Uint8Array::new(&buffer).to_vec();
                PICKED.with(|p| *p.borrow_mut() = Some(PickedFile { purpose, name: file.name(), bytes }));
                ctx.request_repaint();
            }
        });
    });
    input.set_onchange(Some(on_change.unchecked_ref()));
    input.click();
}

/// The file the user picked since the last call, if any.
pub fn take_picked() -> Option<PickedFile> {
    PICKED.with(|p| p.borrow_mut().take())
}

struct WebApp {
    app: App,
}

impl eframe::App for WebApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.app.show(ui);
        let status = self.app.status_json().to_string();
        STATUS.with(|s| *s.borrow_mut() = status);
    }
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
    let (settings, autostart) = Settings::from_query(&query).map_err(|e| JsValue::from_str(&e))?;
    console_error_panic_hook::set_once();
    let canvas = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.get_element_by_id(&canvas_id))
        .and_then(|e| e.dyn_into::<web_sys::HtmlCanvasElement>().ok())
        .ok_or_else(|| JsValue::from_str(&format!("no canvas with id '{canvas_id}'")))?;
    let mut options = eframe::WebOptions::default();
    let setup = egui_wgpu::WgpuSetupCreateNew {
        // WebGPU's default limits: what every browser grants without asking
        device_descriptor: std::sync::Arc::new(|adapter: &wgpu::Adapter| wgpu::DeviceDescriptor {
            label: Some("srgpt dashboard"),
            required_features: adapter.features() & OPTIONAL_FEATURES,
            required_limits: wgpu::Limits { max_texture_dimension_2d: 8192, ..wgpu::Limits::default() },
            ..Default::default()
        }),
        ..egui_wgpu::WgpuSetupCreateNew::without_display_handle()
    };
    options.wgpu_options.wgpu_setup = egui_wgpu::WgpuSetup::CreateNew(setup);
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
                let mut app = App::new(settings, label, Some(Box::new(FrameDriver::new(gpu))));
                if autostart {
                    app.start();
                }
                Ok(Box::new(WebApp { app }))
            }),
        )
        .await
}
