//! The dashboard's state and the only two ways it changes: `App::ingest` takes a new snapshot,
//! `update` applies an `Action`. Both are pure (no terminal, no kernel, no clock: time comes in
//! as an argument), so every change is unit-tested.
//!
//! Rates are differences between consecutive snapshots (the model's `deltas`, which follows
//! each process across snapshots and its exit) divided by the time between them. Processes
//! that exit keep their final counts (the collector's exit records); they stay listed, greyed,
//! for `EXITED_LINGER`, then leave the table for good (they still count in the machine-wide
//! totals). The collector keeps only the last `EXITED_ROWS` exits one by one and
//! folds older ones into per-command totals; the header says how many were folded. So the
//! dashboard's memory is the same whatever the churn.

use std::{
    collections::{HashMap, VecDeque},
    time::Duration,
};

use crate::{
    analysis::Analysis,
    model::{
        deltas::{Deltas, Followed},
        rates::per_second,
        Cost, Verdict,
    },
    output::wording,
    snapshot::{Dropped, ProcessCounters, Snapshot},
};

/// Throughput samples kept per process for the sparkline: 5 minutes at the default interval.
pub const HISTORY: usize = 300;
/// How long an exited process stays in the table.
pub const EXITED_LINGER: Duration = Duration::from_secs(10);
/// Exited processes the collector keeps one by one for the table; under heavy churn only the
/// most recent of those that exited within `EXITED_LINGER` are listed.
pub const EXITED_ROWS: usize = 256;
/// Longest filter text kept.
const FILTER_MAX: usize = 32;

/// What a key asks for (see `keys`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    None,
    Quit,
    Up,
    Down,
    PageUp,
    PageDown,
    First,
    Last,
    ToggleDetail,
    CycleSort,
    StartFilter,
    FilterChar(char),
    FilterBackspace,
    /// Keep the filter and stop editing it.
    FilterAccept,
    /// Clear the filter and stop editing it.
    FilterCancel,
    TogglePause,
    ToggleTotals,
    ToggleHelp,
    /// One row per container (and one for the host) instead of one per process.
    ToggleContainers,
}

/// What a row of the table is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rows {
    Processes,
    /// One per container, its processes added up, and one for the host's processes.
    Containers,
}

/// How keys are read right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputMode {
    Normal,
    Filter,
    Help,
}

/// Rates over the last interval, or totals since attach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Show {
    Rates,
    Totals,
}

/// The sort column; `s` cycles through them in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortKey {
    /// Copied plus zero-copy bytes, largest first.
    Moved,
    Copied,
    ZeroCopy,
    Transitions,
    /// Zero-copy share, highest first.
    Share,
    Pid,
    Comm,
}

impl SortKey {
    pub fn next(self) -> SortKey {
        match self {
            SortKey::Moved => SortKey::Copied,
            SortKey::Copied => SortKey::ZeroCopy,
            SortKey::ZeroCopy => SortKey::Transitions,
            SortKey::Transitions => SortKey::Share,
            SortKey::Share => SortKey::Pid,
            SortKey::Pid => SortKey::Comm,
            SortKey::Comm => SortKey::Moved,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SortKey::Moved => "moved",
            SortKey::Copied => "copied",
            SortKey::ZeroCopy => "zero-copy",
            SortKey::Transitions => "transitions",
            SortKey::Share => "zero-copy %",
            SortKey::Pid => "pid",
            SortKey::Comm => "comm",
        }
    }
}

/// Bytes per second through each path during one sample.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Throughput {
    pub copied: u64,
    pub zero_copy: u64,
}

/// What the dashboard keeps of each process it follows, beside its counts (`Followed`).
#[derive(Clone, Debug)]
pub struct RowView {
    /// The model's analysis of the totals: the detail pane's flows and finding.
    pub analysis: Analysis,
    /// The cost of the delta: the rates.
    pub rate: Cost,
    /// Oldest first, at most `HISTORY`.
    pub history: VecDeque<Throughput>,
}

impl Default for RowView {
    /// A process just seen: nothing counted yet.
    fn default() -> Self {
        RowView {
            analysis: Analysis::of(&ProcessCounters::default()),
            rate: Cost::default(),
            history: VecDeque::new(),
        }
    }
}

