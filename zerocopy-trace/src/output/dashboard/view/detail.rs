//! The selected process up close: its syscalls and io_uring operations, its throughput over
//! time, and the classic read+write versus sendfile picture with its own numbers.

use ratatui::{
    buffer::Buffer,
    layout::{Constraint, Layout, Rect},
    style::{Color, Modifier, Style, Stylize},
    text::{Line, Span},
    widgets::{Block, Cell, Paragraph, Row, Sparkline, Table, Widget},
};

use super::table::verdict_color;
use crate::{
    model::{rates::per_second, Cost},
    output::{
        dashboard::app::{App, Row as ProcessRow, Rows},
        human, wording,
    },
    snapshot::{path, ProcessCounters},
};

/// The ids (syscalls, then io_uring operations) the process used.
fn used(totals: &ProcessCounters) -> Vec<usize> {
    totals
        .rows()
        .filter(|(_, _, c)| c.calls > 0)
        .map(|(id, _, _)| id)
        .collect()
}

/// Width of the sparklines' labels.
const LABEL: u16 = 18;
/// Lines besides the syscall and operation rows: borders (2), table header, sparklines (2),
/// picture (4), flows and finding (2).
const FIXED_LINES: u16 = 11;
/// Most syscall rows shown (a process rarely uses more).
const MAX_SYSCALL_ROWS: u16 = 8;

/// The height the pane wants for the selected process.
pub fn height(app: &App) -> u16 {
    let visible = app.visible();
    let used = app
        .selected_index(&visible)
        .map_or(0, |i| used(&visible[i].0.totals).len());
    FIXED_LINES + (used as u16).clamp(1, MAX_SYSCALL_ROWS)
}

pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let visible = app.visible();
    let Some((row, figures)) = app.selected_index(&visible).map(|i| visible[i]) else {
        Paragraph::new(" (no process selected)")
            .block(Block::bordered().title(" detail "))
            .render(area, buf);
        return;
    };
    let containers = app.rows_are == Rows::Containers;
    let heading = if containers {
        let processes = if row.pid == 1 { "process" } else { "processes" };
        format!(" {} ({} live {processes}) ", row.comm, row.pid)
    } else {
        match row.container.as_deref() {
            Some(c) => format!(
                " pid {} {} ({}) ",
                row.pid,
                row.comm,
                wording::container_phrase(c)
            ),
            None => format!(" pid {} {} ", row.pid, row.comm),
        }
    };
    let mut title = vec![
        Span::raw(heading).bold(),
        Span::styled(
            figures.verdict.as_str(),
            Style::new().fg(verdict_color(figures.verdict)),
        ),
    ];
    if row.exited {
        title.push(Span::raw(" (exited)").dark_gray());
    }
    title.push(Span::raw(" "));
    let block = Block::bordered().title(Line::from(title));
    let inner = block.inner(area);
    block.render(area, buf);

    let used = used(&row.totals);
    // Sparklines (2), the picture (4) and flows and finding (2) keep their room; the syscall
    // table gets the rest, at least its header and one row.
    let table_rows = (used.len() as u16)
        .min(inner.height.saturating_sub(FIXED_LINES - 2))
        .clamp(1, MAX_SYSCALL_ROWS);
    let [syscalls, sparks, picture, flows] = Layout::vertical([
        Constraint::Length(table_rows + 1),
        Constraint::Length(2),
        Constraint::Length(4),
        Constraint::Length(2),
    ])
    .areas(inner);
    syscall_table(app, row, &used, syscalls, buf);
    sparklines(row, sparks, buf);
    let here = if containers { "all pids" } else { "this pid" };
    paths_picture(&row.view.analysis.cost, here, picture, buf);
    flows_and_finding(row, containers, flows, buf);
}

fn syscall_table(app: &App, row: &ProcessRow, used: &[usize], area: Rect, buf: &mut Buffer) {
    let seconds = app.sample.as_secs_f64();
    let right = |text: String| Cell::from(Line::from(text).right_aligned());
    let header = Row::new([
        Cell::from("SYSCALL / OP"),
        right("CALLS".into()),
        right("BYTES".into()),
        right("ERRORS".into()),
        right("NOW".into()),
    ])
    .add_modifier(Modifier::BOLD);
    let rows = used.iter().filter_map(|&i| {
        let (total, delta) = (row.totals.get(i), row.delta.get(i));
        let p = path(i)?;
        Some(Row::new([
            Cell::from(p.label()),
            right(human::count(total.calls)),
            right(human::bytes(total.bytes)),
            right(human::count(total.errors)),
            right(format!(
                "{}/s",
                human::bytes_compact(per_second(delta.bytes, seconds))
            )),
        ]))
    });
    let widths = [
        Constraint::Length(23),
        Constraint::Length(11),
        Constraint::Length(10),
        Constraint::Length(7),
        Constraint::Length(8),
    ];
    Table::new(rows, widths)
        .header(header)
        .column_spacing(1)
        .render(area, buf);
}

