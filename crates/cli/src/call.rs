//! The `brine-call` command: Salt's `salt-call`, a function run on this host.
//!
//! It runs the function in this process through the same execution modules the minion daemon
//! runs, as the minion this host is: its id, its configured grains and the grains stored with
//! `grains.setval` (so `brine-call grains.setval role web` changes what the daemon reports
//! after its next `saltutil.refresh_grains` or restart). It never talks to a master: brine has
//! no file server or pillar to fetch, so `--local` is accepted for Salt's habits and changes
//! nothing. No job is recorded, and the daemon's running jobs are not visible from here.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use brine_config::MinionConfig;
use brine_modules::{Context, GrainStore};
use brine_proto::{FunctionName, Value};
use clap::{Parser, ValueEnum};

use crate::args::parse_args;
use crate::error::CommandError;
use crate::exit;
use crate::output::{color_wanted, render_data, OutputFormat, Palette};

/// The minion configuration read when `--config` is not given (if it exists).
pub const DEFAULT_CONFIG: &str = "/etc/brine/minion.toml";

/// Run a function on this host, the way `salt-call` does, as the minion configured here.
///
/// Example: brine-call --local grains.get os
#[derive(Debug, Parser)]
#[command(name = "brine-call", version, after_help = exit::BRINE_CALL_HELP, allow_negative_numbers = true)]
pub struct Cli {
    /// Run without a master (brine-call never needs one; accepted as in Salt)
    #[arg(long)]
    pub local: bool,

    /// The minion configuration whose id, grains and state_dir to use [default:
    /// /etc/brine/minion.toml when it exists, else the built-in defaults]
    #[arg(short, long, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Run as this minion id instead of the configured one
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,

    /// Exit with the function's own retcode instead of 1 when it fails
    #[arg(long)]
    pub retcode_passthrough: bool,

    /// Output format
    #[arg(
        long,
        visible_alias = "output",
        value_enum,
        default_value_t = CallFormat::Human,
        value_name = "FORMAT"
    )]
    pub out: CallFormat,

    /// The function to run, as module.function (test.ping, grains.items, cmd.run, ...)
    #[arg(value_name = "FUNCTION")]
    pub fun: FunctionName,

    /// Arguments: key=value is a keyword argument, anything else positional, typed like YAML
    #[arg(value_name = "ARGS")]
    pub args: Vec<String>,
}

/// The formats a single local result can be printed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CallFormat {
    /// Salt's nested layout under `local:`.
    Human,
    /// `{"local": ...}`, indented.
    Json,
    /// `local: ...`.
    Yaml,
}

impl From<CallFormat> for OutputFormat {
    fn from(format: CallFormat) -> Self {
        match format {
            CallFormat::Human => OutputFormat::Human,
            CallFormat::Json => OutputFormat::Json,
            CallFormat::Yaml => OutputFormat::Yaml,
        }
    }
}

impl Cli {
    /// The configuration: `--config`, else the default file if it exists, else the defaults
    /// (`BRINE_MINION_*` variables apply to all three).
    fn config(&self) -> Result<MinionConfig, CommandError> {
        let path = match &self.config {
            Some(path) => Some(path.clone()),
            None => Some(PathBuf::from(DEFAULT_CONFIG)).filter(|p| p.exists()),
        };
        let mut config = MinionConfig::load(path.as_deref()).map_err(|e| {
            let at = path
                .as_deref()
                .map_or("defaults".into(), |p: &Path| p.display().to_string());
            CommandError::Usage(format!("minion configuration ({at}): {e}"))
        })?;
        if let Some(id) = &self.id {
            config.id = id.clone();
        }
        Ok(config)
    }
}

/// Runs the command: the result on `out`. Gives the exit code.
pub async fn run(
    cli: &Cli,
    out: &mut dyn Write,
    stdout_is_terminal: bool,
) -> Result<u8, CommandError> {
    let config = cli.config()?;
    let id = config
        .minion_id()
        .map_err(|e| CommandError::Usage(format!("minion id: {e}")))?;
    let store = GrainStore::open(&id, config.grains.clone(), &config.state_dir)
        .map_err(|e| CommandError::Usage(format!("grains: {e}")))?;
    let context = Context::with_store(id, Arc::new(store));
    let args = parse_args(&cli.args);
    let outcome = brine_modules::execute(&context, cli.fun.as_str(), args.arg, args.kwarg).await;
    let mut local = brine_proto::Map::new();
    local.insert("local".into(), outcome.ret);
    let palette = Palette::new(color_wanted(stdout_is_terminal));
    let text = render_data(&Value::Object(local), cli.out.into(), palette);
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(CommandError::Output)?;
    Ok(
        match (
            outcome.success && outcome.retcode == 0,
            cli.retcode_passthrough,
        ) {
            (true, _) => exit::SUCCESS,
            (false, true) => u8::try_from(outcome.retcode).unwrap_or(exit::FAILED).max(1),
            (false, false) => exit::FAILED,
        },
    )
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
