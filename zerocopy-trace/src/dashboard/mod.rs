//! The live dashboard (`zerocopy-trace`, `zerocopy-trace top`): snapshots every interval,
//! rates per process, keys to explore them.
//!
//! Pure core, thin shell: `app` holds the state and changes it (`App::ingest`, `update`),
//! `keys` maps a key to an `Action`, `view` draws an `&App`; this file is the shell, an
//! `Output` of the trace's loop that owns the terminal (`terminal`).

mod app;
mod keys;
mod terminal;
mod view;

use std::time::Duration;

use anyhow::{Context, Result};
use crossterm::event::{Event, EventStream};
use futures_util::StreamExt;

pub use self::app::EXITED_ROWS;
use self::{
    app::{update, App},
    terminal::Screen,
};
use crate::{
    collect::Snapshot,
    driver::{Control, Output},
};

/// The dashboard on the terminal. Dropping it restores the terminal.
pub struct Dashboard {
    app: App,
    screen: Screen,
    events: EventStream,
}

impl Dashboard {
    /// Takes over the terminal and draws the empty dashboard; snapshots come every `interval`.
    pub fn open(interval: Duration) -> Result<Dashboard> {
        let app = App::new(interval);
        let mut screen = Screen::enter()?;
        screen.draw(&app)?;
        Ok(Dashboard {
            app,
            screen,
            events: EventStream::new(),
        })
    }
}

impl Output for Dashboard {
    fn refresh(&self) -> Option<Duration> {
        Some(self.app.interval)
    }

    fn wants_snapshot(&self) -> bool {
        !self.app.paused
    }

    async fn input(&mut self) -> Result<Control> {
        loop {
            match self.events.next().await {
                Some(Ok(Event::Key(key))) => {
                    let action = keys::action(self.app.input_mode(), key);
                    update(&mut self.app, action);
                    break;
                }
                // A resize needs nothing but the redraw below, which fits the new size.
                Some(Ok(Event::Resize(..))) => break,
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e).context("reading the terminal"),
                // The terminal is gone (hangup): nothing left to draw on.
                None => return Ok(Control::Stop),
            }
        }
        if self.app.quit {
            return Ok(Control::Stop);
        }
        self.screen.draw(&self.app)?;
        Ok(Control::Continue)
    }

    fn snapshot(&mut self, snapshot: Snapshot, elapsed: Duration) -> Result<Control> {
        self.app.ingest(snapshot, elapsed);
        self.screen.draw(&self.app)?;
        Ok(Control::Continue)
    }
}