/// Copied and zero-copy bytes per second, one line each, on one scale so they compare.
fn sparklines(row: &ProcessRow, area: Rect, buf: &mut Buffer) {
    let width = usize::from(area.width.saturating_sub(LABEL));
    let skip = row.view.history.len().saturating_sub(width);
    let copied: Vec<u64> = row
        .view
        .history
        .iter()
        .skip(skip)
        .map(|t| t.copied)
        .collect();
    let zero_copy: Vec<u64> = row
        .view
        .history
        .iter()
        .skip(skip)
        .map(|t| t.zero_copy)
        .collect();
    let max = copied
        .iter()
        .chain(&zero_copy)
        .copied()
        .max()
        .unwrap_or(0)
        .max(1);
    let latest = row.view.history.back().copied().unwrap_or_default();
    for (y, (label, now, data, color)) in [
        ("copied", latest.copied, copied, Color::Red),
        ("zero-copy", latest.zero_copy, zero_copy, Color::Green),
    ]
    .into_iter()
    .enumerate()
    {
        let line = Rect {
            y: area.y + y as u16,
            height: 1,
            ..area
        };
        if y as u16 >= area.height {
            break;
        }
        let [name, spark] =
            Layout::horizontal([Constraint::Length(LABEL), Constraint::Fill(1)]).areas(line);
        Paragraph::new(format!(
            "{label:<9}{:>6}/s ",
            human::bytes_compact(now as f64)
        ))
        .fg(color)
        .render(name, buf);
        Sparkline::default()
            .data(&data)
            .max(max)
            .style(Style::new().fg(color))
            .render(spark, buf);
    }
}

/// The classic per-chunk costs of the two paths, each with what this process did on it.
/// `here` names whose figures they are (`this pid`, `all pids` of a container).
fn paths_picture(paths: &Cost, here: &str, area: Rect, buf: &mut Buffer) {
    let here = |text: String| {
        Line::from(vec![
            Span::raw(format!("  {here}  ")).dark_gray(),
            Span::raw(text),
        ])
    };
    let ops = |n: u64| {
        if n > 0 {
            format!(" + {} io_uring ops", human::count(n))
        } else {
            String::new()
        }
    };
    let mut copy_line = format!(
        "{} calls{}, {} copied by the CPU, {} transitions",
        human::count(paths.copy_calls),
        ops(paths.copy_ops),
        human::bytes(paths.copied_bytes),
        human::count(paths.copy_calls.saturating_mul(2))
    );
    if paths.pinned_bytes > 0 {
        copy_line += &format!(
            ", {} pinned (zero-copy sends)",
            human::bytes(paths.pinned_bytes)
        );
    }
    if paths.direct_bytes > 0 {
        copy_line += &format!(", {} by DMA (O_DIRECT)", human::bytes(paths.direct_bytes));
    }
    let lines = vec![
        Line::from(vec![
            Span::styled("read+write", Style::new().fg(Color::Red).bold()),
            Span::raw("  4 copies (2 by the CPU), 4 transitions a chunk"),
        ]),
        here(copy_line),
        Line::from(vec![
            Span::styled("sendfile  ", Style::new().fg(Color::Green).bold()),
            Span::raw("  0 copies by the CPU, 2 transitions a chunk"),
        ]),
        here(format!(
            "{} calls{}, {} moved in the kernel, {} transitions",
            human::count(paths.kernel_calls),
            ops(paths.kernel_ops),
            human::bytes(paths.kernel_bytes),
            human::count(paths.kernel_calls.saturating_mul(2))
        )),
    ];
    Paragraph::new(lines).render(area, buf);
}

/// The process's largest flows since attach, and the finding they lead to.
fn flows_and_finding(row: &ProcessRow, container_row: bool, area: Rect, buf: &mut Buffer) {
    let flows = &row.view.analysis.flows;
    let summary = if flows.is_empty() {
        "none".to_string()
    } else {
        flows
            .iter()
            .take(3)
            .map(wording::flow)
            .collect::<Vec<_>>()
            .join("; ")
    };
    Paragraph::new(vec![
        Line::from(vec![Span::raw("flows ").bold(), Span::raw(summary)]),
        Line::from(if container_row {
            wording::group_finding(row.container.as_deref(), &row.view.analysis.finding)
        } else {
            wording::finding(
                &row.comm,
                row.pid,
                row.container.as_deref(),
                &row.view.analysis.finding,
            )
        })
        .cyan(),
    ])
    .render(area, buf);
}
