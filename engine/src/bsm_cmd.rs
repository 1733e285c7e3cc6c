//! OpenBSM on the command line: `sluice bsm dump`, and the reading side of
//! `sluice ingest --format bsm`.
//!
//! `sluice bsm dump FILE` prints each record of a trail the way `praudit`
//! does, so that an analyst can diff sluice's reading of a trail against the
//! tool they trust:
//!
//! | `--style` | praudit | layout |
//! |---|---|---|
//! | `l` (default) | `praudit -l -n` | one record per line, names |
//! | `n` | `praudit -n` | one token per line, names |
//! | `raw` | `praudit -r -l` | one record per line, numbers |
//!
//! User and group ids are never resolved through the host's password file
//! (the records may come from another machine), which is what praudit's
//! `-n` does. Damage in the trail is reported on standard error with its
//! byte offset, and the dump goes on with the next record.
//!
//! `sluice ingest --format bsm` reads a trail file, standard input, or a
//! directory of trails such as `/var/audit` (all trails once, in name order;
//! following the directory as auditd rotates it is the daemon's job).

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use arrow::record_batch::RecordBatch;
use sluice_ingest::bsm::praudit::{PrauditOptions, write_record};
use sluice_ingest::bsm::trail::list_trails;
use sluice_ingest::bsm::{BsmDecoder, Frame, RecordStream, replay_bsm};
use sluice_schemas::TableDef;

use crate::ingest_cmd::IngestError;

/// The subcommands of `sluice bsm`.
#[derive(Debug, clap::Subcommand)]
pub enum BsmCommand {
    /// Print the records of a trail as praudit does.
    Dump(DumpArgs),
}

/// How `sluice bsm dump` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DumpStyle {
    /// `praudit -l -n`: one record per line.
    L,
    /// `praudit -n`: one token per line.
    N,
    /// `praudit -r -l`: one record per line, raw numbers.
    Raw,
}

/// Arguments of `sluice bsm dump`.
#[derive(Debug, clap::Args)]
pub struct DumpArgs {
    /// The layout, after praudit's flags.
    #[arg(long, value_enum, default_value = "l")]
    pub style: DumpStyle,
    /// Print event names (`AUE_EXECVE`) instead of descriptions, as
    /// `praudit -s`.
    #[arg(long)]
    pub short: bool,
    /// The trail to read, or `-` for standard input.
    pub input: PathBuf,
}

impl DumpArgs {
    fn options(&self) -> PrauditOptions {
        PrauditOptions {
            raw: self.style == DumpStyle::Raw,
            short_events: self.short,
            one_line: self.style != DumpStyle::N,
            ..PrauditOptions::default()
        }
    }
}

/// Why a dump stopped.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    /// The input could not be opened.
    #[error("cannot open {}: {source}", path.display())]
    Open {
        /// The input.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The input could not be read, or the output written.
    #[error("{input}: {source}")]
    Io {
        /// The input, as named on the command line.
        input: String,
        /// The I/O error.
        source: io::Error,
    },
}

/// Runs a `sluice bsm` subcommand.
pub fn run(command: &BsmCommand) -> Result<(), DumpError> {
    match command {
        BsmCommand::Dump(args) => {
            let stdout = io::stdout().lock();
            match dump(args, &mut BufWriter::new(stdout), &mut io::stderr().lock()) {
                // `sluice bsm dump trail | head` is not an error.
                Err(DumpError::Io { source, .. }) if source.kind() == io::ErrorKind::BrokenPipe => {
                    Ok(())
                }
                other => other.map(|_| ()),
            }
        }
    }
}

fn open(input: &Path) -> Result<Box<dyn Read>, io::Error> {
    if input.as_os_str() == "-" {
        Ok(Box::new(io::stdin().lock()))
    } else {
        Ok(Box::new(File::open(input)?))
    }
}

/// Dumps `args.input` to `out`, damage to `err`; returns the number of
/// damaged spans.
pub fn dump(args: &DumpArgs, out: &mut impl Write, err: &mut impl Write) -> Result<u64, DumpError> {
    let name = args.input.display().to_string();
    let io_error = |source| DumpError::Io {
        input: name.clone(),
        source,
    };
    let reader = open(&args.input).map_err(|source| DumpError::Open {
        path: args.input.clone(),
        source,
    })?;
    let options = args.options();
    let mut line = Vec::with_capacity(4096);
    let mut damaged = 0;
    let mut emit = |frame: Frame<'_>| -> io::Result<()> {
        match frame {
            Frame::Record(record) => {
                line.clear();
                write_record(&mut line, record.bytes, &options);
                out.write_all(&line)
            }
            Frame::FileToken { bytes, .. } => {
                line.clear();
                write_record(&mut line, bytes, &options);
                out.write_all(&line)
            }
            Frame::Corrupt(c) => {
                damaged += 1;
                writeln!(err, "sluice: {name}: byte {}: {c}", c.offset)
            }
        }
    };
    RecordStream::new()
        .read_to_end(reader, &mut emit)
        .map_err(|e| match e {
            sluice_ingest::bsm::stream::StreamError::Read { source, .. } => io_error(source),
            sluice_ingest::bsm::stream::StreamError::Sink(source) => io_error(source),
        })?;
    out.flush().map_err(io_error)?;
    Ok(damaged)
}

/// Reads `input` (a trail, `-`, or a directory of trails) into `decoder`,
/// handing batches of `batch_rows` rows to `sink`, and the rest at the end.
pub(crate) fn replay_input(
    input: &Path,
    decoder: &mut BsmDecoder,
    batch_rows: usize,
    sink: &mut impl FnMut(&'static TableDef, RecordBatch),
) -> Result<(), IngestError> {
    let open_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| IngestError::Open { path, source }
    };
    let mut sink = |table, batch| {
        sink(table, batch);
        Ok::<(), std::convert::Infallible>(())
    };
    let mut stream = RecordStream::new();
    let mut replay = |reader: Box<dyn Read>, name: &Path, decoder: &mut BsmDecoder| {
        stream.reset();
        replay_bsm(reader, &mut stream, decoder, batch_rows, &mut sink).map_err(|source| {
            IngestError::BsmReplay {
                input: name.display().to_string(),
                source,
            }
        })
    };
    if input.is_dir() {
        // Each trail is its own stream: a record cut short at the end of a
        // crashed trail does not run into the next one.
        for (trail, path) in list_trails(input).map_err(open_error(input))? {
            decoder.set_source(&trail.file_name);
            let file = File::open(&path).map_err(open_error(&path))?;
            replay(Box::new(file), &path, decoder)?;
        }
        decoder.set_source("");
    } else {
        let reader = open(input).map_err(open_error(input))?;
        replay(reader, input, decoder)?;
    }
    let rest = decoder.take_batches().map_err(|e| IngestError::BsmReplay {
        input: input.display().to_string(),
        source: sluice_ingest::bsm::ReplayError::Build(e),
    })?;
    for (table, batch) in rest {
        let _ = sink(table, batch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn styles_map_to_praudit_flags() {
        let args = |style| DumpArgs {
            style,
            short: false,
            input: PathBuf::from("-"),
        };
        assert!(args(DumpStyle::L).options().one_line && !args(DumpStyle::L).options().raw);
        assert!(!args(DumpStyle::N).options().one_line);
        assert!(args(DumpStyle::Raw).options().raw && args(DumpStyle::Raw).options().one_line);
    }
}