/// One process as the dashboard follows it: its id (what the selection follows), pid, name,
/// totals and delta, and the dashboard's `RowView` of it. In the containers' table a row is a
/// container: `comm` its label, `pid` its live processes (see `App::ingest`).
pub type Row = Followed<RowView>;

/// The label of the host's row in the containers' table.
pub const HOST_ROW: &str = "(host)";

/// What the table shows of a row in the current mode: per second (rates) or since attach.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Figures {
    pub copied: f64,
    pub zero_copy: f64,
    pub transitions: f64,
    pub ratio: Option<f64>,
    pub verdict: Verdict,
    /// Bytes moved per call.
    pub bytes_per_call: Option<f64>,
    /// The syscall that moved the most bytes (most calls when none moved any).
    pub busiest: Option<&'static str>,
}

/// The whole dashboard.
#[derive(Clone, Debug)]
pub struct App {
    /// The configured refresh interval.
    pub interval: Duration,
    /// Since attach, at the last snapshot.
    pub elapsed: Duration,
    /// Length of the last sample (the time between the last two snapshots).
    pub sample: Duration,
    /// Snapshots taken so far.
    pub samples: u64,
    pub dropped: Dropped,
    /// Exited processes folded into per-command totals (no row of their own).
    pub folded: u64,
    pub show: Show,
    pub sort: SortKey,
    pub filter: String,
    pub editing_filter: bool,
    pub paused: bool,
    pub help: bool,
    pub detail: bool,
    pub quit: bool,
    pub rows_are: Rows,
    /// Every process in the table (the model follows them from snapshot to snapshot).
    rows: Deltas<RowView>,
    /// One row per container (and the host), rebuilt from the model's container totals at
    /// each snapshot; their views (histories) carried over by id.
    container_rows: Vec<Row>,
    selected: Option<u64>,
}

impl App {
    pub fn new(interval: Duration) -> App {
        App {
            interval,
            elapsed: Duration::ZERO,
            sample: Duration::ZERO,
            samples: 0,
            dropped: Default::default(),
            folded: 0,
            show: Show::Rates,
            sort: SortKey::Moved,
            filter: String::new(),
            editing_filter: false,
            paused: false,
            help: false,
            detail: false,
            quit: false,
            rows_are: Rows::Processes,
            rows: Deltas::default(),
            container_rows: Vec::new(),
            selected: None,
        }
    }

    /// Takes a snapshot made `elapsed` after attach.
    pub fn ingest(&mut self, snapshot: Snapshot, elapsed: Duration) {
        self.sample = elapsed.saturating_sub(self.elapsed);
        self.elapsed = elapsed;
        self.samples += 1;
        self.dropped = snapshot.dropped;
        self.folded = snapshot.folded();
        let seconds = self.sample.as_secs_f64();
        self.rows.advance(snapshot, elapsed, EXITED_LINGER, |row| {
            let view = &mut row.view;
            view.analysis = Analysis::of(&row.totals);
            view.rate = Cost::of(&row.delta);
            push_sample(
                &mut view.history,
                Throughput {
                    copied: per_second(view.rate.copied_bytes, seconds) as u64,
                    zero_copy: per_second(view.rate.zero_copy_bytes, seconds) as u64,
                },
            );
        });
        self.rebuild_container_rows(seconds);
    }

    /// The containers' rows from the model's container totals, each keeping its history.
    fn rebuild_container_rows(&mut self, seconds: f64) {
        let mut previous: HashMap<u64, RowView> = std::mem::take(&mut self.container_rows)
            .into_iter()
            .map(|row| (row.id, row.view))
            .collect();
        self.container_rows = self
            .rows
            .containers()
            // The host's row only when some process outside containers made a call.
            .filter(|c| c.container.is_some() || c.totals.rows().any(|(_, _, n)| n.calls > 0))
            .map(|c| {
                let mut view = previous.remove(&c.id).unwrap_or_default();
                view.analysis = Analysis::of(&c.totals);
                view.rate = Cost::of(&c.delta);
                push_sample(
                    &mut view.history,
                    Throughput {
                        copied: per_second(view.rate.copied_bytes, seconds) as u64,
                        zero_copy: per_second(view.rate.zero_copy_bytes, seconds) as u64,
                    },
                );
                let label = c
                    .container
                    .as_deref()
                    .map_or(HOST_ROW.to_string(), wording::container_label);
                Followed::aggregate(
                    c.id,
                    c.live as u32,
                    label,
                    c.container.clone(),
                    c.totals.clone(),
                    c.delta.clone(),
                    view,
                )
            })
            .collect();
    }

