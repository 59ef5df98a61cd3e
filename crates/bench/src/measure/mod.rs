//! The measurements, one module each. Each starts what it needs in a temporary directory of
//! its own, and every process it starts is stopped before it returns, on every path.

pub mod fleet;
pub mod ingest;
pub mod minion;
pub mod version;
