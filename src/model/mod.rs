//! The GPT of DESIGN.md: configuration, parameters, and forward/backward as kernel sequences.

pub mod config;
pub mod cpu;
pub mod gpt;
pub mod params;
