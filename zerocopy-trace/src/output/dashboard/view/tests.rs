//! Given counters, a given screen: the view rendered on ratatui's `TestBackend` and compared
//! line by line (text), plus the colours that carry meaning.

use std::time::Duration;

use ratatui::{backend::TestBackend, buffer::Buffer, style::Color, Terminal};
use zerocopy_trace_common::{drop_reason, DropCounters};

use crate::output::dashboard::app::{
    tests::{record, snapshot},
    update, Action, App,
};

fn render(app: &App, width: u16, height: u16) -> Buffer {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
    terminal
        .draw(|frame| frame.render_widget(app, frame.area()))
        .expect("draw");
    terminal.backend().buffer().clone()
}

fn lines(buffer: &Buffer) -> Vec<String> {
    let area = buffer.area;
    (0..area.height)
        .map(|y| {
            (0..area.width)
                .map(|x| buffer[(x, y)].symbol())
                .collect::<String>()
                .trim_end()
                .to_string()
        })
        .collect()
}

/// The first cell of `text` on line `y`.
fn find(buffer: &Buffer, y: u16, text: &str) -> (u16, u16) {
    let line = &lines(buffer)[usize::from(y)];
    let byte = line
        .find(text)
        .unwrap_or_else(|| panic!("{text:?} not on line {y}: {line:?}"));
    (line[..byte].chars().count() as u16, y)
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// nginx serving with sendfile, python relaying with read+write, and a mixed proxy.
fn busy_app() -> App {
    let mut app = App::new(secs(1));
    app.ingest(
        snapshot(vec![
            record(4121, "nginx", false, &[("sendfile64", 100, 100 << 20)]),
            record(
                880,
                "python3",
                false,
                &[("read", 10, 1 << 20), ("write", 10, 1 << 20)],
            ),
            record(
                77,
                "haproxy",
                false,
                &[("splice", 4, 4 << 20), ("recvfrom", 8, 2 << 20)],
            ),
        ]),
        secs(1),
    );
    app
}

#[test]
fn empty_before_the_first_refresh() {
    let app = App::new(secs(1));
    let screen = lines(&render(&app, 80, 8));
    assert_eq!(
        screen,
        [
            " copied 0 B/s   zero-copy 0 B/s (-)   transitions 0/s",
            " 0 processes   dropped 0   every 1s   up 0s   rates by moved",
            "    PID COMM           VERDICT   ZC%       COPIED/s ZERO-CP/s TRANS/s BUSIEST",
            " (waiting for the first refresh...)",
            "",
            "",
            "",
            " q quit  ↑↓ move  ⏎ detail  s sort  / filter  space pause  t totals  ? help",
        ]
    );
}

#[test]
fn one_process() {
    let mut app = App::new(secs(1));
    app.ingest(
        snapshot(vec![record(
            4121,
            "nginx",
            false,
            &[("sendfile64", 16, 1 << 20)],
        )]),
        secs(2),
    );
    let buffer = render(&app, 100, 6);
    assert_eq!(
        lines(&buffer),
        [
            " copied 0 B/s   zero-copy 512.0 KiB/s (100.0%)   transitions 16/s",
            " 1 process   dropped 0   every 1s   up 2s   rates by moved",
            "    PID COMM            VERDICT   ZC%       COPIED/s ZERO-CP/s TRANS/s B/CALL BUSIEST",
            "   4121 nginx           zero-copy ████ 100%       0B      512K      16    64K sendfile64",
            "",
            " q quit  ↑↓ move  ⏎ detail  s sort  / filter  space pause  t totals  ? help",
        ]
    );
    let verdict = find(&buffer, 3, "zero-copy");
    assert_eq!(buffer[verdict].fg, Color::Green);
}

#[test]
fn many_processes_sorted_and_scrolled_to_the_selection() {
    let mut app = App::new(secs(1));
    let processes = (1..=30)
        .map(|i| {
            record(
                1000 + i,
                &format!("worker{i}"),
                false,
                &[("read", 1, u64::from(i) * 1000)],
            )
        })
        .collect();
    app.ingest(snapshot(processes), secs(1));
    let screen = lines(&render(&app, 80, 10));
    assert_eq!(
        screen[1],
        " 30 processes   dropped 0   every 1s   up 1s   rates by moved"
    );
    // Largest movers first; 6 rows fit under the column titles.
    assert!(
        screen[3].starts_with("   1030 worker30       copying"),
        "{screen:#?}"
    );
    assert!(screen[8].starts_with("   1025 worker25"), "{screen:#?}");
    for _ in 0..10 {
        update(&mut app, Action::Down);
    }
    let screen = lines(&render(&app, 80, 10));
    // The selection (the 11th row) is the last one shown.
    assert!(screen[3].starts_with("   1025 worker25"), "{screen:#?}");
    assert!(screen[8].starts_with("   1020 worker20"), "{screen:#?}");
}

#[test]
fn narrow_80x24_keeps_every_column_but_bytes_per_call() {
    let mut app = busy_app();
    app.ingest(
        snapshot(vec![
            record(4121, "nginx", false, &[("sendfile64", 200, 200 << 20)]),
            record(
                880,
                "python3",
                false,
                &[("read", 20, 2 << 20), ("write", 20, 2 << 20)],
            ),
            record(
                77,
                "haproxy",
                false,
                &[("splice", 8, 8 << 20), ("recvfrom", 16, 4 << 20)],
            ),
            record(9, "zerocopy-trace-", true, &[("read", 1, 10)]),
        ]),
        secs(2),
    );
    let buffer = render(&app, 80, 24);
    let screen = lines(&buffer);
    assert_eq!(
        screen[..7],
        [
            " copied 4.0 MiB/s   zero-copy 102.0 MiB/s (97.1%)   transitions 266/s",
            " 3 processes +1 exited   dropped 0   every 1s   up 2s   rates by moved",
            "    PID COMM           VERDICT   ZC%       COPIED/s ZERO-CP/s TRANS/s BUSIEST",
            "   4121 nginx          zero-copy ████ 100%       0B      100M     200 sendfile64",
            "     77 haproxy        mixed     ██··  50%     2.0M      2.0M      24 splice",
            "    880 python3        copying   ····   0%     2.0M        0B      40 write",
            "      9 zerocopy-trace copying   ····   0%      10B        0B       2 read",
        ]
    );
    assert!(screen.iter().all(|l| l.chars().count() <= 80));
    assert_eq!(buffer[find(&buffer, 4, "mixed")].fg, Color::Yellow);
    assert_eq!(buffer[find(&buffer, 5, "copying")].fg, Color::Red);
    // Exited rows are grey whatever their verdict.
    assert_eq!(
        buffer[find(&buffer, 6, "zerocopy-trace")].fg,
        Color::DarkGray
    );
}

#[test]
fn dropped_counts_are_red() {
    let mut app = App::new(secs(1));
    let mut snap = snapshot(vec![]);
    snap.dropped[drop_reason::COUNTERS_FULL as usize] = DropCounters {
        calls: 3,
        bytes: 4096,
    };
    app.ingest(snap, secs(1));
    let buffer = render(&app, 80, 5);
    let screen = lines(&buffer);
    assert_eq!(
        screen[1],
        " 0 processes   dropped 3 calls/4.0 KiB   every 1s   up 1s   rates by moved"
    );
    assert_eq!(screen[3], " (no process has made a data-path syscall yet)");
    assert_eq!(buffer[find(&buffer, 1, "3 calls")].fg, Color::Red);
    let clean = render(&App::new(secs(1)), 80, 5);
    assert_ne!(clean[find(&clean, 1, "dropped 0")].fg, Color::Red);
}

#[test]
fn detail_pane_with_the_two_paths() {
    let mut app = busy_app();
    update(&mut app, Action::Down);
    update(&mut app, Action::ToggleDetail);
    let screen = lines(&render(&app, 80, 24));
    assert_eq!(
        screen[2..],
        [
            "    PID COMM           VERDICT   ZC%       COPIED/s ZERO-CP/s TRANS/s BUSIEST",
            "   4121 nginx          zero-copy ████ 100%       0B      100M     200 sendfile64",
            "     77 haproxy        mixed     ██··  50%     2.0M      2.0M      24 splice",
            "    880 python3        copying   ····   0%     2.0M        0B      40 write",
            "",
            "",
            "",
            "",
            "┌ pid 77 haproxy mixed ────────────────────────────────────────────────────────┐",
            "│SYSCALL / OP                  CALLS      BYTES  ERRORS      NOW               │",
            "│recvfrom                          8    2.0 MiB       0   2.0M/s               │",
            "│splice                            4    4.0 MiB       0   4.0M/s               │",
            "│copied     2.0M/s █                                                           │",
            "│zero-copy  2.0M/s █                                                           │",
            "│read+write  4 copies (2 by the CPU), 4 transitions a chunk                    │",
            "│  this pid  8 calls, 2.0 MiB copied by the CPU, 16 transitions                │",
            "│sendfile    0 copies by the CPU, 2 transitions a chunk                        │",
            "│  this pid  4 calls, 4.0 MiB moved in the kernel, 8 transitions               │",
            "│flows tcp->tcp via splice 2.0 MiB; tcp->process via user space 2.0 MiB (1 copy│",
            "│haproxy[77]: 50.0% zero copy of 4.0 MiB delivered; 2.0 MiB copied through user│",
            "└──────────────────────────────────────────────────────────────────────────────┘",
            " q quit  ↑↓ move  ⏎ detail  s sort  / filter  space pause  t totals  ? help",
        ]
    );
}

#[test]
fn totals_filter_pause_and_help() {
    let mut app = busy_app();
    update(&mut app, Action::ToggleTotals);
    update(&mut app, Action::TogglePause);
    update(&mut app, Action::StartFilter);
    for c in "py".chars() {
        update(&mut app, Action::FilterChar(c));
    }
    let screen = lines(&render(&app, 80, 6));
    assert_eq!(
        screen,
        [
            " copied 4.0 MiB   zero-copy 102.0 MiB (97.1%)   transitions 264",
            " 3 processes   dropped 0   every 1s   up 1s   totals by moved  PAUSED",
            "    PID COMM           VERDICT   ZC%         COPIED   ZERO-CP   TRANS BUSIEST",
            "    880 python3        copying   ····   0%     2.0M        0B      40 write",
            "",
            " filter: py█  Enter keep, Esc clear",
        ]
    );
    update(&mut app, Action::FilterAccept);
    update(&mut app, Action::ToggleHelp);
    let screen = lines(&render(&app, 80, 24));
    assert!(
        screen
            .iter()
            .any(|l| l.contains("│ q Esc ^C  quit (detaches every program)")),
        "{screen:#?}"
    );
    assert!(screen[23].starts_with(" /py "), "{screen:#?}");
}

/// Two nginx in Podman containers, one with sendfile and one without, and a host process.
fn containers_app() -> App {
    use std::sync::Arc;

    use crate::snapshot::{Container, ContainerId, ContainerNames, Runtime};
    let container = |id: char, name: &str| {
        Some(Arc::new(Container {
            id: ContainerId {
                runtime: Runtime::Podman,
                id: std::iter::repeat_n(id, 64).collect(),
                pod_uid: String::new(),
            },
            names: Some(ContainerNames {
                name: name.into(),
                ..ContainerNames::default()
            }),
        }))
    };
    let on = container('a', "nginx-on");
    let off = container('b', "nginx-off");
    let snap = |scale: u64| {
        let mut records = vec![
            record(101, "nginx", false, &[("sendfile64", scale, scale << 20)]),
            record(
                201,
                "nginx",
                false,
                &[("read", scale, scale << 20), ("write", scale, scale << 20)],
            ),
            record(202, "nginx", false, &[("read", scale, scale << 10)]),
            record(7, "curl", false, &[("recvfrom", 1, 1 << 20)]),
        ];
        records[0].container = on.clone();
        records[1].container = off.clone();
        records[2].container = off.clone();
        snapshot(records)
    };
    let mut app = App::new(secs(1));
    app.ingest(snap(1), secs(1));
    app.ingest(snap(3), secs(2));
    app
}

#[test]
fn processes_show_their_container_and_c_groups_by_it() {
    let mut app = containers_app();
    let screen = lines(&render(&app, 100, 9));
    assert_eq!(
        screen[2],
        "    PID COMM            CONTAINER        VERDICT   ZC%       COPIED/s ZERO-CP/s TRANS/s BUSIEST"
    );
    assert!(
        screen
            .iter()
            .any(|l| l.starts_with("    201 nginx           nginx-off        copying")),
        "{screen:#?}"
    );
    assert!(
        screen
            .iter()
            .any(|l| l.starts_with("      7 curl            -                idle")),
        "{screen:#?}"
    );
    assert_eq!(
        screen[8],
        " q quit  ↑↓ move  ⏎ detail  s sort  / filter  space pause  t totals  c containers  ? help"
    );

    update(&mut app, Action::ToggleContainers);
    let screen = lines(&render(&app, 100, 9));
    assert!(
        screen[1].ends_with("rates by moved, per container"),
        "{screen:#?}"
    );
    assert_eq!(
        screen[2],
        "  PROCS CONTAINER       VERDICT   ZC%       COPIED/s ZERO-CP/s TRANS/s B/CALL BUSIEST"
    );
    // nginx-off: two processes, 2 MiB read and 2 MiB written (+2 KiB read by the other) in
    // the last second, in 6 calls.
    assert_eq!(
        &screen[3..6],
        [
            "      2 nginx-off       copying   ····   0%     4.0M        0B      12   683K read",
            "      1 nginx-on        zero-copy ████ 100%       0B      2.0M       4   1.0M sendfile64",
            "      1 (host)          idle      ····    -       0B        0B       0      - -",
        ],
        "{screen:#?}"
    );
    // The detail of a container: its processes added up, its finding about the container.
    update(&mut app, Action::ToggleDetail);
    let screen = lines(&render(&app, 100, 24)).join("\n");
    assert!(
        screen.contains(" nginx-off (2 live processes) copying"),
        "{screen}"
    );
    assert!(
        screen.contains("all pids  9 calls, 6.0 MiB copied by the CPU"),
        "{screen}"
    );
    assert!(screen.contains("container nginx-off: "), "{screen}");
    // The filter matches container names; back to processes with `c` again.
    update(&mut app, Action::ToggleDetail);
    update(&mut app, Action::StartFilter);
    for c in "ON".chars() {
        update(&mut app, Action::FilterChar(c));
    }
    update(&mut app, Action::FilterAccept);
    let rows: Vec<String> = app.visible().iter().map(|(r, _)| r.comm.clone()).collect();
    assert_eq!(rows, ["nginx-on"]);
    update(&mut app, Action::ToggleContainers);
    let pids: Vec<u32> = app.visible().iter().map(|(r, _)| r.pid).collect();
    assert_eq!(
        pids,
        [101],
        "the filter finds a process by its container's name"
    );
}
