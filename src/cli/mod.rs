//! The command line's larger parts: flag checks (`args`), `srgpt train` (`train`) and
//! `srgpt sweep` (`sweep`).

pub mod args;
pub mod sweep;
pub mod train;
