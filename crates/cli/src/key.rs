//! The `brine-key` command: Salt's `salt-key` for the minion keys the master keeps.
//!
//! Every subcommand sends one `keys` request on the control socket (see
//! `brine_proto::control::KeyCommand`) and prints the answer: `list`, `finger` and
//! `master-finger` → `list`; `accept` → `accept`; `reject` → `reject`; `delete` → `delete`.
//!
//! `salt-key`'s flags are taken too: before clap parses, [`subcommand_form`] turns them into
//! the subcommand they stand for (`SALT_FLAGS`: `-a 'web*' -y` is `accept --yes -- 'web*'`,
//! `-l un` is `list --state pending`), so both forms run the same code. A command line has one
//! form or the other; an unknown flag's error names both.
//!
//! `accept ID` takes the id's pending or rejected key; `accept GLOB` (as `salt-key -a`) the
//! pending keys the glob matches, which the CLI lists first: the master is only ever sent ids.
//!
//! The commands that change keys need a confirmation. With `--yes` the request is sent at once
//! (an accept of a glob: once the keys are listed, as the ids of those it matches). Without
//! it, when stdin is a terminal, the keys are listed first, the ones concerned are shown with
//! their fingerprints, and the request is sent only after a "y". An accept then names exactly
//! the keys shown (`accept --all` sends their ids, so a key that arrived meanwhile is not
//! accepted; one key shown without `--fingerprint` is accepted only with the fingerprint
//! shown); a reject or delete sends its ids and globs as given (one request, one transaction on
//! the master, however many keys). Without `--yes` and without a terminal nothing is sent:
//! scripts must say `--yes`.
//!
//! `accept ID --fingerprint FP` is how an operator who holds a minion's fingerprint always lets
//! that minion in: the key with it is chosen among every key of the id (also one made denied
//! because another key, maybe a squatter's, came first), the others become denied, and when no
//! key has it yet the id is preaccepted for it.
//!
//! The master answers a refusal (an id without a key in the right state, a fingerprint that
//! does not match) with `error`; its message is printed and the exit code is 1.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::{self, BufRead, Write};
use std::path::Path;

use brine_crypto::Fingerprint;
use brine_proto::control::{
    no_key_with_fingerprint, ControlError, ControlEvent, ControlRequest, KeyCommand, KeyInfo,
    KeySelection, KeyState, ACCEPTABLE, REJECTABLE,
};
use brine_proto::MinionId;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{CommandFactory, Parser, Subcommand};
use serde::Serialize;
use tokio::time::Instant;

use crate::client::{Connection, ANSWER_TIMEOUT};
use crate::error::{event_name, CommandError};
use crate::exit;
use crate::output::{color_wanted, json_pretty, OutputFormat};
use crate::MasterOptions;

/// Manage the minion keys the master knows, the way `salt-key` does: list them with their
/// fingerprints, accept, reject or delete them, with a subcommand or with salt-key's flags
/// (`brine-key -L`, `brine-key -a 'web*' -y`).
///
/// Compare a key's fingerprint with what `brine-minion --print-fingerprint` shows on the
/// minion's host before accepting it, or let the master compare: accept ID --fingerprint FP.
#[derive(Debug, Parser)]
#[command(name = "brine-key", version, after_help = after_help())]
pub struct Cli {
    #[command(flatten)]
    pub master: MasterOptions,

    #[command(subcommand)]
    pub command: Command,
}

/// What to do with the keys.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List every minion key by state (accepted, denied, unaccepted, rejected) with its
    /// fingerprint
    List {
        /// Only keys in this state (accepted, denied, pending, rejected, preaccepted); may be
        /// repeated
        #[arg(long = "state", value_name = "STATE", value_parser = parse_state)]
        states: Vec<KeyState>,
    },

    /// Accept pending (or rejected) keys: their minions may connect and receive jobs
    Accept {
        /// Minion ids (the id's pending or rejected key) or globs (`web*`: the pending keys
        /// they match, as `salt-key -a`)
        #[arg(value_name = "ID", required_unless_present = "all", value_parser = parse_id_pattern)]
        ids: Vec<String>,

        /// Accept every pending key
        #[arg(short = 'A', long, conflicts_with = "ids")]
        all: bool,

        /// Accept the key with exactly this fingerprint (what `brine-minion
        /// --print-fingerprint` prints). For one ID it chooses among all the id's keys, denied
        /// ones too, and the id's other keys become denied. With several IDs or --all, every
        /// key must have it
        #[arg(long, value_name = "FP", value_parser = parse_fingerprint)]
        fingerprint: Option<String>,

        /// When no key of the ID has the fingerprint yet: accept the key with it when the
        /// minion presents it, and deny the id's other keys
        #[arg(long, requires = "fingerprint", conflicts_with = "all")]
        preaccept: bool,

        /// Do not ask for confirmation (required when stdin is not a terminal)
        #[arg(short = 'y', long)]
        yes: bool,
    },

    /// Reject keys: pending ones are refused, accepted ones cut off (no job expects their
    /// minions any more and the group key changes)
    Reject {
        /// Minion ids or globs (`web*`): their pending and accepted keys
        #[arg(value_name = "ID", required_unless_present = "all", value_parser = parse_id_pattern)]
        ids: Vec<String>,

        /// Every pending key, as `salt-key -R` (with --state, every key in those states)
        #[arg(short = 'R', long, conflicts_with = "ids")]
        all: bool,

        /// Only keys in this state (pending, accepted); may be repeated
        #[arg(long = "state", value_name = "STATE", value_parser = parse_state)]
        states: Vec<KeyState>,

        /// Do not ask for confirmation (required when stdin is not a terminal)
        #[arg(short = 'y', long)]
        yes: bool,
    },

    /// Forget keys (a running minion comes back as unaccepted; an accepted key's minion is cut
    /// off and the group key changes)
    Delete {
        /// Minion ids or globs (`web*`): all their keys
        #[arg(value_name = "ID", required_unless_present = "all", value_parser = parse_id_pattern)]
        ids: Vec<String>,

        /// Every key, as `salt-key -D` (with --state, every key in those states: `delete
        /// --all --state pending` clears a flood of unaccepted keys)
        #[arg(short = 'D', long, conflicts_with = "ids")]
        all: bool,

        /// Only keys in this state (accepted, denied, pending, rejected, preaccepted); may be
        /// repeated
        #[arg(long = "state", value_name = "STATE", value_parser = parse_state)]
        states: Vec<KeyState>,

        /// Do not ask for confirmation (required when stdin is not a terminal)
        #[arg(short = 'y', long)]
        yes: bool,
    },

    /// Show fingerprints: the master's and every minion key's, or the keys of some minions
    Finger {
        /// Only the keys of these minion ids or globs (`web*`)
        #[arg(value_name = "ID", value_parser = parse_id_pattern)]
        ids: Vec<String>,
    },

    /// Print the master's fingerprint alone: what minions set as `master_fingerprint`
    MasterFinger,
}

/// A fingerprint as the CLI accepts it (the grammar of [`Fingerprint`]: SHA-256 as 32
/// colon-separated hex pairs, how brine prints it, or 64 hex digits), in its canonical form.
/// The master compares; this catches typos early.
pub fn parse_fingerprint(text: &str) -> Result<String, String> {
    text.parse::<Fingerprint>()
        .map(|fp| fp.to_string())
        .map_err(|e| {
            format!("{e}, as `brine-key list` and `brine-minion --print-fingerprint` print it")
        })
}

/// An id or a glob on ids, checked as the master checks it.
fn parse_id_pattern(text: &str) -> Result<String, String> {
    brine_proto::control::check_id_pattern(text).map(|()| text.to_owned())
}

/// A key state as `--state` takes it: the names `json` output uses.
fn parse_state(text: &str) -> Result<KeyState, String> {
    KeyState::from_name(text).ok_or_else(|| {
        let names: Vec<&str> = KeyState::ALL.iter().map(|s| s.name()).collect();
        format!("a key state is one of {}", names.join(", "))
    })
}

/// One of `salt-key`'s flags, and the subcommand it stands for.
struct SaltFlag {
    letter: char,
    /// `salt-key`'s long name, which `brine-key` does not take: its error points here.
    long: &'static str,
    takes: Takes,
    /// The subcommand and its flags; the value follows (ids after `--`, a state as `--state`).
    words: &'static [&'static str],
}

/// What a `salt-key` flag's value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Takes {
    Nothing,
    /// Minion ids or globs, several separated by commas (`-a web1,db1`), as salt-key takes them.
    Ids,
    /// A key state, in one of the words of [`SALT_STATES`].
    State,
}