    /// Whether any process of the table runs in a container.
    pub fn has_containers(&self) -> bool {
        self.rows.followed().any(|row| row.container.is_some())
            || self
                .container_rows
                .iter()
                .any(|row| row.container.is_some())
    }

    /// The rows of the current table.
    fn current_rows(&self) -> Box<dyn Iterator<Item = &Row> + '_> {
        match self.rows_are {
            Rows::Processes => Box::new(self.rows.followed()),
            Rows::Containers => Box::new(self.container_rows.iter()),
        }
    }

    pub fn input_mode(&self) -> InputMode {
        if self.editing_filter {
            InputMode::Filter
        } else if self.help {
            InputMode::Help
        } else {
            InputMode::Normal
        }
    }

    /// Live and exited processes in the table.
    pub fn process_counts(&self) -> (usize, usize) {
        let (mut live, mut exited) = (0, 0);
        for row in self.rows.followed() {
            if row.exited {
                exited += 1;
            } else {
                live += 1;
            }
        }
        (live, exited)
    }

    /// A row's figures in the current mode, from the costs computed when it was ingested.
    pub fn row_figures(&self, row: &Row) -> Figures {
        match self.show {
            Show::Rates => self.figures(&row.view.rate, &row.delta),
            Show::Totals => self.figures(&row.view.analysis.cost, &row.totals),
        }
    }

    /// The whole machine's figures in the current mode.
    pub fn machine_figures(&self) -> Figures {
        let counters = match self.show {
            Show::Rates => self.rows.machine_delta(),
            Show::Totals => self.rows.machine_totals(),
        };
        self.figures(&Cost::of(counters), counters)
    }

    /// What the table shows of `cost` (of `counters`) in the current mode.
    fn figures(&self, cost: &Cost, counters: &ProcessCounters) -> Figures {
        let seconds = self.sample.as_secs_f64();
        let per = |n: u64| match self.show {
            Show::Rates => per_second(n, seconds),
            Show::Totals => n as f64,
        };
        let busiest = counters
            .rows()
            .filter(|(_, _, c)| c.calls > 0)
            .max_by_key(|(_, _, c)| (c.bytes, c.calls))
            .map(|(_, path, _)| path.label());
        Figures {
            copied: per(cost.copied_bytes),
            zero_copy: per(cost.zero_copy_bytes),
            transitions: per(cost.transitions),
            ratio: cost.zero_copy_ratio(),
            verdict: cost.verdict(),
            bytes_per_call: (cost.calls + cost.ops > 0).then(|| {
                let bytes = counters.rows().map(|(_, _, c)| c.bytes).sum::<u64>();
                bytes as f64 / (cost.calls + cost.ops) as f64
            }),
            busiest,
        }
    }

    /// The rows the table shows, filtered and sorted, with their figures.
    pub fn visible(&self) -> Vec<(&Row, Figures)> {
        let needle = self.filter.to_lowercase();
        let mut rows: Vec<(&Row, Figures)> = self
            .current_rows()
            .filter(|row| {
                needle.is_empty()
                    || row.comm.to_lowercase().contains(&needle)
                    || row.pid.to_string() == needle
                    || row.container.as_ref().is_some_and(|c| {
                        wording::container_label(c).to_lowercase().contains(&needle)
                    })
            })
            .map(|row| (row, self.row_figures(row)))
            .collect();
        let moved = |f: &Figures| f.copied + f.zero_copy;
        rows.sort_by(|(ra, a), (rb, b)| {
            let order = match self.sort {
                SortKey::Moved => moved(b).total_cmp(&moved(a)),
                SortKey::Copied => b.copied.total_cmp(&a.copied),
                SortKey::ZeroCopy => b.zero_copy.total_cmp(&a.zero_copy),
                SortKey::Transitions => b.transitions.total_cmp(&a.transitions),
                SortKey::Share => b.ratio.unwrap_or(-1.0).total_cmp(&a.ratio.unwrap_or(-1.0)),
                SortKey::Pid => ra.pid.cmp(&rb.pid),
                SortKey::Comm => ra.comm.cmp(&rb.comm),
            };
            // Live before exited, then by pid: a stable order among equals keeps rows still.
            order
                .then(ra.exited.cmp(&rb.exited))
                .then(ra.pid.cmp(&rb.pid))
                .then(ra.id.cmp(&rb.id))
        });
        rows
    }

    /// Index into `visible()` of the selected row: the one chosen, else the first.
    pub fn selected_index(&self, visible: &[(&Row, Figures)]) -> Option<usize> {
        if visible.is_empty() {
            return None;
        }
        let chosen = self
            .selected
            .and_then(|id| visible.iter().position(|(row, _)| row.id == id));
        Some(chosen.unwrap_or(0))
    }

    fn move_selection(&mut self, by: isize) {
        let visible = self.visible();
        let Some(index) = self.selected_index(&visible) else {
            return;
        };
        let last = visible.len() - 1;
        let target = index.saturating_add_signed(by).min(last);
        self.selected = Some(visible[target].0.id);
    }
}

