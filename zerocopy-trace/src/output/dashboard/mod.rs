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
use super::{Control, Output};
use crate::{
    collect::{groups::Grouping, Retention},
    snapshot::Snapshot,
};

/// The dashboard on the terminal, from attach until detach. Dropping it restores the
/// terminal.
pub struct Dashboard {
    app: App,
    /// The terminal, while the dashboard owns it.
    screen: Option<Screen>,
    events: Option<EventStream>,
}

impl Dashboard {
    /// A dashboard that takes snapshots every `interval` once attached.
    pub fn new(interval: Duration) -> Dashboard {
        Dashboard {
            app: App::new(interval),
            screen: None,
            events: None,
        }
    }

    fn draw(&mut self) -> Result<()> {
        match self.screen.as_mut() {
            Some(screen) => screen.draw(&self.app),
            None => Ok(()),
        }
    }
}

impl Output for Dashboard {
    fn retention(&self) -> Retention {
        Retention {
            keep_exited: EXITED_ROWS,
            grouping: Grouping::default(),
        }
    }

    /// Takes over the terminal and draws the empty dashboard.
    fn attached(&mut self) -> Result<()> {
        self.screen = Some(Screen::enter()?);
        self.events = Some(EventStream::new());
        self.draw()
    }

    /// The terminal first: detaching takes a moment, and the user sees their shell back
    /// meanwhile.
    fn detaching(&mut self) {
        self.events = None;
        self.screen = None;
    }

    fn refresh(&self) -> Option<Duration> {
        Some(self.app.interval)
    }

    fn wants_snapshot(&self) -> bool {
        !self.app.paused
    }

    async fn input(&mut self) -> Result<Control> {
        let Some(events) = self.events.as_mut() else {
            return std::future::pending().await;
        };
        loop {
            match events.next().await {
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
        self.draw()?;
        Ok(Control::Continue)
    }

    fn snapshot(&mut self, snapshot: Snapshot, elapsed: Duration) -> Result<Control> {
        self.app.ingest(snapshot, elapsed);
        self.draw()?;
        Ok(Control::Continue)
    }
}
