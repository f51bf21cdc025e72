//! The command line, a file per subcommand: `main.rs` parses and calls into these. `args`
//! holds the flag checks every subcommand shares, `train_plan` turns `train`'s flags into one
//! checked plan, `progress` and `signals` serve the headless run.

pub mod args;
pub mod bench;
#[cfg(feature = "ui")]
pub mod dashboard;
pub mod eval;
pub mod export;
pub mod info;
pub mod plan;
pub mod plot;
pub mod prepare;
pub mod progress;
pub mod sample;
pub mod shader;
pub mod signals;
pub mod sweep;
pub mod train;
pub mod train_plan;
pub mod view;
