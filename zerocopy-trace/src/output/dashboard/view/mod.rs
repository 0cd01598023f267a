//! Drawing an `&App`: header, process table (or detail), key hints, and the help on top.
//! Nothing here changes state; the tests render onto ratatui's `TestBackend`.

mod detail;
mod format;
mod header;
mod help;
mod table;

use ratatui::{
    buffer::Buffer,
    layout::{Constraint, Layout, Rect},
    style::{Style, Stylize},
    text::{Line, Span},
    widgets::{Paragraph, Widget},
};

use super::app::{App, Rows};

/// Rows the process table keeps above the detail pane when the pane fits beside it.
const MIN_TABLE: u16 = 4;

impl Widget for &App {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let [top, body, bottom] = Layout::vertical([
            Constraint::Length(2),
            Constraint::Fill(1),
            Constraint::Length(1),
        ])
        .areas(area);
        header::render(self, top, buf);
        if self.detail {
            // The pane takes what it needs; the table keeps the rest when that is useful.
            let wanted = detail::height(self);
            if body.height >= wanted + MIN_TABLE {
                let [list, pane] =
                    Layout::vertical([Constraint::Fill(1), Constraint::Length(wanted)]).areas(body);
                table::render(self, list, buf);
                detail::render(self, pane, buf);
            } else {
                detail::render(self, body, buf);
            }
        } else {
            table::render(self, body, buf);
        }
        footer(self, bottom, buf);
        if self.help {
            help::render(area, buf);
        }
    }
}

/// The filter being typed, or the keys worth knowing.
fn footer(app: &App, area: Rect, buf: &mut Buffer) {
    let key = |k: &'static str| Span::raw(k).bold();
    let line = if app.editing_filter {
        Line::from(vec![
            Span::raw(" filter: "),
            Span::raw(app.filter.as_str()).bold(),
            Span::raw("█  "),
            Span::raw("Enter keep, Esc clear").dark_gray(),
        ])
    } else {
        let mut spans = vec![];
        if !app.filter.is_empty() {
            spans.push(Span::styled(
                format!(" /{} ", app.filter),
                Style::new().reversed(),
            ));
        }
        let mut keys = vec![
            (" q", " quit "),
            (" ↑↓", " move "),
            (" ⏎", " detail "),
            (" s", " sort "),
            (" /", " filter "),
            (" space", " pause "),
            (" t", " totals "),
        ];
        // Shown where it does something: some process runs in a container.
        if app.has_containers() || app.rows_are == Rows::Containers {
            keys.push((" c", " containers "));
        }
        keys.push((" ?", " help"));
        for (k, what) in keys {
            spans.push(key(k));
            spans.push(Span::raw(what).dark_gray());
        }
        Line::from(spans)
    };
    Paragraph::new(line).render(area, buf);
}

#[cfg(test)]
mod tests;
