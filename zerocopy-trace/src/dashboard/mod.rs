//! The live dashboard (`zerocopy-trace`, `zerocopy-trace top`): snapshots every interval,
//! rates per process, keys to explore them.
//!
//! Pure core, thin shell: `app` holds the state and changes it (`App::ingest`, `update`),
//! `keys` maps a key to an `Action`, `view` draws an `&App`; this file is the shell that owns
//! the terminal (`terminal`), the session and the clock.

mod app;
mod keys;
mod terminal;
mod view;

use std::time::Duration;

use anyhow::{Context, Result};
use crossterm::event::{Event, EventStream};
use futures_util::StreamExt;
use tokio::time::{interval, interval_at, Instant, MissedTickBehavior};

use self::{
    app::{update, App},
    terminal::Screen,
};
use crate::session::{Session, Signals, TICK};

/// Runs until q/Esc/Ctrl-C or a signal; restores the terminal, then detaches.
pub async fn run(mut session: Session, mut signals: Signals, every: Duration) -> Result<()> {
    let mut app = App::new(every);
    let outcome = match Screen::enter() {
        Ok(mut screen) => event_loop(&mut session, &mut signals, &mut screen, &mut app).await,
        Err(e) => Err(e),
    };
    // The screen is restored by now (dropped at the end of the match arm): detaching takes a
    // moment, and the user sees their shell back meanwhile.
    session.detach();
    outcome
}

async fn event_loop(
    session: &mut Session,
    signals: &mut Signals,
    screen: &mut Screen,
    app: &mut App,
) -> Result<()> {
    let attached = Instant::now();
    let mut events = EventStream::new();
    let mut tick = interval(TICK);
    // The first snapshot comes one interval after attach: a rate over a few milliseconds
    // would be noise.
    let mut refresh = interval_at(attached + app.interval, app.interval);
    // After a stall (a suspended terminal), carry on from now instead of catching up in a burst.
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    refresh.set_missed_tick_behavior(MissedTickBehavior::Delay);

    screen.draw(app)?;
    loop {
        tokio::select! {
            _ = signals.next() => return Ok(()),
            event = events.next() => match event {
                Some(Ok(Event::Key(key))) => update(app, keys::action(app.input_mode(), key)),
                // A resize needs nothing but the redraw below, which fits the new size.
                Some(Ok(Event::Resize(..))) => {}
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e).context("reading the terminal"),
                // The terminal is gone (hangup): nothing left to draw on.
                None => return Ok(()),
            },
            _ = tick.tick() => {
                session.tick()?;
                continue;
            }
            _ = refresh.tick() => {
                if app.paused {
                    continue;
                }
                let snapshot = session.snapshot()?;
                app.ingest(snapshot, attached.elapsed());
            }
        }
        if app.quit {
            return Ok(());
        }
        screen.draw(app)?;
    }
}