/// The `salt-key` flags `brine-key` takes, beside `-y` (`--yes`). As with salt-key, `-A` and
/// `-R` concern the pending keys, a glob given to `-a` the pending keys it matches, and `-r`
/// rejects pending keys only (`reject ID` cuts off an accepted one).
static SALT_FLAGS: [SaltFlag; 10] = [
    SaltFlag {
        letter: 'L',
        long: "list-all",
        takes: Takes::Nothing,
        words: &["list"],
    },
    SaltFlag {
        letter: 'l',
        long: "list",
        takes: Takes::State,
        words: &["list"],
    },
    SaltFlag {
        letter: 'a',
        long: "accept",
        takes: Takes::Ids,
        words: &["accept"],
    },
    SaltFlag {
        letter: 'A',
        long: "accept-all",
        takes: Takes::Nothing,
        words: &["accept", "--all"],
    },
    SaltFlag {
        letter: 'r',
        long: "reject",
        takes: Takes::Ids,
        words: &["reject", "--state", "pending"],
    },
    SaltFlag {
        letter: 'R',
        long: "reject-all",
        takes: Takes::Nothing,
        words: &["reject", "--all"],
    },
    SaltFlag {
        letter: 'd',
        long: "delete",
        takes: Takes::Ids,
        words: &["delete"],
    },
    SaltFlag {
        letter: 'D',
        long: "delete-all",
        takes: Takes::Nothing,
        words: &["delete", "--all"],
    },
    SaltFlag {
        letter: 'f',
        long: "finger",
        takes: Takes::Ids,
        words: &["finger"],
    },
    SaltFlag {
        letter: 'F',
        long: "finger-all",
        takes: Takes::Nothing,
        words: &["finger"],
    },
];

/// The words `-l` takes for key states: salt-key's and brine's names (`all`: every state).
/// salt-key's `pre` is its `minions_pre` directory, the pending keys, not brine's preaccepted.
const SALT_STATES: [(&str, Option<KeyState>); 12] = [
    ("acc", Some(KeyState::Accepted)),
    ("accepted", Some(KeyState::Accepted)),
    ("un", Some(KeyState::Pending)),
    ("unaccepted", Some(KeyState::Pending)),
    ("pre", Some(KeyState::Pending)),
    ("pending", Some(KeyState::Pending)),
    ("rej", Some(KeyState::Rejected)),
    ("rejected", Some(KeyState::Rejected)),
    ("den", Some(KeyState::Denied)),
    ("denied", Some(KeyState::Denied)),
    ("preaccepted", Some(KeyState::Preaccepted)),
    ("all", None),
];

impl SaltFlag {
    fn of(letter: char) -> Option<&'static SaltFlag> {
        SALT_FLAGS.iter().find(|f| f.letter == letter)
    }

    /// `-a ID`.
    fn short_form(&self) -> String {
        match self.takes.placeholder() {
            Some(value) => format!("-{} {value}", self.letter),
            None => format!("-{}", self.letter),
        }
    }

    /// `accept ID`: the subcommand it stands for.
    fn subcommand_form(&self) -> String {
        let words = self.words.join(" ");
        match self.takes {
            Takes::Nothing => words,
            Takes::Ids => format!("{words} ID"),
            Takes::State => format!("{words} --state STATE"),
        }
    }
}

impl Takes {
    fn placeholder(self) -> Option<&'static str> {
        match self {
            Takes::Nothing => None,
            Takes::Ids => Some("ID"),
            Takes::State => Some("STATE"),
        }
    }

    /// What the value is, for messages.
    fn what(self) -> String {
        match self {
            Takes::Nothing => String::new(),
            Takes::Ids => {
                "a minion id or glob (`web1`, `'web*'`, or several: `web1,db1`)".to_owned()
            }
            Takes::State => format!("a key state, one of {}", salt_state_names()),
        }
    }
}

/// `acc, accepted, un, ...`: the words `-l` takes.
fn salt_state_names() -> String {
    let names: Vec<&str> = SALT_STATES.iter().map(|(name, _)| *name).collect();
    names.join(", ")
}

impl Cli {
    /// Parses a whole `brine-key` command line, in subcommand form or with `salt-key`'s flags
    /// (see [`subcommand_form`]); an unknown flag's error names both forms.
    pub fn parse_args<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        let args = subcommand_form(args.into_iter().map(Into::into).collect())?;
        Cli::try_parse_from(args).map_err(with_tip)
    }
}

/// A `brine-key` command line (the whole argv) in subcommand form: `salt-key`'s flags
/// (`SALT_FLAGS`, clustered as salt-key allows: `-Ay`, `-aweb1`) become the subcommand they
/// stand for, `-a 'web*' -y` → `accept --yes -- 'web*'`, and the master's flags (`--out`,
/// `--socket`) stay as they are. A command line with a subcommand is left to clap. Refused: a
/// salt-key flag beside a subcommand, two actions, a missing or bad value, `-y` alone.
pub fn subcommand_form(args: Vec<OsString>) -> Result<Vec<OsString>, clap::Error> {
    let mut cli = Cli::command();
    // The master's flags that take a value: that value is no subcommand.
    let valued: Vec<String> = cli
        .get_arguments()
        .filter(|a| a.get_action().takes_values())
        .flat_map(|a| a.get_long_and_visible_aliases().unwrap_or_default())
        .map(|long| format!("--{long}"))
        .collect();
    let mut args = args.into_iter();
    let mut kept: Vec<OsString> = args.next().into_iter().collect();
    let mut flags = SaltFlags::default();
    while let Some(arg) = args.next() {
        let word = arg.to_string_lossy().into_owned();
        let letters = word
            .strip_prefix('-')
            .filter(|rest| !rest.is_empty() && !rest.starts_with('-'));
        if valued.contains(&word) {
            kept.push(arg);
            kept.extend(args.next());
        } else if word == "--yes" {
            flags.first.get_or_insert(word);
            flags.yes = true;
        } else if let Some(letters) = letters.filter(|l| l.starts_with(SaltFlags::is_letter)) {
            flags.read(&mut cli, letters, &mut args)?;
        } else if word.starts_with('-') && word != "-" && word != "--" {
            // -h, -V, --out=json, --help; and flags that clap refuses (with a tip).
            kept.push(arg);
        } else if let Some(flag) = &flags.first {
            let message = if cli.find_subcommand(&word).is_some() {
                format!(
                    "salt-key's flag {flag} and the subcommand {word} in one command line: give \
                     salt-key's flags (brine-key -a 'web*' -y) or a subcommand (brine-key accept \
                     'web*' --yes), not both"
                )
            } else {
                format!(
                    "unexpected {word}: salt-key's flags take one value each (several ids: -a \
                     web1,db1)"
                )
            };
            return Err(cli.error(ErrorKind::ArgumentConflict, message));
        } else {
            // A subcommand: what follows is its own.
            kept.push(arg);
            kept.extend(args);
            return Ok(kept);
        }
    }
    kept.extend(flags.subcommand(&mut cli)?);
    Ok(kept)
}

/// The `salt-key` flags of a command line, as [`subcommand_form`] reads them.
#[derive(Default)]
struct SaltFlags {
    /// The first one, for messages.
    first: Option<String>,
    /// The action, with its value (empty for one that takes none).
    action: Option<(&'static SaltFlag, String)>,
    /// `-y`.
    yes: bool,
}

impl SaltFlags {
    fn is_letter(letter: char) -> bool {
        letter == 'y' || SaltFlag::of(letter).is_some()
    }

    /// Reads one word of letters (`-Ay`, `-a`, `-aweb1`); the value of a flag that takes one
    /// is the rest of the word, or else the next word of `args`.
    fn read(
        &mut self,
        cli: &mut clap::Command,
        letters: &str,
        args: &mut impl Iterator<Item = OsString>,
    ) -> Result<(), clap::Error> {
        for (at, letter) in letters.char_indices() {
            self.first.get_or_insert_with(|| format!("-{letter}"));
            if letter == 'y' {
                self.yes = true;
                continue;
            }
            let Some(flag) = SaltFlag::of(letter) else {
                return Err(unknown_flag(cli, &format!("-{letter}")));
            };
            if let Some((other, _)) = self.action {
                return Err(cli.error(
                    ErrorKind::ArgumentConflict,
                    format!(
                        "-{} and -{letter} in one command line: salt-key's flags do one thing \
                         at a time",
                        other.letter
                    ),
                ));
            }
            if flag.takes == Takes::Nothing {
                self.action = Some((flag, String::new()));
                continue;
            }
            let value = match &letters[at + letter.len_utf8()..] {
                "" => args.next().map(|a| a.to_string_lossy().into_owned()),
                rest => Some(rest.to_owned()),
            };
            match value {
                Some(value) if !value.starts_with('-') => self.action = Some((flag, value)),
                _ => {
                    return Err(cli.error(
                        ErrorKind::InvalidValue,
                        format!("-{letter} takes {}", flag.takes.what()),
                    ))
                }
            }
            break;
        }
        Ok(())
    }

