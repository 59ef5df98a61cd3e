//! brine's command-line tools as a library: the control-socket client, Salt's argument grammar,
//! the output formats and exit codes, and the `brine` and `brine-run` commands themselves. The
//! binaries under `src/bin` only parse flags, start a runtime and call [`brine::run`] or
//! [`run::run`].

pub mod args;
pub mod brine;
pub mod client;
pub mod error;
pub mod exit;
pub mod job;
pub mod output;
pub mod run;

pub use error::CommandError;
