//! The terminal while the dashboard owns it: raw mode and the alternate screen, restored in
//! `Drop` and, for a panic, in a panic hook that runs before the message is printed (so the
//! message lands on the normal screen, readable).

use std::{
    io::{self, Stdout},
    sync::{
        atomic::{AtomicBool, Ordering},
        Once,
    },
};

use anyhow::{Context, Result};
use crossterm::{
    cursor,
    terminal::{self, EnterAlternateScreen, LeaveAlternateScreen},
};
use ratatui::{backend::CrosstermBackend, Terminal};

use super::app::App;

/// True while the screen is ours: the panic hook restores only then.
static ACTIVE: AtomicBool = AtomicBool::new(false);
static HOOK: Once = Once::new();

pub struct Screen {
    terminal: Terminal<CrosstermBackend<Stdout>>,
    /// The log level to put back: logging is off while drawing, since a line written to
    /// stderr would scribble over the screen.
    log_level: log::LevelFilter,
}

impl Screen {
    pub fn enter() -> Result<Screen> {
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                restore();
                previous(info);
            }));
        });
        terminal::enable_raw_mode().context("putting the terminal in raw mode")?;
        ACTIVE.store(true, Ordering::SeqCst);
        let terminal = match Terminal::new(CrosstermBackend::new(io::stdout())) {
            Ok(terminal) => terminal,
            Err(e) => {
                restore();
                return Err(e).context("opening the terminal");
            }
        };
        // From here on, an early return drops `screen`, which restores the terminal.
        let mut screen = Screen {
            terminal,
            log_level: log::max_level(),
        };
        crossterm::execute!(io::stdout(), EnterAlternateScreen, cursor::Hide)
            .context("switching to the alternate screen")?;
        screen.terminal.clear().context("clearing the screen")?;
        log::set_max_level(log::LevelFilter::Off);
        Ok(screen)
    }

    /// Draws only what changed since the last frame (ratatui diffs buffers): no flicker.
    pub fn draw(&mut self, app: &App) -> Result<()> {
        self.terminal
            .draw(|frame| frame.render_widget(app, frame.area()))
            .context("drawing the dashboard")?;
        Ok(())
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore();
        log::set_max_level(self.log_level);
    }
}

/// Leaves the alternate screen and raw mode, once. Errors are ignored: this runs on the way
/// out (drop, panic) where nothing better can be done with them.
fn restore() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        let _ = crossterm::execute!(io::stdout(), LeaveAlternateScreen, cursor::Show);
        let _ = terminal::disable_raw_mode();
    }
}
