//! HFT Arbitrage Lab core: every algorithm lives here once, as plain Rust functions on slices.
//! No I/O, no Python, no gRPC: the PyO3 bindings (`rustcore/python`) and the tonic server
//! (`grpcd`) are thin adapters over this crate.

pub mod adf;
pub mod backtest;
pub mod error;
pub mod hmm;
pub mod hmm_mv;
pub mod johansen;
pub mod kalman;
pub mod limits;
pub(crate) mod linalg;
pub mod num;
pub mod ou;
pub mod pairs;
pub mod portfolio;
pub mod rolling;
pub mod sparse;
pub mod spread;
pub mod walkforward;

pub use error::{CoreError, CoreResult};

/// Version of the core, reported by both transports.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
