//! What the agent reads of and does to the machine outside BPF: `/proc` (`procfs`), cgroups
//! (`cgroup`), the containers they hold and their runtimes' names for them (`containers`),
//! capabilities and the user it becomes (`privileges`), the seccomp allow-lists (`seccomp`),
//! the names helper's Landlock ruleset (`landlock`),
//! its resource limits (`limits`), the command `run` starts and the signals it passes on
//! (`launch`), and files written under a temporary name, renamed at the end (`staged_file`).

pub mod cgroup;
pub mod containers;
pub mod landlock;
pub mod launch;
pub mod limits;
pub mod privileges;
pub mod procfs;
pub mod seccomp;
pub mod staged_file;
