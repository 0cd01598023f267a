//! What must hold before anything is loaded: the privileges to load and attach, and tracefs,
//! whose format files say where each syscall's arguments are. Each failure is one line that
//! says what to do.

use std::path::PathBuf;

use anyhow::Result;

use crate::{kernel::tracefs, system::privileges};

/// What the checks found.
pub struct Ready {
    /// Where tracefs is mounted.
    pub tracefs: PathBuf,
    /// Possible CPUs: the slots of every per-CPU map.
    pub cpus: u32,
}

pub fn check() -> Result<Ready> {
    privileges::check()?;
    let tracefs = tracefs::locate_or_mount()?;
    let cpus = aya::util::nr_cpus().map_err(|(what, e)| anyhow::Error::new(e).context(what))?;
    Ok(Ready {
        tracefs,
        cpus: cpus as u32,
    })
}
