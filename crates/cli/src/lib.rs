//! brine's command-line tools as a library: the control-socket client, Salt's argument grammar,
//! the output formats and exit codes, and the `brine`, `brine-run`, `brine-key` and
//! `brine-call` commands themselves. The binaries under `src/bin` only parse flags, start a
//! runtime and call [`brine::run`], [`run::run`], [`key::run`] or [`call::run`].

pub mod args;
pub mod batch;
pub mod brine;
pub mod call;
pub mod client;
pub mod error;
pub mod exit;
pub mod generate;
pub mod job;
pub mod key;
pub mod output;
pub mod run;

pub use error::CommandError;

use std::path::PathBuf;

use clap::Args;

use crate::client::DEFAULT_SOCKET;
use crate::output::OutputFormat;

/// The flags `brine-run` and `brine-key` share: where the master is and how to print.
#[derive(Debug, Args)]
pub struct MasterOptions {
    /// Output format
    #[arg(
        long,
        visible_alias = "output",
        global = true,
        value_enum,
        default_value_t,
        value_name = "FORMAT"
    )]
    pub out: OutputFormat,

    /// The master's control socket
    #[arg(
        long,
        global = true,
        env = "BRINE_SOCKET",
        default_value = DEFAULT_SOCKET,
        value_name = "PATH"
    )]
    pub socket: PathBuf,
}
