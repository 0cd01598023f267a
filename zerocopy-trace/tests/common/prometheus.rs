//! A real Prometheus (Debian's `prometheus`, installed by `cargo xtask test`), started on a
//! free loopback port with a 1 s scrape interval and its own storage, stopped (and its storage
//! removed) whatever happens; and the queries the tests ask it.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use super::free_port;

/// `GET url` with curl; the body.
pub fn get(url: &str, accept: Option<&str>) -> String {
    let mut command = Command::new("curl");
    command.args(["-sS", "--fail", "--max-time", "10"]);
    if let Some(accept) = accept {
        command.args(["-H", &format!("Accept: {accept}")]);
    }
    let out = command.arg(url).output().expect("running curl");
    assert!(
        out.status.success(),
        "GET {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 body")
}

/// A Prometheus server of our own, stopped (and its storage removed) when dropped.
pub struct Prometheus {
    child: Child,
    pub port: u16,
    dir: PathBuf,
}

impl Prometheus {
    pub fn start(dir: &Path, target: &str) -> Prometheus {
        Prometheus::with_jobs(
            dir,
            &format!("  - job_name: zerocopy-trace\n    static_configs:\n      - targets: ['{target}']\n"),
        )
    }

    /// A Prometheus scraping every second with `jobs`, the YAML list under `scrape_configs:`.
    pub fn with_jobs(dir: &Path, jobs: &str) -> Prometheus {
        let dir = dir.join("prometheus");
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n{jobs}"
            ),
        )
        .unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting prometheus");
        let prometheus = Prometheus { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = Command::new("curl")
                .args(["-sf", "--max-time", "2"])
                .arg(format!("http://127.0.0.1:{port}/-/ready"))
                .output()
                .is_ok_and(|o| o.status.success());
            if ready {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready in 30 s: {}",
                prometheus.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        prometheus
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// The API's answer to an instant query.
    pub fn query(&self, promql: &str) -> Value {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10", "-G", "--data-urlencode"])
            .arg(format!("query={promql}"))
            .arg(format!("http://127.0.0.1:{}/api/v1/query", self.port))
            .output()
            .expect("running curl");
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "query {promql}: bad answer ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// The last error of each scrape target, by job.
    pub fn last_errors(&self) -> Vec<(String, String)> {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10"])
            .arg(format!("http://127.0.0.1:{}/api/v1/targets", self.port))
            .output()
            .expect("running curl");
        let targets: Value = serde_json::from_slice(&out.stdout).expect("the targets API");
        targets["data"]["activeTargets"]
            .as_array()
            .expect("active targets")
            .iter()
            .map(|t| {
                (
                    t["labels"]["job"].as_str().unwrap_or_default().to_string(),
                    t["lastError"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    /// The value of a query that returns one sample, `None` while it returns none.
    pub fn scalar(&self, promql: &str) -> Option<u64> {
        let answer = self.query(promql);
        assert_eq!(answer["status"], "success", "{promql}: {answer}");
        let value = answer["data"]["result"].as_array()?.first()?["value"][1].as_str()?;
        // Sums of byte counters are integers; Prometheus prints them as floats.
        value.parse::<f64>().ok().map(|v| v as u64)
    }

    /// Waits (30 s at most) until `promql` returns `want`.
    pub fn wait_for(&self, promql: &str, want: u64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = None;
        while Instant::now() < deadline {
            last = self.scalar(promql);
            if last == Some(want) {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("{promql}: {last:?} after 30 s, want {want}");
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(self.dir.join("data"));
    }
}
