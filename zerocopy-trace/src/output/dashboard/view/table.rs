//! The process table: one row per process, the selected one highlighted, columns dropped
//! (least useful first) when the terminal is too narrow for them and a readable name. A
//! CONTAINER column where some process runs in one; with `c`, one row per container instead
//! (its live processes under PROCS).

use ratatui::{
    buffer::Buffer,
    layout::{Constraint, Rect},
    style::{Color, Modifier, Style, Stylize},
    text::{Line, Span},
    widgets::{Cell, Paragraph, Row, Table, Widget},
};

use super::format;
use crate::{
    model::Verdict,
    output::{
        dashboard::app::{App, Figures, Row as ProcessRow, Rows, Show, SortKey},
        human, wording,
    },
};

/// Narrowest name column worth keeping other columns for ("zerocopy-trace" is 14).
const MIN_COMM: u16 = 14;
const BAR: usize = 4;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Column {
    Pid,
    Comm,
    Container,
    Verdict,
    Share,
    Copied,
    ZeroCopy,
    Transitions,
    PerCall,
    Busiest,
}

impl Column {
    fn width(self) -> u16 {
        match self {
            Column::Pid => 7,
            Column::Comm => 15,
            Column::Container => 16,
            Column::Verdict => 9,
            Column::Share => 9,
            Column::Copied => 8,
            Column::ZeroCopy => 9,
            Column::Transitions => 7,
            Column::PerCall => 6,
            Column::Busiest => 10,
        }
    }

    fn title(self, show: Show, rows: Rows) -> &'static str {
        let rates = show == Show::Rates;
        let containers = rows == Rows::Containers;
        match self {
            Column::Pid if containers => "PROCS",
            Column::Pid => "PID",
            Column::Comm if containers => "CONTAINER",
            Column::Comm => "COMM",
            Column::Container => "CONTAINER",
            Column::Verdict => "VERDICT",
            Column::Share => "ZC%",
            Column::Copied if rates => "COPIED/s",
            Column::Copied => "COPIED",
            Column::ZeroCopy if rates => "ZERO-CP/s",
            Column::ZeroCopy => "ZERO-CP",
            Column::Transitions if rates => "TRANS/s",
            Column::Transitions => "TRANS",
            Column::PerCall => "B/CALL",
            Column::Busiest => "BUSIEST",
        }
    }

    fn sorted_by(self, sort: SortKey) -> bool {
        matches!(
            (self, sort),
            (Column::Pid, SortKey::Pid)
                | (Column::Comm, SortKey::Comm)
                | (Column::Share, SortKey::Share)
                | (Column::Copied, SortKey::Copied | SortKey::Moved)
                | (Column::ZeroCopy, SortKey::ZeroCopy | SortKey::Moved)
                | (Column::Transitions, SortKey::Transitions)
        )
    }

    fn right_aligned(self) -> bool {
        !matches!(
            self,
            Column::Comm | Column::Container | Column::Verdict | Column::Share | Column::Busiest
        )
    }
}

/// The columns that fit `width`, and the name column's width; `container` asks for the
/// CONTAINER column.
fn layout(width: u16, container: bool) -> (Vec<Column>, u16) {
    use Column::*;
    let mut columns = vec![Pid, Comm];
    if container {
        columns.push(Container);
    }
    columns.extend([
        Verdict,
        Share,
        Copied,
        ZeroCopy,
        Transitions,
        PerCall,
        Busiest,
    ]);
    // Dropped in this order when the name would get narrower than MIN_COMM.
    for optional in [PerCall, Busiest, Container] {
        if comm_width(&columns, width) >= MIN_COMM {
            break;
        }
        columns.retain(|&c| c != optional);
    }
    let comm = comm_width(&columns, width).clamp(4, Comm.width());
    (columns, comm)
}

fn comm_width(columns: &[Column], width: u16) -> u16 {
    let others: u16 = columns
        .iter()
        .filter(|&&c| c != Column::Comm)
        .map(|c| c.width())
        .sum();
    let spacing = columns.len().saturating_sub(1) as u16;
    width.saturating_sub(others + spacing)
}

pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let container_column = app.rows_are == Rows::Processes && app.has_containers();
    let (columns, comm) = layout(area.width, container_column);
    let visible = app.visible();
    let selected = app.selected_index(&visible);
    let header = Row::new(columns.iter().map(|&c| {
        let title = c.title(app.show, app.rows_are);
        let cell = if c.right_aligned() {
            Line::from(title).right_aligned()
        } else {
            Line::from(title)
        };
        let style = if c.sorted_by(app.sort) {
            Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
        } else {
            Style::new().add_modifier(Modifier::BOLD)
        };
        Cell::from(cell).style(style)
    }));
    // Keep the selection in view: scroll just enough, no state kept between frames.
    let room = usize::from(area.height.saturating_sub(1)).max(1);
    let offset = selected.map_or(0, |s| (s + 1).saturating_sub(room));
    let rows = visible
        .iter()
        .enumerate()
        .skip(offset)
        .take(room)
        .map(|(i, (row, figures))| {
            let mut style = if row.exited {
                Style::new().fg(Color::DarkGray)
            } else {
                Style::new()
            };
            if Some(i) == selected {
                style = style.add_modifier(Modifier::REVERSED);
            }
            Row::new(columns.iter().map(|&c| cell(c, row, figures))).style(style)
        });
    let widths = columns
        .iter()
        .map(|&c| Constraint::Length(if c == Column::Comm { comm } else { c.width() }));
    Table::new(rows, widths)
        .header(header)
        .column_spacing(1)
        .render(area, buf);

    if visible.is_empty() && area.height > 1 {
        let why = if app.samples == 0 {
            "waiting for the first refresh..."
        } else if !app.filter.is_empty() && app.rows_are == Rows::Containers {
            "no container matches the filter"
        } else if !app.filter.is_empty() {
            "no process matches the filter"
        } else {
            "no process has made a data-path syscall yet"
        };
        let line = Rect {
            y: area.y + 1,
            height: 1,
            ..area
        };
        Paragraph::new(Line::from(format!(" ({why})")).dark_gray()).render(line, buf);
    }
}

fn cell<'a>(column: Column, row: &'a ProcessRow, f: &Figures) -> Cell<'a> {
    let right = |text: String| Cell::from(Line::from(text).right_aligned());
    match column {
        Column::Pid => right(row.pid.to_string()),
        Column::Comm => Cell::from(row.comm.as_str()),
        Column::Container => Cell::from(
            row.container
                .as_deref()
                .map_or("-".to_string(), wording::container_label),
        ),
        // Nothing moves after exit: the verdict says so instead of `idle`.
        Column::Verdict if row.exited && f.verdict == Verdict::Idle => {
            Cell::from("exited").fg(Color::DarkGray)
        }
        Column::Verdict => {
            let color = verdict_color(f.verdict);
            Cell::from(Span::styled(f.verdict.as_str(), Style::new().fg(color)))
        }
        Column::Share => match f.ratio {
            Some(ratio) => {
                let (filled, empty) = format::bar(ratio, BAR);
                Cell::from(Line::from(vec![
                    Span::styled(filled, Style::new().fg(Color::Green)),
                    Span::styled(empty, Style::new().fg(Color::DarkGray)),
                    Span::raw(format!(" {:>3.0}%", ratio * 100.0)),
                ]))
            }
            None => Cell::from(format!("{}    -", "·".repeat(BAR))).fg(Color::DarkGray),
        },
        Column::Copied => right(human::bytes_compact(f.copied)),
        Column::ZeroCopy => right(human::bytes_compact(f.zero_copy)),
        Column::Transitions => right(human::count_compact(f.transitions)),
        Column::PerCall => right(f.bytes_per_call.map_or("-".into(), human::bytes_compact)),
        Column::Busiest => Cell::from(f.busiest.unwrap_or("-")),
    }
}

pub fn verdict_color(verdict: Verdict) -> Color {
    match verdict {
        Verdict::ZeroCopy => Color::Green,
        Verdict::Mixed => Color::Yellow,
        Verdict::Copying => Color::Red,
        Verdict::Idle => Color::DarkGray,
    }
}
