//! The real server of the bench: Debian's nginx, one worker, `sendfile on;`, on a free loopback
//! port, with its own prefix, configuration and files in a scratch directory. It runs for the
//! whole bench (an operator attaches to a server that is already busy) and stops on drop.

use std::fs::File;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::process;

/// The files served, by name and size: a small response (per-request costs dominate) and a
/// large one (bytes dominate).
pub const FILES: [(&str, u64); 2] = [("4k.bin", 4 << 10), ("1m.bin", 1 << 20)];

/// How long nginx may take to listen.
const START_PATIENCE: Duration = Duration::from_secs(10);
/// How long nginx may take to stop gracefully.
const STOP_PATIENCE: Duration = Duration::from_secs(10);

/// A running nginx master (and its one worker).
pub struct Nginx {
    pid: u32,
    pub port: u16,
    prefix: PathBuf,
}

/// nginx's configuration: one worker, sendfile on, no access log, everything under `prefix`.
pub fn config(prefix: &Path, www: &Path, port: u16) -> String {
    let dir = prefix.display();
    format!(
        "daemon off;\nmaster_process on;\nworker_processes 1;\npid {dir}/nginx.pid;\n\
         error_log {dir}/error.log;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n  access_log off;\n  sendfile on;\n  \
         client_body_temp_path {dir}/body;\n  proxy_temp_path {dir}/proxy;\n  \
         fastcgi_temp_path {dir}/fastcgi;\n  uwsgi_temp_path {dir}/uwsgi;\n  \
         scgi_temp_path {dir}/scgi;\n  \
         server {{ listen 127.0.0.1:{port}; root {www}; }}\n}}\n",
        www = www.display(),
    )
}

/// A loopback port nothing listens on (closed again before nginx binds it).
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free loopback port")?;
    Ok(listener.local_addr()?.port())
}

/// Writes the served files and the configuration under `prefix`, starts `binary`, and waits
/// until it accepts connections.
pub fn start(binary: &Path, prefix: &Path) -> Result<Nginx> {
    let www = prefix.join("www");
    std::fs::create_dir_all(&www).with_context(|| format!("creating {}", www.display()))?;
    for (name, size) in FILES {
        crate::data_file::write(&www.join(name), size)?;
    }
    let port = free_port()?;
    let conf = prefix.join("nginx.conf");
    std::fs::write(&conf, config(prefix, &www, port))
        .with_context(|| format!("writing {}", conf.display()))?;
    let stderr = prefix.join("stderr.log");
    let err_file =
        File::create(&stderr).with_context(|| format!("creating {}", stderr.display()))?;
    let child = Command::new(binary)
        .arg("-c")
        .arg(&conf)
        .arg("-p")
        .arg(prefix)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err_file)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let nginx = Nginx {
        pid: child.id(),
        port,
        prefix: prefix.to_owned(),
    };
    // Reaped by pid, on drop.
    drop(child);
    let deadline = Instant::now() + START_PATIENCE;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if process::reap(nginx.pid, false)?.is_some() {
            bail!("nginx exited at start: {}", nginx.log_tail());
        }
        if Instant::now() > deadline {
            bail!(
                "nginx did not listen on 127.0.0.1:{port} within {START_PATIENCE:?}: {}",
                nginx.log_tail()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(nginx)
}

impl Nginx {
    pub fn url(&self, file: &str) -> String {
        format!("http://127.0.0.1:{}/{file}", self.port)
    }

    /// Whether the master is still running (a worker that died is restarted by it).
    pub fn check_alive(&self) -> Result<()> {
        if process::reap(self.pid, false)?.is_some() {
            bail!("nginx exited during the bench: {}", self.log_tail());
        }
        Ok(())
    }

    fn log_tail(&self) -> String {
        let mut lines = Vec::new();
        for name in ["stderr.log", "error.log"] {
            let text = std::fs::read_to_string(self.prefix.join(name)).unwrap_or_default();
            lines.extend(text.lines().rev().take(3).map(str::to_owned));
        }
        if lines.is_empty() {
            format!("no log in {}", self.prefix.display())
        } else {
            lines.join(" | ")
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGQUIT: graceful stop of the master and its worker.
        let stopped = process::signal(self.pid, libc::SIGQUIT)
            .and_then(|()| process::reap_within(self.pid, STOP_PATIENCE));
        if let Err(err) = stopped {
            eprintln!("bench: warning: stopping nginx: {err:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_one_worker_with_sendfile_on_loopback() {
        let conf = config(Path::new("/s"), Path::new("/s/www"), 8123);
        assert!(conf.contains("worker_processes 1;"));
        assert!(conf.contains("sendfile on;"));
        assert!(conf.contains("daemon off;"));
        assert!(conf.contains("listen 127.0.0.1:8123;"));
        assert!(conf.contains("root /s/www;"));
        assert!(conf.contains("pid /s/nginx.pid;"));
        // Nothing written outside the prefix.
        for line in conf
            .lines()
            .filter(|l| l.contains("path ") || l.contains("_log "))
        {
            assert!(line.contains("/s/") || line.contains(" off;"), "{line}");
        }
        assert_eq!(conf.matches('{').count(), conf.matches('}').count());
    }

    #[test]
    fn a_free_port_is_not_zero() {
        assert_ne!(free_port().unwrap(), 0);
    }
}
