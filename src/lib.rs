//! srgpt: a character-level GPT trained entirely in WGSL compute shaders through wgpu, in
//! fp32, mixed, pure bf16 and pure bf16 with stochastic rounding.

pub mod bench;
pub mod data;
pub mod eval;
pub mod export;
pub mod files;
pub mod gpu;
pub mod kernels;
pub mod model;
#[cfg(not(target_arch = "wasm32"))]
pub mod plot;
pub mod precision;
pub mod sample;
pub mod train;
#[cfg(feature = "ui")]
pub mod ui;

/// Failures with their own exit code and a message meant for the user.
#[derive(Debug)]
pub enum Failure {
    /// No usable GPU adapter (exit 1).
    NoAdapter(String),
    /// A bad flag, file or configuration (exit 2).
    BadInput(String),
    /// A training run produced a non-finite loss or gradient (exit 3).
    Diverged(String),
}

impl Failure {
    pub fn exit_code(&self) -> i32 {
        match self {
            Failure::NoAdapter(_) => 1,
            Failure::BadInput(_) => 2,
            Failure::Diverged(_) => 3,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::NoAdapter(m) | Failure::BadInput(m) | Failure::Diverged(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Failure {}
