//! Two lines of machine-wide figures: what moved and how, and the state of the trace.

use ratatui::{
    buffer::Buffer,
    layout::Rect,
    style::{Color, Modifier, Style, Stylize},
    text::{Line, Span},
    widgets::{Paragraph, Widget},
};

use super::format;
use crate::output::{
    dashboard::app::{App, Rows, Show},
    human,
};

pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let figures = app.machine_figures();
    // Non-capturing closures as fn pointers, so both arms have one type.
    type Format = fn(f64) -> String;
    let (bytes, count): (Format, Format) = match app.show {
        Show::Rates => (
            |v: f64| format!("{}/s", human::bytes(v as u64)),
            |v: f64| format!("{}/s", human::count(v.round() as u64)),
        ),
        Show::Totals => (
            |v: f64| human::bytes(v as u64),
            |v: f64| human::count(v as u64),
        ),
    };
    let value = Style::new().add_modifier(Modifier::BOLD);
    let moved = Line::from(vec![
        Span::raw(" copied "),
        Span::styled(bytes(figures.copied), value.fg(Color::Red)),
        Span::raw("   zero-copy "),
        Span::styled(bytes(figures.zero_copy), value.fg(Color::Green)),
        Span::raw(format!(" ({})", human::percent(figures.ratio))),
        Span::raw("   transitions "),
        Span::styled(count(figures.transitions), value),
    ]);

    let (live, exited) = app.process_counts();
    let mut state = vec![Span::raw(format!(
        " {live} process{}",
        if live == 1 { "" } else { "es" }
    ))];
    if exited > 0 {
        state.push(Span::raw(format!(" +{exited} exited")).dark_gray());
    }
    if app.folded > 0 {
        // Exits beyond the rows kept, summed per command: in the totals, not in the table.
        state.push(Span::raw(format!(" ({} folded)", human::count(app.folded))).dark_gray());
    }
    let dropped_calls: u64 = app.dropped.iter().map(|d| d.calls).sum();
    let dropped_bytes: u64 = app.dropped.iter().map(|d| d.bytes).sum();
    state.push(Span::raw("   dropped "));
    state.push(if dropped_calls == 0 && dropped_bytes == 0 {
        Span::raw("0")
    } else {
        Span::styled(
            format!(
                "{} calls/{}",
                human::count(dropped_calls),
                human::bytes(dropped_bytes)
            ),
            value.fg(Color::Red),
        )
    });
    state.push(Span::raw(format!(
        "   every {}   up {}   ",
        format::interval(app.interval),
        format::elapsed(app.elapsed)
    )));
    state.push(Span::styled(
        match app.show {
            Show::Rates => "rates",
            Show::Totals => "totals",
        },
        value,
    ));
    state.push(Span::raw(format!(" by {}", app.sort.name())));
    if app.rows_are == Rows::Containers {
        state.push(Span::raw(", per container"));
    }
    if app.paused {
        state.push(Span::raw(" "));
        state.push(Span::styled(" PAUSED ", Style::new().reversed()));
    }
    Paragraph::new(vec![moved, Line::from(state)]).render(area, buf);
}