    /// The words of the subcommand the flags stand for (none without flags: clap then says
    /// what is missing).
    fn subcommand(self, cli: &mut clap::Command) -> Result<Vec<OsString>, clap::Error> {
        let Some((flag, value)) = self.action else {
            return match self.first {
                Some(first) => Err(cli.error(
                    ErrorKind::MissingRequiredArgument,
                    format!("{first} confirms a change: give it with -a, -A, -r, -R, -d or -D"),
                )),
                None => Ok(Vec::new()),
            };
        };
        let mut words: Vec<OsString> = flag.words.iter().map(OsString::from).collect();
        // salt-key takes -y with any action; only a change has a question for it to answer.
        let confirms = cli
            .find_subcommand(flag.words[0])
            .is_some_and(|sub| sub.get_arguments().any(|a| a.get_id() == "yes"));
        if self.yes && confirms {
            words.push("--yes".into());
        }
        match flag.takes {
            Takes::Nothing => {}
            Takes::Ids => {
                words.push("--".into());
                words.extend(value.split(',').map(OsString::from));
            }
            Takes::State => match SALT_STATES.iter().find(|(name, _)| *name == value) {
                Some((_, Some(state))) => {
                    words.extend(["--state", state.name()].map(OsString::from))
                }
                Some((_, None)) => {}
                None => {
                    return Err(cli.error(
                        ErrorKind::InvalidValue,
                        format!("-l {value}: a key state is one of {}", salt_state_names()),
                    ))
                }
            },
        }
        Ok(words)
    }
}

/// An unknown flag's error as clap makes it, with [`with_tip`]'s tip.
fn unknown_flag(cli: &clap::Command, flag: &str) -> clap::Error {
    let mut err = clap::Error::new(ErrorKind::UnknownArgument).with_cmd(cli);
    err.insert(
        ContextKind::InvalidArg,
        ContextValue::String(flag.to_owned()),
    );
    with_tip(err)
}

/// An unknown flag's or subcommand's error, with a tip that points at `brine-key`'s two forms.
fn with_tip(mut err: clap::Error) -> clap::Error {
    let word = match (
        err.kind(),
        err.get(ContextKind::InvalidArg)
            .or(err.get(ContextKind::InvalidSubcommand)),
    ) {
        (
            ErrorKind::UnknownArgument | ErrorKind::InvalidSubcommand,
            Some(ContextValue::String(word)),
        ) => word.clone(),
        _ => return err,
    };
    let mut tips = match err.get(ContextKind::Suggested) {
        Some(ContextValue::StyledStrs(tips)) => tips.clone(),
        _ => Vec::new(),
    };
    tips.push(tip(&word).into());
    err.insert(ContextKind::Suggested, ContextValue::StyledStrs(tips));
    err
}

/// The tip for an unknown `word`: for salt-key's long flags (`--accept`) the short flag and the
/// subcommand that stand for them; for one of its short flags beside a subcommand (`list -L`),
/// that a command line has one form; else both forms.
fn tip(word: &str) -> String {
    let long = word
        .strip_prefix("--")
        .map(|rest| rest.split('=').next().unwrap_or(rest));
    let letter = match word.strip_prefix('-').map(|rest| rest.chars()) {
        Some(mut chars) => chars.next().filter(|_| chars.next().is_none()),
        None => None,
    };
    let flag = SALT_FLAGS
        .iter()
        .find(|f| long == Some(f.long) || letter == Some(f.letter));
    match flag {
        Some(flag) if long.is_some() => format!(
            "salt-key's --{} is `brine-key {}` here, or the subcommand `brine-key {}`",
            flag.long,
            flag.short_form(),
            flag.subcommand_form()
        ),
        Some(flag) => format!(
            "{} stands for the subcommand `{}`: give salt-key's flags or a subcommand, not both",
            flag.short_form(),
            flag.subcommand_form()
        ),
        None => {
            let subcommands: Vec<String> = Cli::command()
                .get_subcommands()
                .map(|s| s.get_name().to_owned())
                .collect();
            let flags: Vec<String> = SALT_FLAGS.iter().map(SaltFlag::short_form).collect();
            format!(
                "brine-key takes a subcommand ({}) or salt-key's flags ({}, -y), not both: \
                 see brine-key --help",
                subcommands.join(", "),
                flags.join(", ")
            )
        }
    }
}

/// The end of `brine-key --help`: salt-key's flags (from `SALT_FLAGS`), then the
/// confirmation and the exit codes.
fn after_help() -> String {
    let mut text = "Salt-key's flags, each instead of the subcommand shown:\n".to_owned();
    for flag in &SALT_FLAGS {
        let _ = writeln!(
            text,
            "  {:<9} {}",
            flag.short_form(),
            flag.subcommand_form()
        );
    }
    let _ = writeln!(text, "  {:<9} --yes", "-y");
    let _ = writeln!(
        text,
        "  ID: a minion id, a glob (`web*`), or several separated by commas (web1,db1)"
    );
    // The state words, wrapped.
    let mut line = "  STATE:".to_owned();
    for (name, _) in &SALT_STATES {
        if line.len() + name.len() > 88 {
            let _ = writeln!(text, "{line}");
            line = "        ".to_owned();
        }
        let _ = write!(line, " {name},");
    }
    line.pop();
    let _ = writeln!(
        text,
        "{line}\n  (salt-key's pre is the pending keys; all is every state)\n"
    );
    text + exit::BRINE_KEY_HELP
}

impl Command {
    /// Whether the command changes keys (and so needs a confirmation).
    pub fn changes_keys(&self) -> bool {
        matches!(
            self,
            Command::Accept { .. } | Command::Reject { .. } | Command::Delete { .. }
        )
    }

    /// Whether `--yes` was given.
    pub fn confirmed(&self) -> bool {
        match self {
            Command::Accept { yes, .. }
            | Command::Reject { yes, .. }
            | Command::Delete { yes, .. } => *yes,
            _ => false,
        }
    }

    /// The request this subcommand sends without a confirmation step (`--yes`, or a command
    /// that changes nothing); `None` when it depends on the keys there are: an accept of a
    /// glob is sent as the ids of the pending keys it matches (see [`plan`]).
    pub fn request(&self) -> Option<KeyCommand> {
        let request = match self {
            Command::List { .. } | Command::Finger { .. } | Command::MasterFinger => {
                KeyCommand::List {}
            }
            Command::Accept {
                ids,
                fingerprint,
                preaccept,
                ..
            } => KeyCommand::Accept {
                ids: ids.iter().map(|p| exact_id(p)).collect::<Option<_>>()?,
                fingerprint: fingerprint.clone(),
                preaccept: *preaccept,
            },
            Command::Reject {
                ids, all, states, ..
            } => KeyCommand::Reject(reject_selection(ids, *all, states)),
            Command::Delete {
                ids, all, states, ..
            } => KeyCommand::Delete(selection(ids, *all, states.clone())),
        };
        Some(request)
    }
}

/// An accept's pattern that is a minion id (it names the id's pending or rejected key); any
/// other is a glob (it names the pending keys it matches).
fn exact_id(pattern: &str) -> Option<MinionId> {
    MinionId::new(pattern).ok()
}

/// The keys a reject names: as [`selection`], but `--all` alone is every pending key, as
/// `salt-key -R`.
fn reject_selection(ids: &[String], all: bool, states: &[KeyState]) -> KeySelection {
    let states = match (all, states.is_empty()) {
        (true, true) => vec![KeyState::Pending],
        _ => states.to_vec(),
    };
    selection(ids, all, states)
}

/// The keys a reject or delete names: `--all` is every id.
fn selection(ids: &[String], all: bool, states: Vec<KeyState>) -> KeySelection {
    KeySelection {
        ids: if all {
            vec!["*".to_owned()]
        } else {
            ids.to_vec()
        },
        states,
    }
}

/// What a confirmed change concerns: the keys to show, and the request that changes them.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The keys concerned as they are now (empty only for `accept --all` with none pending);
    /// a preaccept shows the fingerprint awaited as a `preaccepted` key.
    pub keys: Vec<KeyInfo>,
    /// Keys of the id that a choice by fingerprint makes denied, as they are now.
    pub displaced: Vec<KeyInfo>,
    pub request: KeyCommand,
    /// "accepted", "rejected", "deleted".
    pub verb: &'static str,
}

