//! The command line's larger parts: flag checks (`args`) and `srgpt train` (`train`).

pub mod args;
pub mod train;
