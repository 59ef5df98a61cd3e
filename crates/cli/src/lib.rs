//! brine's command-line tools as a library: the control-socket client, Salt's argument grammar,
//! the output formats and exit codes, and the `brine`, `brine-run` and `brine-key` commands
//! themselves. The binaries under `src/bin` only parse flags, start a runtime and call
//! [`brine::run`], [`run::run`] or [`key::run`].

pub mod args;
pub mod brine;
pub mod client;
pub mod error;
pub mod exit;
pub mod job;
pub mod key;
pub mod output;
pub mod run;

pub use error::CommandError;