/// The plan for a changing command given every key the master has; a command that concerns
/// no key is refused here as the master would refuse it.
///
/// An accept names exactly the keys shown (one key shown is accepted only with the
/// fingerprint shown). A reject or delete sends its patterns: a key that arrives between the
/// question and the answer may be rejected or deleted too, never let in.
pub fn plan(command: &Command, keys: &[KeyInfo]) -> Result<Plan, CommandError> {
    match command {
        Command::Accept {
            ids,
            fingerprint: Some(fingerprint),
            preaccept,
            ..
        } if ids.len() == 1 && exact_id(&ids[0]).is_some() => {
            let id = exact_id(&ids[0]).expect("checked by the guard");
            choose_by_fingerprint(&id, fingerprint, *preaccept, keys)
        }
        Command::Accept {
            ids,
            all,
            fingerprint,
            preaccept,
            ..
        } => {
            let shown: Vec<KeyInfo> = if *all {
                keys.iter()
                    .filter(|k| k.state == KeyState::Pending)
                    .cloned()
                    .collect()
            } else {
                let mut shown = Vec::new();
                for pattern in ids {
                    let applicable: &[KeyState] = match exact_id(pattern) {
                        Some(_) => &ACCEPTABLE,
                        None if *preaccept => {
                            return Err(CommandError::Usage(format!(
                                "--preaccept takes minion ids, not a glob ({pattern})"
                            )))
                        }
                        None => &[KeyState::Pending],
                    };
                    let one = KeySelection {
                        ids: vec![pattern.clone()],
                        states: Vec::new(),
                    };
                    for key in matching(keys, &one, applicable)? {
                        if !shown.contains(&key) {
                            shown.push(key);
                        }
                    }
                }
                shown
            };
            // Pin what the operator saw: one key shown is accepted only with its fingerprint.
            let fingerprint = match (fingerprint, shown.as_slice()) {
                (Some(fp), _) => Some(fp.clone()),
                (None, [only]) => Some(only.fingerprint.clone()),
                (None, _) => None,
            };
            Ok(Plan {
                request: KeyCommand::Accept {
                    ids: shown.iter().map(|k| k.id.clone()).collect(),
                    fingerprint,
                    preaccept: false,
                },
                keys: shown,
                displaced: Vec::new(),
                verb: "accepted",
            })
        }
        Command::Reject {
            ids, all, states, ..
        } => {
            let selection = reject_selection(ids, *all, states);
            Ok(Plan {
                keys: matching(keys, &selection, &REJECTABLE)?,
                displaced: Vec::new(),
                request: KeyCommand::Reject(selection),
                verb: "rejected",
            })
        }
        Command::Delete {
            ids, all, states, ..
        } => {
            let selection = selection(ids, *all, states.clone());
            Ok(Plan {
                keys: matching(keys, &selection, &KeyState::ALL)?,
                displaced: Vec::new(),
                request: KeyCommand::Delete(selection),
                verb: "deleted",
            })
        }
        _ => Err(CommandError::Usage(
            "this command changes no key".to_owned(),
        )),
    }
}

/// The plan of `accept ID --fingerprint FP`: the fingerprint chooses among every key of the
/// id, and the id's other keys are displaced; with `preaccept`, a fingerprint no key has yet
/// is awaited.
fn choose_by_fingerprint(
    id: &MinionId,
    fingerprint: &str,
    preaccept: bool,
    keys: &[KeyInfo],
) -> Result<Plan, CommandError> {
    let wanted: Fingerprint = fingerprint
        .parse()
        .map_err(|e| CommandError::Usage(format!("--fingerprint: {e}")))?;
    let same = |k: &KeyInfo| k.fingerprint.parse::<Fingerprint>().ok().as_ref() == Some(&wanted);
    let all: Vec<&KeyInfo> = keys.iter().filter(|k| &k.id == id).collect();
    let chosen = match all.iter().find(|k| same(k)) {
        Some(key) => (*key).clone(),
        None if preaccept => KeyInfo {
            id: id.clone(),
            state: KeyState::Preaccepted,
            fingerprint: wanted.to_string(),
        },
        None => {
            let current = all.iter().copied().find(|k| k.state != KeyState::Denied);
            return Err(CommandError::Refused(no_key_with_fingerprint(
                id,
                current,
                &wanted.to_string(),
            )));
        }
    };
    let displaced = all
        .into_iter()
        .filter(|k| !same(k) && k.state != KeyState::Denied)
        .cloned()
        .collect();
    Ok(Plan {
        keys: vec![chosen],
        displaced,
        request: KeyCommand::Accept {
            ids: vec![id.clone()],
            fingerprint: Some(fingerprint.to_owned()),
            preaccept,
        },
        verb: "accepted",
    })
}

/// The keys a selection names, among those in `applicable` states; none is refused as the
/// master refuses it (`web* has no pending key`).
fn matching(
    keys: &[KeyInfo],
    selection: &KeySelection,
    applicable: &[KeyState],
) -> Result<Vec<KeyInfo>, CommandError> {
    let matcher = selection
        .compile(applicable)
        .map_err(CommandError::Refused)?;
    let chosen: Vec<KeyInfo> = keys
        .iter()
        .filter(|k| matcher.matches(k))
        .cloned()
        .collect();
    if chosen.is_empty() {
        return Err(CommandError::Refused(selection.nothing_matched(applicable)));
    }
    Ok(chosen)
}

/// The question asked before a change.
pub fn question(plan: &Plan) -> String {
    let mut text = format!(
        "The following keys are going to be {}:\n{}",
        plan.verb,
        render_groups(&plan.keys, &[], false)
    );
    if !plan.displaced.is_empty() {
        let _ = write!(
            text,
            "and these other keys of the id are going to be denied:\n{}",
            render_groups(&plan.displaced, &[], false)
        );
    }
    text + "Proceed? [y/N] "
}

/// Whether an answer to "Proceed? [y/N]" is yes.
pub fn is_yes(answer: &str) -> bool {
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// Asks on the terminal: the question on stderr, one line from stdin (end of input is no).
pub fn ask_on_terminal(question: &str) -> io::Result<bool> {
    let mut err = io::stderr().lock();
    err.write_all(question.as_bytes())?;
    err.flush()?;
    let mut line = String::new();
    let n = io::stdin().lock().read_line(&mut line)?;
    if n == 0 {
        err.write_all(b"\n")?;
    }
    Ok(is_yes(&line))
}

/// Asks the operator a yes/no question.
pub type Ask<'a> = dyn FnMut(&str) -> io::Result<bool> + 'a;

/// Runs the command: results on `out`. `ask` is how to ask for a confirmation, `None` when
/// nobody can answer (stdin is not a terminal). Gives the exit code.
pub async fn run(
    cli: &Cli,
    out: &mut dyn Write,
    stdout_is_terminal: bool,
    ask: Option<&mut Ask<'_>>,
) -> Result<u8, CommandError> {
    let color = cli.master.out == OutputFormat::Human && color_wanted(stdout_is_terminal);
    let text = match &cli.command {
        Command::List { states } => {
            let (master, keys) = send(&cli.master.socket, KeyCommand::List {}).await?;
            render_list(&master, &keys, states, cli.master.out, color)
        }
        Command::Finger { ids } => {
            let (master, mut keys) = send(&cli.master.socket, KeyCommand::List {}).await?;
            if !ids.is_empty() {
                let selection = KeySelection {
                    ids: ids.clone(),
                    states: Vec::new(),
                };
                keys = matching(&keys, &selection, &KeyState::ALL)?;
            }
            render_finger(&master, ids.is_empty(), &keys, cli.master.out, color)
        }
        Command::MasterFinger => {
            let (master, _) = send(&cli.master.socket, KeyCommand::List {}).await?;
            render_master_finger(&master, cli.master.out)
        }
        command => {
            let ask = match (command.confirmed(), ask) {
                (true, _) => None,
                (false, Some(ask)) => Some(ask),
                (false, None) => {
                    return Err(CommandError::Usage(
                        "stdin is not a terminal, so nobody can confirm: \
                         pass --yes to change keys without a question"
                            .to_owned(),
                    ))
                }
            };
            let (request, verb) = match (command.request(), ask) {
                (Some(request), None) => (request, verb_of(command)),
                (_, ask) => {
                    // The keys first: to show them, or to know which ids a glob names.
                    let (_, keys) = send(&cli.master.socket, KeyCommand::List {}).await?;
                    let plan = plan(command, &keys)?;
                    if plan.keys.is_empty() {
                        let text = render_changed(plan.verb, &[], cli.master.out, color);
                        write(out, &text)?;
                        return Ok(exit::SUCCESS);
                    }
                    if let Some(ask) = ask {
                        let yes = ask(&question(&plan)).map_err(|e| {
                            CommandError::Usage(format!(
                                "cannot ask for confirmation ({}): pass --yes",
                                crate::client::describe_io(&e)
                            ))
                        })?;
                        if !yes {
                            return Err(CommandError::Declined);
                        }
                    }
                    (plan.request, plan.verb)
                }
            };
            let (_, changed) = send(&cli.master.socket, request).await?;
            render_changed(verb, &changed, cli.master.out, color)
        }
    };
    write(out, &text)?;
    Ok(exit::SUCCESS)
}

fn verb_of(command: &Command) -> &'static str {
    match command {
        Command::Accept { .. } => "accepted",
        Command::Reject { .. } => "rejected",
        _ => "deleted",
    }
}

fn write(out: &mut dyn Write, text: &str) -> Result<(), CommandError> {
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(CommandError::Output)
}

/// Sends one key command; gives the master's fingerprint and the keys of the answer.
pub async fn send(
    socket: &Path,
    command: KeyCommand,
) -> Result<(String, Vec<KeyInfo>), CommandError> {
    let mut conn = Connection::connect(socket).await?;
    conn.send(&ControlRequest::Keys(command)).await?;
    match conn.next_event(Instant::now() + ANSWER_TIMEOUT).await? {
        Some(ControlEvent::Keys {
            master_fingerprint,
            keys,
        }) => Ok((master_fingerprint, keys)),
        Some(ControlEvent::Error { code, message }) => Err(refusal(code, message)),
        Some(other) => Err(CommandError::Unexpected(event_name(&other))),
        None => Err(CommandError::NoAnswer),
    }
}

