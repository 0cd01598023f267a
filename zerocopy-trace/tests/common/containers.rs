//! Real containers for the tests, without any registry: Podman (Debian's, with runc and the
//! cgroupfs manager, which work on this project's machines: hybrid cgroups, no systemd, no
//! CAP_SYS_RESOURCE) running nginx from the Debian root filesystem `cargo xtask test` makes
//! with debootstrap (`target/containers/rootfs`), and Podman's API service on a socket of the
//! test's own. Every container and service is removed when its guard drops, whatever happens.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// Where `cargo xtask test` put the root filesystem, helm and the validator.
pub fn dir() -> PathBuf {
    std::env::var_os("ZEROCOPY_TRACE_CONTAINERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/containers"))
}

/// The Debian root filesystem with nginx; `None` (after saying so, or failing in CI) when it
/// was not made.
pub fn rootfs() -> Option<PathBuf> {
    let rootfs = dir().join("rootfs");
    if rootfs.join("usr/sbin/nginx").is_file() {
        return Some(rootfs);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!(
            "no root filesystem at {}, and CI=true forbids skipping: run the tests with `cargo xtask test`",
            rootfs.display()
        );
    }
    eprintln!(
        "SKIPPED (no root filesystem at {}): `cargo xtask test` makes it with debootstrap",
        rootfs.display()
    );
    None
}

/// Podman's settings for these machines: runc (crun refuses hybrid cgroups), cgroupfs (no
/// systemd), ulimits within the hard limits (no CAP_SYS_RESOURCE to raise them), host network.
pub const CONTAINERS_CONF: &str = "[containers]\n\
default_ulimits = [\"nofile=1024:1024\", \"nproc=4096:4096\"]\n\
netns = \"host\"\n\
[engine]\n\
cgroup_manager = \"cgroupfs\"\n\
runtime = \"runc\"\n\
events_logger = \"file\"\n";

/// Podman with the settings above, written under `dir`.
pub struct Podman {
    conf: PathBuf,
}

impl Podman {
    pub fn new(dir: &Path) -> Podman {
        let conf = dir.join("containers.conf");
        std::fs::write(&conf, CONTAINERS_CONF).expect("writing containers.conf");
        Podman { conf }
    }

    pub fn command(&self) -> Command {
        let mut command = Command::new("podman");
        command.env("CONTAINERS_CONF", &self.conf);
        command
    }

    /// Runs podman with `args`; its standard output, trimmed. Panics with its error output.
    pub fn run(&self, args: &[&str]) -> String {
        let out = self
            .command()
            .args(args)
            .output()
            .expect("running podman (cargo xtask test installs it)");
        assert!(
            out.status.success(),
            "podman {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// `podman inspect --format FORMAT NAME`.
    pub fn inspect(&self, name: &str, format: &str) -> String {
        self.run(&["inspect", "--format", format, name])
    }
}

/// A nginx config serving `www` on `127.0.0.1:port`, with `sendfile on|off`.
pub fn nginx_conf(sendfile: bool, port: u16) -> String {
    format!(
        "daemon off;\nmaster_process on;\nworker_processes 1;\nuser www-data;\npid /run/nginx.pid;\n\
         error_log /dev/stderr warn;\nevents {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  sendfile {};\n  keepalive_timeout 5;\n  \
         default_type application/octet-stream;\n  \
         server {{ listen 127.0.0.1:{port}; root /srv/www; location / {{ }} }}\n}}\n",
        if sendfile { "on" } else { "off" }
    )
}

/// A container removed (`podman rm -f`) when dropped.
pub struct PodmanContainer<'a> {
    podman: &'a Podman,
    pub name: String,
    pub id: String,
}

impl Drop for PodmanContainer<'_> {
    fn drop(&mut self) {
        let _ = self
            .podman
            .command()
            .args(["rm", "-f", "-t", "0", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// nginx in a Podman container named `name` from `rootfs` (as an overlay, so the tree stays
/// as it is), serving `www` on `port` with `sendfile on|off`; waits until it answers.
pub fn podman_nginx<'a>(
    podman: &'a Podman,
    dir: &Path,
    rootfs: &Path,
    name: &str,
    sendfile: bool,
    port: u16,
) -> PodmanContainer<'a> {
    let conf = dir.join(format!("{name}.conf"));
    std::fs::write(&conf, nginx_conf(sendfile, port)).unwrap();
    let www = dir.join("www");
    // A leftover of an interrupted run would hold the name.
    let _ = podman
        .command()
        .args(["rm", "-f", "-t", "0", name])
        .output();
    let id = podman.run(&[
        "run",
        "-d",
        "--name",
        name,
        "--network",
        "host",
        "-v",
        &format!("{}:/etc/nginx/nginx.conf:ro", conf.display()),
        "-v",
        &format!("{}:/srv/www:ro", www.display()),
        "--rootfs",
        &format!("{}:O", rootfs.display()),
        "/usr/sbin/nginx",
    ]);
    let container = PodmanContainer {
        podman,
        name: name.to_string(),
        id,
    };
    wait_for_port(port);
    container
}

pub fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What curl sent and received for one download.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Download {
    pub request: u64,
    pub header: u64,
    pub body: u64,
}

impl Download {
    pub fn add(&mut self, other: Download) {
        self.request += other.request;
        self.header += other.header;
        self.body += other.body;
    }
}

/// Downloads `path` from `127.0.0.1:port` with curl; what went over the connection.
pub fn download(port: u16, path: &str) -> Download {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--fail",
            "-o",
            "/dev/null",
            "-w",
            "%{size_request} %{size_header} %{size_download}",
        ])
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .expect("running curl");
    assert!(
        out.status.success(),
        "curl :{port}{path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let n: Vec<u64> = text
        .split_whitespace()
        .map(|v| v.parse().expect("curl's sizes"))
        .collect();
    Download {
        request: n[0],
        header: n[1],
        body: n[2],
    }
}

/// Podman's API (`podman system service`) on a socket of its own, stopped when dropped.
pub struct PodmanService {
    child: Child,
    pub socket: PathBuf,
}

impl PodmanService {
    pub fn start(podman: &Podman, dir: &Path) -> PodmanService {
        let socket = dir.join("podman.sock");
        let _ = std::fs::remove_file(&socket);
        let child = podman
            .command()
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", socket.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting podman system service");
        let service = PodmanService { child, socket };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::os::unix::net::UnixStream::connect(&service.socket).is_err() {
            assert!(
                Instant::now() < deadline,
                "podman's API socket never opened"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        service
    }

    /// `--names-from podman=<socket>`.
    pub fn names_from(&self) -> String {
        format!("podman={}", self.socket.display())
    }
}

impl Drop for PodmanService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// Asks a unix socket's HTTP API `GET path` (curl); the body.
pub fn api_get(socket: &Path, path: &str) -> String {
    let out = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "10", "--unix-socket"])
        .arg(socket)
        .arg(format!("http://d{path}"))
        .output()
        .expect("running curl");
    assert!(
        out.status.success(),
        "GET {path} on {}: {}",
        socket.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes `text` to a file and returns its path (for configs handed to tools).
pub fn write(path: &Path, text: &str) -> PathBuf {
    let mut file = std::fs::File::create(path).expect("creating a file");
    file.write_all(text.as_bytes()).expect("writing a file");
    path.to_path_buf()
}
