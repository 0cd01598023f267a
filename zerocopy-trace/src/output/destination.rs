//! Where a finished report goes: standard output, a file only its owner can read, or a file
//! for node_exporter's textfile collector. A file is started when the command starts, before
//! anything is attached or run, so an `-o` that cannot be written is refused at once; it is
//! written under a temporary name beside its target (mode 0600) and renamed over it at the end,
//! and the temporary file is removed on every other way out (`system::staged_file`).

use std::{
    io::{self, Write},
    path::Path,
};

use anyhow::{Context, Result};

use crate::system::staged_file::StagedFile;

/// Where the report will be written.
pub enum Destination {
    Stdout,
    /// Readable by its owner only: reports can name every process on the machine.
    Private(StagedFile),
    /// For node_exporter's textfile collector, which runs as its own user: readable by all.
    /// Its temporary name does not end in `.prom`, so the collector never reads half a file.
    Textfile(StagedFile),
}

impl Destination {
    /// Standard output without a path; else the file at `path`, started now. Call before any
    /// thread is started (see `StagedFile::create`).
    pub fn new(path: Option<&Path>, for_textfile_collector: bool) -> Result<Destination> {
        Ok(match path {
            None => Destination::Stdout,
            Some(path) if for_textfile_collector => {
                Destination::Textfile(StagedFile::create(path, 0o644)?)
            }
            Some(path) => Destination::Private(StagedFile::create(path, 0o600)?),
        })
    }

    /// Writes `text` and, for a file, puts it in place.
    pub fn write(self, text: &str) -> Result<()> {
        match self {
            Destination::Stdout => print(text),
            Destination::Private(file) | Destination::Textfile(file) => {
                file.commit(text.as_bytes())
            }
        }
    }
}

/// Writes to stdout. A closed stdout (`| head`) is not an error worth a message.
pub fn print(text: &str) -> Result<()> {
    match io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("writing the report"),
    }
}