/// A master error as `brine-key` reports it: a refusal of the command itself (unknown id,
/// wrong fingerprint) is exit 1 with the master's words; the others keep their usual codes.
pub fn refusal(code: ControlError, message: String) -> CommandError {
    match code {
        ControlError::NotFound | ControlError::BadRequest => CommandError::Refused(message),
        code => CommandError::Master { code, message },
    }
}

/// The states in `salt-key`'s order, with its headings and colours; then brine's own
/// preaccepted fingerprints, whose heading is shown only when there are some (so that `list`
/// prints what `salt-key -L` does).
const GROUPS: [(KeyState, &str, &str); 5] = [
    (KeyState::Accepted, "Accepted Keys:", "\x1b[0;32m"),
    (KeyState::Denied, "Denied Keys:", "\x1b[0;35m"),
    (KeyState::Pending, "Unaccepted Keys:", "\x1b[0;31m"),
    (KeyState::Rejected, "Rejected Keys:", "\x1b[0;34m"),
    (KeyState::Preaccepted, "Preaccepted Keys:", "\x1b[0;36m"),
];

const RESET: &str = "\x1b[0m";

/// How keys are sorted: by id, then state in `salt-key`'s order, then fingerprint.
fn order(key: &KeyInfo) -> (&str, usize, &str) {
    let rank = GROUPS
        .iter()
        .position(|g| g.0 == key.state)
        .unwrap_or(GROUPS.len());
    (key.id.as_str(), rank, &key.fingerprint)
}

fn paint(color: bool, code: &str, text: &str) -> String {
    if color {
        format!("{code}{text}{RESET}")
    } else {
        text.to_owned()
    }
}

/// The headings `list` shows even when they have no key, as `salt-key -L` does.
const SALT_HEADINGS: [KeyState; 4] = [
    KeyState::Accepted,
    KeyState::Denied,
    KeyState::Pending,
    KeyState::Rejected,
];

/// Keys under `salt-key` headings, one `id  fingerprint` line each (ids padded to one
/// width). `headings`: states whose heading is shown even without keys.
pub fn render_groups(keys: &[KeyInfo], headings: &[KeyState], color: bool) -> String {
    let width = keys.iter().map(|k| k.id.as_str().len()).max().unwrap_or(0);
    let mut out = String::new();
    for (state, heading, code) in GROUPS {
        let mut group: Vec<&KeyInfo> = keys.iter().filter(|k| k.state == state).collect();
        if group.is_empty() && !headings.contains(&state) {
            continue;
        }
        group.sort_by(|a, b| (&a.id, &a.fingerprint).cmp(&(&b.id, &b.fingerprint)));
        let _ = writeln!(out, "{}", paint(color, code, heading));
        for key in group {
            let id = format!("{:width$}", key.id.as_str());
            let _ = writeln!(out, "{}  {}", paint(color, code, &id), key.fingerprint);
        }
    }
    out
}

/// One key in `json`/`yaml` output.
#[derive(Debug, Serialize)]
struct KeyRecord<'a> {
    id: &'a str,
    fingerprint: &'a str,
    /// For `delete`: the state the key had; for `accept`, when one is only preaccepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<&'static str>,
}

/// `list` and `finger` in `json`/`yaml`: a list per state (`list --state`: those states' only).
#[derive(Debug, Serialize)]
struct KeyLists<'a> {
    master_fingerprint: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    accepted: Option<Vec<KeyRecord<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pending: Option<Vec<KeyRecord<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rejected: Option<Vec<KeyRecord<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    denied: Option<Vec<KeyRecord<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    preaccepted: Option<Vec<KeyRecord<'a>>>,
}

fn records(keys: &[KeyInfo], state: Option<KeyState>, with_state: bool) -> Vec<KeyRecord<'_>> {
    let mut chosen: Vec<&KeyInfo> = keys
        .iter()
        .filter(|k| state.is_none_or(|s| k.state == s))
        .collect();
    chosen.sort_by(|a, b| order(a).cmp(&order(b)));
    chosen
        .into_iter()
        .map(|k| KeyRecord {
            id: k.id.as_str(),
            fingerprint: &k.fingerprint,
            state: with_state.then(|| k.state.name()),
        })
        .collect()
}

fn document<T: Serialize>(value: &T, format: OutputFormat) -> String {
    match format {
        OutputFormat::Yaml => {
            serde_norway::to_string(value).expect("key lists always serialize as YAML")
        }
        _ => json_pretty(value),
    }
}

/// The lists of the keys in `states` (every state when empty).
fn lists<'a>(master: &'a str, keys: &'a [KeyInfo], states: &[KeyState]) -> KeyLists<'a> {
    let list = |state: KeyState| {
        (states.is_empty() || states.contains(&state)).then(|| records(keys, Some(state), false))
    };
    KeyLists {
        master_fingerprint: master,
        accepted: list(KeyState::Accepted),
        pending: list(KeyState::Pending),
        rejected: list(KeyState::Rejected),
        denied: list(KeyState::Denied),
        preaccepted: list(KeyState::Preaccepted),
    }
}

/// `list`: the headings of `salt-key -L` with their keys (and preaccepted ones, if any); for
/// scripts a list per state and the master's fingerprint. With `states` (`list --state`,
/// `-l`), only those: their headings, or their lists.
pub fn render_list(
    master: &str,
    keys: &[KeyInfo],
    states: &[KeyState],
    format: OutputFormat,
    color: bool,
) -> String {
    match format {
        OutputFormat::Human if states.is_empty() => render_groups(keys, &SALT_HEADINGS, color),
        OutputFormat::Human => {
            let chosen: Vec<KeyInfo> = keys
                .iter()
                .filter(|k| states.contains(&k.state))
                .cloned()
                .collect();
            render_groups(&chosen, states, color)
        }
        _ => document(&lists(master, keys, states), format),
    }
}

/// `finger`: the master's fingerprint (when `with_master`) and the headings that have keys;
/// for scripts the same document as `list`.
pub fn render_finger(
    master: &str,
    with_master: bool,
    keys: &[KeyInfo],
    format: OutputFormat,
    color: bool,
) -> String {
    match format {
        OutputFormat::Human => {
            let mut out = String::new();
            if with_master {
                let _ = writeln!(out, "{}", paint(color, "\x1b[0;36m", "Master Key:"));
                let _ = writeln!(out, "{master}");
            }
            out + &render_groups(keys, &[], color)
        }
        _ => document(&lists(master, keys, &[]), format),
    }
}

/// `master-finger`: the fingerprint alone on one line; for scripts `{"master_fingerprint"}`.
pub fn render_master_finger(master: &str, format: OutputFormat) -> String {
    #[derive(Serialize)]
    struct Master<'a> {
        master_fingerprint: &'a str,
    }
    match format {
        OutputFormat::Human => format!("{master}\n"),
        _ => document(
            &Master {
                master_fingerprint: master,
            },
            format,
        ),
    }
}

