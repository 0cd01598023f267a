//! A terminal for end-to-end tests of the dashboard: a tmux server of our own (its own socket)
//! runs a command in a detached session; the test types keys and reads the screen.

use std::{
    process::Command,
    time::{Duration, Instant},
};

/// A tmux server of our own, killed when dropped.
pub struct Tmux {
    socket: String,
}

impl Tmux {
    /// Starts `command` in a `width` x `height` session. `None` (after saying so) when tmux is
    /// missing outside CI; in CI that is a failure.
    pub fn start(name: &str, command: &str, width: u16, height: u16) -> Option<Tmux> {
        if Command::new("tmux").arg("-V").output().is_err() {
            if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
                panic!("tmux is missing, and CI=true forbids skipping (install the tmux package)");
            }
            eprintln!("SKIPPED (tmux not installed): this test drives the dashboard in tmux");
            return None;
        }
        let tmux = Tmux {
            socket: format!("zerocopy-trace-{name}-{}", std::process::id()),
        };
        tmux.run(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "dash",
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
            command,
        ]);
        Some(tmux)
    }

    pub fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("running tmux");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "dash"])
    }

    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "dash"];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    /// Polls the screen until `ready` holds; panics with the last screen after `timeout`.
    pub fn wait_for(&self, what: &str, timeout: Duration, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let screen = self.screen();
            if ready(&screen) {
                return screen;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}; the screen:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

/// The verdict on the dashboard's table row of `pid` (columns: PID COMM VERDICT ...; `comm`
/// must be one word).
pub fn verdict_of(screen: &str, pid: u64) -> Option<String> {
    screen.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next()? == pid.to_string()).then_some(())?;
        words.nth(1).map(str::to_string)
    })
}