/// Applies one action.
pub fn update(app: &mut App, action: Action) {
    match action {
        Action::None => {}
        Action::Quit => app.quit = true,
        Action::Up => app.move_selection(-1),
        Action::Down => app.move_selection(1),
        Action::PageUp => app.move_selection(-10),
        Action::PageDown => app.move_selection(10),
        Action::First => app.move_selection(isize::MIN),
        Action::Last => app.move_selection(isize::MAX),
        Action::ToggleDetail => app.detail = !app.detail,
        Action::CycleSort => app.sort = app.sort.next(),
        Action::StartFilter => app.editing_filter = true,
        Action::FilterChar(c) => {
            if app.filter.chars().count() < FILTER_MAX && !c.is_control() {
                app.filter.push(c);
            }
        }
        Action::FilterBackspace => {
            app.filter.pop();
        }
        Action::FilterAccept => app.editing_filter = false,
        Action::FilterCancel => {
            app.editing_filter = false;
            app.filter.clear();
        }
        Action::TogglePause => app.paused = !app.paused,
        Action::ToggleTotals => {
            app.show = match app.show {
                Show::Rates => Show::Totals,
                Show::Totals => Show::Rates,
            }
        }
        Action::ToggleHelp => app.help = !app.help,
        Action::ToggleContainers => {
            app.rows_are = match app.rows_are {
                Rows::Processes => Rows::Containers,
                Rows::Containers => Rows::Processes,
            };
        }
    }
}

