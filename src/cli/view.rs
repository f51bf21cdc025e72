//! `srgpt view`: a finished run's curves, or a sweep's plot and table, in the dashboard.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;

use super::args::bad_input;

#[cfg(feature = "ui")]
pub fn view(adapter: Option<String>, path: &Path, exit_when_done: bool, screenshot: Option<PathBuf>) -> Result<ExitCode> {
    if !srgpt::ui::native::display_available() {
        return Err(bad_input("srgpt view needs a display (DISPLAY or WAYLAND_DISPLAY); none is set".into()));
    }
    // a refusal before the window opens: a sweep's folder, or a run's metrics
    if srgpt::train::sweep::is_sweep(path) {
        srgpt::train::sweep::read_sweep(path)?;
    } else {
        srgpt::train::read_metrics(&srgpt::train::metrics_path(path))?;
    }
    srgpt::ui::native::run(srgpt::ui::native::WindowOptions {
        settings: srgpt::ui::Settings::from_preset(srgpt::train::DEFAULT_PRESET),
        autostart: false,
        view: Some(path.to_path_buf()),
        exit_when_done,
        screenshot,
        adapter,
        stop_signal: None,
    })?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "ui"))]
pub fn view(_adapter: Option<String>, path: &Path, _exit_when_done: bool, _screenshot: Option<PathBuf>) -> Result<ExitCode> {
    Err(bad_input(format!(
        "srgpt view {}: this srgpt was built without the dashboard (cargo feature `ui`); `srgpt plot` draws the same curves as a PNG",
        path.display()
    )))
}
