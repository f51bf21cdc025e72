//! The GPT: configuration, parameters, the GPU model and its CPU reference (the model is described in README.md).

mod buffers;
pub mod config;
pub mod cpu;
pub mod gpt;
pub mod params;
