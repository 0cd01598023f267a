//! The help overlay: the keys (as `keys` binds them) and what the columns mean.

use ratatui::{
    buffer::Buffer,
    layout::{Constraint, Flex, Layout, Rect},
    style::{Color, Style, Stylize},
    text::{Line, Span},
    widgets::{Block, Clear, Paragraph, Widget},
};

const KEYS: [(&str, &str); 11] = [
    ("↑ ↓  j k", "move (PgUp PgDn, g G: page, first, last)"),
    ("Enter", "detail of the selected process"),
    ("s", "cycle the sort column"),
    ("/", "filter by name or pid (Enter keep, Esc clear)"),
    ("space", "pause / resume refreshing"),
    ("t", "rates per second / totals since attach"),
    ("c", "one row per container / per process"),
    ("?", "this help (Esc closes)"),
    ("q Esc ^C", "quit (detaches every program)"),
    ("", ""),
    ("ZC%", "share of bytes moved without a CPU copy"),
];

pub fn render(area: Rect, buf: &mut Buffer) {
    let height = KEYS.len() as u16 + 4;
    let [column] = Layout::horizontal([Constraint::Length(64)])
        .flex(Flex::Center)
        .areas(area);
    let [popup] = Layout::vertical([Constraint::Length(height)])
        .flex(Flex::Center)
        .areas(column);
    let mut lines: Vec<Line> = KEYS
        .iter()
        .map(|(key, what)| {
            Line::from(vec![
                Span::styled(format!(" {key:<10}"), Style::new().bold()),
                Span::raw(*what),
            ])
        })
        .collect();
    lines.push(Line::from(vec![
        Span::raw(" verdicts  "),
        Span::styled("zero-copy", Style::new().fg(Color::Green)),
        Span::raw(" ≥90%  "),
        Span::styled("mixed", Style::new().fg(Color::Yellow)),
        Span::raw("  "),
        Span::styled("copying", Style::new().fg(Color::Red)),
        Span::raw(" ≤10%  "),
        Span::styled("idle", Style::new().fg(Color::DarkGray)),
    ]));
    lines.push(Line::from(" exited processes stay greyed for 10 s").dark_gray());
    Clear.render(popup, buf);
    Paragraph::new(lines)
        .block(Block::bordered().title(" keys "))
        .render(popup, buf);
}