/// The keys a change touched: `Key for minion ID accepted: FP` lines (delete also says which
/// state each key was in); for scripts `{"<verb>": [{"id", "fingerprint"}...]}`.
pub fn render_changed(
    verb: &'static str,
    keys: &[KeyInfo],
    format: OutputFormat,
    color: bool,
) -> String {
    let deleted = verb == "deleted";
    match format {
        OutputFormat::Human => {
            if keys.is_empty() {
                return format!("No key was {verb}.\n");
            }
            let mut sorted: Vec<&KeyInfo> = keys.iter().collect();
            sorted.sort_by(|a, b| order(a).cmp(&order(b)));
            let mut out = String::new();
            for key in sorted {
                let code = GROUPS
                    .iter()
                    .find(|(s, _, _)| *s == key.state)
                    .map_or("", |g| g.2);
                let (what, was) = if key.state == KeyState::Preaccepted && !deleted {
                    (
                        format!("Key for minion {} preaccepted", key.id),
                        " (accepted when the minion presents it)".to_owned(),
                    )
                } else if deleted {
                    (
                        format!("Key for minion {} {verb}", key.id),
                        format!(" (was {})", key.state.name()),
                    )
                } else {
                    (format!("Key for minion {} {verb}", key.id), String::new())
                };
                let _ = writeln!(
                    out,
                    "{}: {}{was}",
                    paint(color && !deleted, code, &what),
                    key.fingerprint
                );
            }
            out
        }
        _ => {
            let mut doc = std::collections::BTreeMap::new();
            // A delete says which state each key was in, an accept which key is only awaited.
            let with_state = deleted || keys.iter().any(|k| k.state == KeyState::Preaccepted);
            doc.insert(verb, records(keys, None, with_state));
            document(&doc, format)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;
    use serde_json::json;

    use super::*;

    const FP_A: &str = "e3:b0:c4:42:98:fc:1c:14:9a:fb:f4:c8:99:6f:b9:24:\
                        27:ae:41:e4:64:9b:93:4c:a4:95:99:1b:78:52:b8:55";
    const FP_B: &str = "00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:\
                        00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff";

    fn parse(words: &[&str]) -> Result<Cli, clap::Error> {
        Cli::parse_args(std::iter::once("brine-key").chain(words.iter().copied()))
    }

    fn id(s: &str) -> MinionId {
        MinionId::new(s).unwrap()
    }

    fn key(minion: &str, state: KeyState, fingerprint: &str) -> KeyInfo {
        KeyInfo {
            id: id(minion),
            state,
            fingerprint: fingerprint.to_owned(),
        }
    }

    fn sample() -> Vec<KeyInfo> {
        vec![
            key("web2", KeyState::Accepted, FP_B),
            key("web1", KeyState::Accepted, FP_A),
            key("web1", KeyState::Denied, FP_B),
            key("db1", KeyState::Pending, FP_A),
            key("old", KeyState::Rejected, FP_B),
        ]
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn subcommands_become_requests() {
        let cli = parse(&["list", "--out", "json"]).unwrap();
        assert_eq!(cli.command.request(), Some(KeyCommand::List {}));
        assert_eq!(cli.master.out, OutputFormat::Json);
        let cli = parse(&["accept", "web1", "web2", "--fingerprint", FP_A, "--yes"]).unwrap();
        assert_eq!(
            cli.command.request(),
            Some(KeyCommand::Accept {
                ids: vec![id("web1"), id("web2")],
                fingerprint: Some(FP_A.into()),
                preaccept: false,
            })
        );
        assert!(cli.command.confirmed() && cli.command.changes_keys());
        let cli = parse(&["accept", "--all"]).unwrap();
        assert_eq!(
            cli.command.request(),
            Some(KeyCommand::Accept {
                ids: vec![],
                fingerprint: None,
                preaccept: false,
            })
        );
        assert!(!cli.command.confirmed());
        let cli = parse(&["reject", "web1", "-y"]).unwrap();
        assert_eq!(
            cli.command.request(),
            Some(KeyCommand::Reject(KeySelection::id(&id("web1"))))
        );
        let cli = parse(&["delete", "web1"]).unwrap();
        assert_eq!(
            cli.command.request(),
            Some(KeyCommand::Delete(KeySelection::id(&id("web1"))))
        );
        for words in [&["finger"][..], &["finger", "web1"], &["master-finger"]] {
            let cli = parse(words).unwrap();
            assert_eq!(cli.command.request(), Some(KeyCommand::List {}));
            assert!(!cli.command.changes_keys());
        }
    }

    #[test]
    fn flags_go_before_or_after_the_subcommand() {
        let cli = parse(&["--out", "yaml", "--socket", "/s", "list"]).unwrap();
        assert_eq!(cli.master.out, OutputFormat::Yaml);
        assert_eq!(cli.master.socket, std::path::PathBuf::from("/s"));
        let cli = parse(&["list", "--socket", "/t"]).unwrap();
        assert_eq!(cli.master.socket, std::path::PathBuf::from("/t"));
    }

    #[test]
    fn usage_errors_are_exit_2() {
        for words in [
            &["accept"][..],
            &["accept", "--all", "web1"],
            &["accept", "../x"],
            &["accept", "web1", "--fingerprint", "ab:cd"],
            &["accept", "web1", "--fingerprint", &FP_A.replace('e', "g")],
            &["reject"],
            &["delete", "a/b"],
            &["reject", "web/1"],
            &["accept", "web1", "--preaccept"],
            &["delete", "--all", "--state", "lost"],
            &["bogus"],
            &[],
        ] {
            let e = parse(words).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{words:?}: {e}");
        }
        let e = parse(&["accept", "web1", "--fingerprint", "nope"]).unwrap_err();
        assert!(e.to_string().contains("32 hex pairs like ab:cd:ef"), "{e}");
    }

    #[test]
    fn fingerprints_are_read_in_either_form_and_made_canonical() {
        assert_eq!(parse_fingerprint(FP_A).unwrap(), FP_A);
        assert_eq!(
            parse_fingerprint(&format!(" {} ", FP_A.to_uppercase())).unwrap(),
            FP_A
        );
        let compact = FP_A.replace(':', "");
        assert_eq!(parse_fingerprint(&compact).unwrap(), FP_A);
        assert!(parse_fingerprint(&compact[1..]).is_err());
        assert!(parse_fingerprint(&FP_A[3..]).is_err());
        assert!(parse_fingerprint("").is_err());
        let err = parse_fingerprint(&format!("{FP_A}:00")).unwrap_err();
        assert!(err.contains("--print-fingerprint"), "{err}");
    }

    #[test]
    fn help_documents_exit_codes_and_every_subcommand() {
        let help = Cli::command().render_long_help().to_string();
        for word in [
            "list",
            "accept",
            "reject",
            "delete",
            "finger",
            "master-finger",
            "BRINE_SOCKET",
            "Exit codes:",
            "  69 ",
            "--yes",
            "Salt-key's flags",
            "  -a ID     accept ID\n",
            "  -l STATE  list --state STATE\n",
            "  -r ID     reject --state pending ID\n",
            "  -y        --yes\n",
            "acc, accepted, un",
        ] {
            assert!(help.contains(word), "{word:?} missing from\n{help}");
        }
    }

    #[test]
    fn list_is_grouped_like_salt_key() {
        let text = render_list(FP_A, &sample(), &[], OutputFormat::Human, false);
        assert_eq!(
            text,
            format!(
                "Accepted Keys:\n\
                 web1  {FP_A}\n\
                 web2  {FP_B}\n\
                 Denied Keys:\n\
                 web1  {FP_B}\n\
                 Unaccepted Keys:\n\
                 db1   {FP_A}\n\
                 Rejected Keys:\n\
                 old   {FP_B}\n"
            )
        );
        let text = render_list(FP_A, &[], &[], OutputFormat::Human, false);
        assert_eq!(
            text,
            "Accepted Keys:\nDenied Keys:\nUnaccepted Keys:\nRejected Keys:\n"
        );
    }

    #[test]
    fn colours_only_when_asked() {
        let text = render_list(FP_A, &sample(), &[], OutputFormat::Human, true);
        assert!(text.contains("\x1b[0;32mAccepted Keys:\x1b[0m"), "{text:?}");
        assert!(text.contains("\x1b[0;31mdb1 \x1b[0m"), "{text:?}");
        assert!(!render_list(FP_A, &sample(), &[], OutputFormat::Human, false).contains('\x1b'));
    }

    #[test]
    fn list_for_scripts_has_a_list_per_state_and_the_master() {
        let text = render_list(FP_B, &sample(), &[], OutputFormat::Json, false);
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            doc,
            json!({
                "master_fingerprint": FP_B,
                "accepted": [{"id": "web1", "fingerprint": FP_A}, {"id": "web2", "fingerprint": FP_B}],
                "pending": [{"id": "db1", "fingerprint": FP_A}],
                "rejected": [{"id": "old", "fingerprint": FP_B}],
                "denied": [{"id": "web1", "fingerprint": FP_B}],
                "preaccepted": [],
            })
        );
        let yaml = render_list(FP_B, &sample(), &[], OutputFormat::Yaml, false);
        let doc2: serde_json::Value = serde_norway::from_str(&yaml).unwrap();
        assert_eq!(doc, doc2);
        let empty: serde_json::Value =
            serde_json::from_str(&render_list(FP_B, &[], &[], OutputFormat::Json, false)).unwrap();
        assert_eq!(empty["pending"], json!([]));
    }

    #[test]
    fn finger_shows_the_master_then_the_keys_it_has() {
        let keys = sample();
        let text = render_finger(FP_B, true, &keys, OutputFormat::Human, false);
        assert!(
            text.starts_with(&format!("Master Key:\n{FP_B}\nAccepted Keys:\n")),
            "{text}"
        );
        let one: Vec<KeyInfo> = keys.into_iter().filter(|k| k.id == id("db1")).collect();
        let text = render_finger(FP_B, false, &one, OutputFormat::Human, false);
        assert_eq!(text, format!("Unaccepted Keys:\ndb1  {FP_A}\n"));
    }

    #[test]
    fn master_finger_is_one_line() {
        assert_eq!(
            render_master_finger(FP_A, OutputFormat::Human),
            format!("{FP_A}\n")
        );
        let doc: serde_json::Value =
            serde_json::from_str(&render_master_finger(FP_A, OutputFormat::Json)).unwrap();
        assert_eq!(doc, json!({"master_fingerprint": FP_A}));
    }

    #[test]
    fn changes_print_each_key_with_its_fingerprint() {
        let accepted = [key("web1", KeyState::Accepted, FP_A)];
        assert_eq!(
            render_changed("accepted", &accepted, OutputFormat::Human, false),
            format!("Key for minion web1 accepted: {FP_A}\n")
        );
        let doc: serde_json::Value = serde_json::from_str(&render_changed(
            "accepted",
            &accepted,
            OutputFormat::Json,
            false,
        ))
        .unwrap();
        assert_eq!(
            doc,
            json!({"accepted": [{"id": "web1", "fingerprint": FP_A}]})
        );
        let deleted = [
            key("web1", KeyState::Denied, FP_B),
            key("web1", KeyState::Accepted, FP_A),
        ];
        assert_eq!(
            render_changed("deleted", &deleted, OutputFormat::Human, false),
            format!(
                "Key for minion web1 deleted: {FP_A} (was accepted)\n\
                 Key for minion web1 deleted: {FP_B} (was denied)\n"
            )
        );
        let doc: serde_json::Value = serde_norway::from_str(&render_changed(
            "deleted",
            &deleted,
            OutputFormat::Yaml,
            false,
        ))
        .unwrap();
        assert_eq!(
            doc["deleted"][1],
            json!({"id": "web1", "fingerprint": FP_B, "state": "denied"})
        );
        assert_eq!(
            render_changed("accepted", &[], OutputFormat::Human, false),
            "No key was accepted.\n"
        );
        let doc: serde_json::Value =
            serde_json::from_str(&render_changed("accepted", &[], OutputFormat::Json, false))
                .unwrap();
        assert_eq!(doc, json!({"accepted": []}));
    }

    #[test]
    fn accept_all_plans_exactly_the_pending_keys_shown() {
        let mut keys = sample();
        keys.push(key("db2", KeyState::Pending, FP_B));
        let cli = parse(&["accept", "--all"]).unwrap();
        let plan = plan(&cli.command, &keys).unwrap();
        assert_eq!(
            plan.request,
            KeyCommand::Accept {
                ids: vec![id("db1"), id("db2")],
                fingerprint: None,
                preaccept: false,
            }
        );
        assert_eq!(plan.keys.len(), 2);
        let q = question(&plan);
        assert!(
            q.starts_with("The following keys are going to be accepted:\nUnaccepted Keys:\n"),
            "{q}"
        );
        assert!(q.contains(&format!("db2  {FP_B}\n")), "{q}");
        assert!(q.ends_with("Proceed? [y/N] "), "{q}");

        // Nothing pending: nothing to ask.
        let none = plan_of(&["accept", "--all"], &[key("a", KeyState::Accepted, FP_A)]);
        assert!(none.keys.is_empty());
    }

    fn plan_of(words: &[&str], keys: &[KeyInfo]) -> Plan {
        plan(&parse(words).unwrap().command, keys).unwrap()
    }

    #[test]
    fn one_key_shown_is_pinned_to_the_fingerprint_shown() {
        let plan = plan_of(&["accept", "db1"], &sample());
        assert_eq!(
            plan.request,
            KeyCommand::Accept {
                ids: vec![id("db1")],
                fingerprint: Some(FP_A.into()),
                preaccept: false,
            }
        );
        // A rejected key may be accepted again with its own fingerprint; another is refused
        // before asking, naming the fingerprint the key has.
        let again = plan_of(&["accept", "old", "--fingerprint", FP_B], &sample());
        assert_eq!(
            again.request,
            KeyCommand::Accept {
                ids: vec![id("old")],
                fingerprint: Some(FP_B.into()),
                preaccept: false,
            }
        );
        let cli = parse(&["accept", "old", "--fingerprint", FP_A]).unwrap();
        let refused = super::plan(&cli.command, &sample())
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains(FP_B) && refused.contains("not accepted"),
            "{refused}"
        );
    }

    #[test]
    fn an_id_without_a_suitable_key_is_refused_before_asking() {
        let cli = parse(&["accept", "web1"]).unwrap();
        let e = plan(&cli.command, &sample()).unwrap_err();
        assert_eq!(e.to_string(), "web1 has no pending or rejected key");
        assert_eq!(e.exit_code(), exit::FAILED);
        let cli = parse(&["reject", "old"]).unwrap();
        assert_eq!(
            plan(&cli.command, &sample()).unwrap_err().to_string(),
            "old has no pending or accepted key"
        );
        let cli = parse(&["delete", "nobody"]).unwrap();
        assert_eq!(
            plan(&cli.command, &sample()).unwrap_err().to_string(),
            "nobody has no key"
        );
    }

    #[test]
    fn reject_and_delete_show_the_keys_of_the_id() {
        let plan = plan_of(&["reject", "web1"], &sample());
        assert_eq!(plan.keys, vec![key("web1", KeyState::Accepted, FP_A)]);
        assert_eq!(
            plan.request,
            KeyCommand::Reject(KeySelection::id(&id("web1")))
        );
        let plan = plan_of(&["delete", "web1"], &sample());
        assert_eq!(plan.keys.len(), 2, "the accepted and the denied key");
        assert_eq!(
            plan.request,
            KeyCommand::Delete(KeySelection::id(&id("web1")))
        );
        assert!(question(&plan).contains("Denied Keys:\nweb1  "));
    }

    #[test]
    fn a_fingerprint_chooses_among_every_key_of_the_id_or_preaccepts() {
        // web1's denied key (FP_B) is the one the operator holds: the accepted one goes.
        let chosen = plan_of(&["accept", "web1", "--fingerprint", FP_B], &sample());
        assert_eq!(chosen.keys, vec![key("web1", KeyState::Denied, FP_B)]);
        assert_eq!(
            chosen.displaced,
            vec![key("web1", KeyState::Accepted, FP_A)]
        );
        let text = question(&chosen);
        assert!(
            text.contains("going to be accepted:\nDenied Keys:\nweb1  ")
                && text.contains("going to be denied:\nAccepted Keys:\nweb1  "),
            "{text}"
        );
        // No key of new1 has it yet: only with --preaccept.
        let cli = parse(&["accept", "new1", "--fingerprint", FP_A]).unwrap();
        let refused = plan(&cli.command, &sample()).unwrap_err().to_string();
        assert!(refused.contains("--preaccept"), "{refused}");
        let preaccepted = plan_of(
            &["accept", "new1", "--fingerprint", FP_A, "--preaccept"],
            &sample(),
        );
        assert_eq!(
            preaccepted.keys,
            vec![key("new1", KeyState::Preaccepted, FP_A)]
        );
        assert!(question(&preaccepted).contains("Preaccepted Keys:\nnew1  "));
        let done = render_changed("accepted", &preaccepted.keys, OutputFormat::Human, false);
        assert_eq!(
            done,
            format!(
                "Key for minion new1 preaccepted: {FP_A} (accepted when the minion presents it)\n"
            )
        );
    }

    #[test]
    fn reject_and_delete_take_globs_and_states() {
        let cli = parse(&["reject", "--all", "-y"]).unwrap();
        assert_eq!(
            cli.command.request(),
            Some(KeyCommand::Reject(KeySelection {
                ids: vec!["*".into()],
                states: vec![KeyState::Pending],
            })),
            "as salt-key -R: the pending keys"
        );
        let denied = plan_of(&["delete", "web*", "--state", "denied"], &sample());
        assert_eq!(denied.keys, vec![key("web1", KeyState::Denied, FP_B)]);
        let every = plan_of(&["delete", "-D"], &sample());
        assert_eq!(every.keys.len(), sample().len());
        let cli = parse(&["reject", "web*", "--state", "denied"]).unwrap();
        assert!(
            plan(&cli.command, &sample()).is_err(),
            "denied keys are not rejected"
        );
    }

    #[test]
    fn only_y_or_yes_is_yes() {
        for yes in ["y", "Y", "yes", " YES\n", "y\r\n"] {
            assert!(is_yes(yes), "{yes:?}");
        }
        for no in ["", "\n", "n", "no", "yy", "sure", "y es"] {
            assert!(!is_yes(no), "{no:?}");
        }
    }

    #[test]
    fn refusals_are_exit_1_with_the_masters_words() {
        let e = refusal(
            ControlError::BadRequest,
            "the key of web1 has fingerprint a, not b: not accepted".into(),
        );
        assert_eq!(e.exit_code(), exit::FAILED);
        assert_eq!(
            e.message("brine-key").unwrap(),
            "brine-key: the key of web1 has fingerprint a, not b: not accepted"
        );
        assert_eq!(
            refusal(ControlError::NotFound, "x".into()).exit_code(),
            exit::FAILED
        );
        assert_eq!(
            refusal(ControlError::ShuttingDown, "x".into()).exit_code(),
            exit::UNAVAILABLE
        );
        assert_eq!(
            refusal(ControlError::Storage, "x".into()).exit_code(),
            exit::FAILED
        );
    }

    /// What [`subcommand_form`] makes of `words` (after the program name).
    fn translated(words: &[&str]) -> Result<Vec<String>, clap::Error> {
        let args = std::iter::once("brine-key")
            .chain(words.iter().copied())
            .map(OsString::from)
            .collect();
        let out = subcommand_form(args)?;
        assert_eq!(out[0], "brine-key");
        Ok(out[1..]
            .iter()
            .map(|w| w.to_str().unwrap().to_owned())
            .collect())
    }

    #[test]
    fn salt_key_flags_become_the_subcommand_they_stand_for() {
        for (flags, subcommand) in [
            (&["-L"][..], &["list"][..]),
            (&["-l", "acc"], &["list", "--state", "accepted"]),
            (&["-l", "accepted"], &["list", "--state", "accepted"]),
            (&["-l", "un"], &["list", "--state", "pending"]),
            (&["-l", "unaccepted"], &["list", "--state", "pending"]),
            (&["-l", "pre"], &["list", "--state", "pending"]),
            (&["-l", "pending"], &["list", "--state", "pending"]),
            (&["-lrej"], &["list", "--state", "rejected"]),
            (&["-l", "den"], &["list", "--state", "denied"]),
            (&["-l", "preaccepted"], &["list", "--state", "preaccepted"]),
            (&["-l", "all"], &["list"]),
            (&["-a", "web*", "-y"], &["accept", "--yes", "--", "web*"]),
            (
                &["-y", "-a", "web1,db1"],
                &["accept", "--yes", "--", "web1", "db1"],
            ),
            (&["-aweb1"], &["accept", "--", "web1"]),
            (&["-ya", "web1"], &["accept", "--yes", "--", "web1"]),
            (&["-A"], &["accept", "--all"]),
            (&["-Ay"], &["accept", "--all", "--yes"]),
            (&["-A", "--yes"], &["accept", "--all", "--yes"]),
            (
                &["-r", "web1", "-y"],
                &["reject", "--state", "pending", "--yes", "--", "web1"],
            ),
            (&["-R", "-y"], &["reject", "--all", "--yes"]),
            (&["-d", "old"], &["delete", "--", "old"]),
            (&["-D", "-y"], &["delete", "--all", "--yes"]),
            (&["-f", "web1"], &["finger", "--", "web1"]),
            (&["-F"], &["finger"]),
            // salt-key takes -y with any action: without a question it means nothing.
            (&["-L", "-y"], &["list"]),
            // The master's flags stay, their values are no subcommand.
            (
                &["--out", "json", "-L", "--socket", "/s"],
                &["--out", "json", "--socket", "/s", "list"],
            ),
            (&["--output=yaml", "-F"], &["--output=yaml", "finger"]),
        ] {
            assert_eq!(translated(flags).unwrap(), subcommand, "{flags:?}");
        }
    }

    #[test]
    fn a_subcommand_and_its_flags_are_left_to_clap() {
        for words in [
            &["accept", "web1", "-y"][..],
            &["--out", "json", "reject", "-R", "-y"],
            &["--socket", "/s", "delete", "-D"],
            &["list", "--state", "pending"],
            &["finger", "-a"],
            &["-h"],
            &["--version"],
            &[],
        ] {
            assert_eq!(translated(words).unwrap(), words, "{words:?}");
        }
    }

    #[test]
    fn the_flag_form_runs_as_the_subcommand() {
        let cli = parse(&["-l", "un", "--out", "json"]).unwrap();
        assert!(matches!(&cli.command, Command::List { states } if states == &[KeyState::Pending]));
        assert_eq!(cli.master.out, OutputFormat::Json);
        let cli = parse(&["-R", "-y"]).unwrap();
        assert_eq!(
            cli.command.request(),
            parse(&["reject", "--all", "--yes"])
                .unwrap()
                .command
                .request()
        );
        let cli = parse(&["-r", "web1,db1", "-y"]).unwrap();
        assert_eq!(
            cli.command.request(),
            Some(KeyCommand::Reject(KeySelection {
                ids: vec!["web1".into(), "db1".into()],
                states: vec![KeyState::Pending],
            })),
            "as salt-key -r: pending keys only"
        );
        assert!(cli.command.confirmed());
        let cli = parse(&["-f", "web*"]).unwrap();
        assert!(matches!(&cli.command, Command::Finger { ids } if ids == &["web*"]));
    }

    #[test]
    fn flag_mistakes_are_usage_errors_that_say_what_to_write() {
        for (words, says) in [
            (&["-L", "list"][..], "not both"),
            (&["-y", "accept", "web1"], "salt-key's flag -y and the subcommand accept"),
            (&["accept", "web1", "-a", "web2"], "-a ID stands for the subcommand `accept ID`"),
            (&["list", "-L"], "-L stands for the subcommand `list`"),
            (&["-a"], "-a takes a minion id or glob"),
            (&["-a", "-y"], "-a takes a minion id or glob"),
            (&["-a", "web1", "web2"], "several ids: -a web1,db1"),
            (&["-l"], "-l takes a key state, one of acc, accepted"),
            (&["-l", "bogus"], "-l bogus: a key state is one of acc"),
            (&["-y"], "-y confirms a change: give it with -a"),
            (&["-A", "-D"], "-A and -D in one command line"),
            (&["-a", "web/1", "-y"], "web/1"),
            (&["-a", "../x", "-y"], "../x"),
            (&["-x"], "brine-key takes a subcommand (list, accept"),
            (&["-Lx"], "'-x'"),
            (&["bogus"], "salt-key's flags (-L, -l STATE, -a ID"),
            (&["--list"], "salt-key's --list is `brine-key -l STATE` here, or the subcommand `brine-key list --state STATE`"),
            (&["--accept-all"], "`brine-key -A` here, or the subcommand `brine-key accept --all`"),
            (&["--delete=web1"], "`brine-key -d ID` here"),
        ] {
            let e = parse(words).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{words:?}: {e}");
            let text = e.to_string();
            assert!(text.contains(says), "{words:?}: {says:?} missing from\n{text}");
        }
    }

    #[test]
    fn list_with_states_shows_those_only() {
        let text = render_list(
            FP_A,
            &sample(),
            &[KeyState::Pending],
            OutputFormat::Human,
            false,
        );
        assert_eq!(text, format!("Unaccepted Keys:\ndb1  {FP_A}\n"));
        let text = render_list(
            FP_A,
            &sample(),
            &[KeyState::Preaccepted],
            OutputFormat::Human,
            false,
        );
        assert_eq!(
            text, "Preaccepted Keys:\n",
            "salt-key shows the heading asked for"
        );
        let states = [KeyState::Accepted, KeyState::Rejected];
        let doc: serde_json::Value = serde_json::from_str(&render_list(
            FP_B,
            &sample(),
            &states,
            OutputFormat::Json,
            false,
        ))
        .unwrap();
        assert_eq!(
            doc,
            json!({
                "master_fingerprint": FP_B,
                "accepted": [{"id": "web1", "fingerprint": FP_A}, {"id": "web2", "fingerprint": FP_B}],
                "rejected": [{"id": "old", "fingerprint": FP_B}],
            })
        );
    }

    #[test]
    fn an_accept_of_a_glob_names_the_pending_keys_it_matches() {
        let mut keys = sample();
        keys.push(key("web3", KeyState::Pending, FP_A));
        keys.push(key("web4", KeyState::Pending, FP_B));
        let cli = parse(&["-a", "web*", "-y"]).unwrap();
        assert_eq!(
            cli.command.request(),
            None,
            "only the key list can say which"
        );
        let all = plan(&cli.command, &keys).unwrap();
        assert_eq!(
            all.request,
            KeyCommand::Accept {
                ids: vec![id("web3"), id("web4")],
                fingerprint: None,
                preaccept: false,
            },
            "not web1 or web2 (accepted) nor web1's denied key"
        );
        assert_eq!(all.keys.len(), 2);
        // One key matched: pinned to its fingerprint. Ids and globs together, each key once.
        let one = plan_of(&["accept", "web3", "web3*", "db*"], &keys);
        assert_eq!(
            one.request,
            KeyCommand::Accept {
                ids: vec![id("web3"), id("db1")],
                fingerprint: None,
                preaccept: false,
            }
        );
        let one = plan_of(&["accept", "w?b4"], &keys);
        assert_eq!(
            one.request,
            KeyCommand::Accept {
                ids: vec![id("web4")],
                fingerprint: Some(FP_B.into()),
                preaccept: false,
            }
        );
        // An id takes its rejected key too; a glob, as salt-key -a, pending keys only.
        assert_eq!(plan_of(&["accept", "old"], &keys).keys.len(), 1);
        let cli = parse(&["accept", "ol*"]).unwrap();
        let e = plan(&cli.command, &keys).unwrap_err();
        assert_eq!(e.to_string(), "ol* has no pending key");
        assert_eq!(e.exit_code(), exit::FAILED);
        // --preaccept awaits one id's fingerprint: not a glob's.
        let cli = parse(&["accept", "new*", "--fingerprint", FP_A, "--preaccept"]).unwrap();
        assert_eq!(
            plan(&cli.command, &keys).unwrap_err().exit_code(),
            exit::USAGE
        );
    }
}