fn push_sample(history: &mut VecDeque<Throughput>, sample: Throughput) {
    if history.len() == HISTORY {
        history.pop_front();
    }
    history.push_back(sample);
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use crate::snapshot::ProcessRecord;

    /// Counters as the kernel records them for a typical server (fd kinds included).
    pub fn counters(entries: &[(&str, u64, u64)]) -> ProcessCounters {
        crate::snapshot::fixtures::served(entries)
    }

    pub fn record(
        pid: u32,
        comm: &str,
        exited: bool,
        entries: &[(&str, u64, u64)],
    ) -> ProcessRecord {
        ProcessRecord {
            pid,
            ppid: 1,
            comm: comm.into(),
            exited,
            // Test exits of distinct pids are distinct exits; the same pid's the same.
            seq: if exited { u64::from(pid) } else { 0 },
            group: 0,
            container: None,
            counters: counters(entries),
        }
    }

    pub fn snapshot(processes: Vec<ProcessRecord>) -> Snapshot {
        Snapshot {
            processes,
            groups: vec![],
            groups_overflowed: 0,
            dropped: Default::default(),
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn rates_are_differences_over_the_interval() {
        let mut app = App::new(secs(1));
        app.ingest(
            snapshot(vec![record(7, "nginx", false, &[("sendfile64", 1, 1000)])]),
            secs(1),
        );
        app.ingest(
            snapshot(vec![record(7, "nginx", false, &[("sendfile64", 5, 9000)])]),
            secs(3),
        );
        let visible = app.visible();
        assert_eq!(visible.len(), 1);
        let (row, f) = visible[0];
        assert_eq!((row.pid, row.comm.as_str()), (7, "nginx"));
        assert_eq!(app.sample, secs(2));
        assert_eq!(f.zero_copy, 4000.0);
        assert_eq!(f.transitions, 4.0);
        assert_eq!(f.verdict, Verdict::ZeroCopy);
        assert_eq!(f.busiest, Some("sendfile64"));
        assert_eq!(f.bytes_per_call, Some(2000.0));
        assert_eq!(
            row.view.history,
            [
                Throughput {
                    copied: 0,
                    zero_copy: 1000
                },
                Throughput {
                    copied: 0,
                    zero_copy: 4000
                }
            ]
        );
        update(&mut app, Action::ToggleTotals);
        let (_, f) = app.visible()[0];
        assert_eq!((f.zero_copy, f.transitions), (9000.0, 10.0));
    }

    #[test]
    fn empty_and_zero_interval_give_zero_not_infinity() {
        let mut app = App::new(secs(1));
        app.ingest(snapshot(vec![]), secs(0));
        assert!(app.visible().is_empty());
        assert_eq!(app.selected_index(&app.visible()), None);
        update(&mut app, Action::Down);
        app.ingest(
            snapshot(vec![record(1, "a", false, &[("read", 1, 10)])]),
            secs(0),
        );
        let (_, f) = app.visible()[0];
        assert_eq!(f.copied, 0.0);
    }

    #[test]
    fn counters_going_backwards_saturate() {
        let mut app = App::new(secs(1));
        app.ingest(
            snapshot(vec![record(1, "a", false, &[("read", 9, u64::MAX)])]),
            secs(1),
        );
        app.ingest(
            snapshot(vec![record(1, "a", false, &[("read", 3, 5)])]),
            secs(2),
        );
        let (row, _) = app.visible()[0];
        assert_eq!(row.delta, ProcessCounters::default());
    }

    #[test]
    fn an_exit_continues_the_live_row_then_lingers_and_goes() {
        let mut app = App::new(secs(1));
        app.ingest(
            snapshot(vec![record(5, "cat", false, &[("read", 1, 100)])]),
            secs(1),
        );
        let id = app.visible()[0].0.id;
        app.ingest(
            snapshot(vec![record(5, "cat", true, &[("read", 3, 300)])]),
            secs(2),
        );
        let (row, f) = app.visible()[0];
        assert!(row.exited);
        assert_eq!(row.id, id, "same row, so the selection follows it");
        assert_eq!(f.copied, 200.0, "only the last burst, not the whole life");
        assert_eq!(app.process_counts(), (0, 1));
        app.ingest(
            snapshot(vec![record(5, "cat", true, &[("read", 3, 300)])]),
            secs(11),
        );
        assert_eq!(app.visible().len(), 1);
        app.ingest(
            snapshot(vec![record(5, "cat", true, &[("read", 3, 300)])]),
            secs(12),
        );
        assert!(app.visible().is_empty(), "gone after EXITED_LINGER");
        // It still counts machine-wide, and a new process reusing the pid starts afresh.
        assert_eq!(app.rows.machine_totals().syscall(0).bytes, 300);
        app.ingest(
            snapshot(vec![
                record(5, "cat", true, &[("read", 3, 300)]),
                record(5, "dd", false, &[("read", 1, 50)]),
            ]),
            secs(13),
        );
        let visible = app.visible();
        assert_eq!(visible.len(), 1);
        assert_eq!(
            (visible[0].0.comm.as_str(), visible[0].1.copied),
            ("dd", 50.0)
        );
    }

    #[test]
    fn a_process_missing_for_one_snapshot_is_not_counted_twice() {
        let mut app = App::new(secs(1));
        app.ingest(
            snapshot(vec![record(5, "cat", false, &[("read", 1, 100)])]),
            secs(1),
        );
        app.ingest(snapshot(vec![]), secs(2));
        assert_eq!(app.visible().len(), 1);
        app.ingest(
            snapshot(vec![record(5, "cat", true, &[("read", 2, 150)])]),
            secs(3),
        );
        let (_, f) = app.visible()[0];
        assert_eq!(f.copied, 50.0);
        for s in 4..=7 {
            app.ingest(snapshot(vec![]), secs(s));
        }
        // Exit records never vanish; a live row that does goes after a few snapshots (the model's grace).
        app.ingest(
            snapshot(vec![record(9, "x", false, &[("read", 1, 1)])]),
            secs(8),
        );
        for s in 9..=12 {
            app.ingest(snapshot(vec![]), secs(s));
        }
        assert!(app.visible().iter().all(|(row, _)| row.pid != 9));
    }

    #[test]
    fn sort_filter_and_selection() {
        let mut app = App::new(secs(1));
        app.ingest(
            snapshot(vec![
                record(10, "nginx", false, &[("sendfile64", 1, 5000)]),
                record(
                    20,
                    "python3",
                    false,
                    &[("read", 4, 1000), ("write", 4, 1000)],
                ),
                record(30, "nginx", false, &[("read", 1, 9000)]),
            ]),
            secs(1),
        );
        let pids = |app: &App| app.visible().iter().map(|(r, _)| r.pid).collect::<Vec<_>>();
        assert_eq!(pids(&app), [30, 10, 20]);
        update(&mut app, Action::CycleSort);
        assert_eq!(app.sort, SortKey::Copied);
        assert_eq!(pids(&app), [30, 20, 10]);
        update(&mut app, Action::CycleSort);
        update(&mut app, Action::CycleSort);
        assert_eq!(app.sort, SortKey::Transitions);
        assert_eq!(pids(&app), [20, 10, 30]);

        update(&mut app, Action::Down);
        assert_eq!(app.selected_index(&app.visible()), Some(1));
        update(&mut app, Action::Last);
        assert_eq!(app.selected_index(&app.visible()), Some(2));
        update(&mut app, Action::Down);
        assert_eq!(app.selected_index(&app.visible()), Some(2));
        update(&mut app, Action::First);
        assert_eq!(app.selected_index(&app.visible()), Some(0));

        update(&mut app, Action::StartFilter);
        assert_eq!(app.input_mode(), InputMode::Filter);
        for c in "NGI".chars() {
            update(&mut app, Action::FilterChar(c));
        }
        update(&mut app, Action::FilterAccept);
        assert_eq!(
            (app.input_mode(), pids(&app)),
            (InputMode::Normal, vec![10, 30])
        );
        update(&mut app, Action::StartFilter);
        update(&mut app, Action::FilterCancel);
        assert_eq!(pids(&app).len(), 3);
        update(&mut app, Action::StartFilter);
        update(&mut app, Action::FilterChar('2'));
        update(&mut app, Action::FilterChar('0'));
        update(&mut app, Action::FilterBackspace);
        update(&mut app, Action::FilterChar('0'));
        assert_eq!(pids(&app), [20], "a pid matches too");
    }

    #[test]
    fn toggles() {
        let mut app = App::new(secs(1));
        for action in [
            Action::TogglePause,
            Action::ToggleDetail,
            Action::ToggleHelp,
        ] {
            update(&mut app, action);
        }
        assert!(app.paused && app.detail && app.help);
        assert_eq!(app.input_mode(), InputMode::Help);
        update(&mut app, Action::ToggleHelp);
        update(&mut app, Action::Quit);
        assert!(!app.help && app.quit);
    }

    #[test]
    fn folded_exits_count_machine_wide_and_lingered_ones_never_return() {
        use crate::snapshot::groups::{Group, GroupKey};
        let folded = |exited: u64, bytes: u64| Group {
            key: GroupKey {
                comm: "cc1".into(),
                ..GroupKey::default()
            },
            container: None,
            exited,
            counters: counters(&[("read", exited, bytes)]),
        };
        let mut app = App::new(secs(1));
        let mut first = snapshot(vec![record(3, "cc1", true, &[("read", 1, 100)])]);
        first.groups = vec![folded(10, 1000)];
        app.ingest(first, secs(1));
        assert_eq!(app.folded, 10);
        assert_eq!(app.process_counts(), (0, 1));
        assert_eq!(app.rows.machine_totals().syscall(0).bytes, 1100);
        // The exit of pid 3 is folded in turn, with 40 more: no row, but in the rate.
        let mut second = snapshot(vec![]);
        second.groups = vec![folded(51, 5100)];
        app.ingest(second, secs(2));
        assert_eq!((app.folded, app.process_counts()), (51, (0, 0)));
        assert_eq!(app.rows.machine_delta().syscall(0).bytes, 4000);
        let f = app.machine_figures();
        assert_eq!(f.copied, 4000.0);

        // An exit that lingered its time is not listed again while the collector keeps it.
        let exit = || snapshot(vec![record(7, "cat", true, &[("read", 1, 5)])]);
        app.ingest(exit(), secs(3));
        app.ingest(exit(), secs(13));
        assert!(app.visible().is_empty());
        app.ingest(exit(), secs(14));
        assert!(app.visible().is_empty(), "retired for good");
        assert_eq!(app.rows.retired_through(), 7);
    }
}
