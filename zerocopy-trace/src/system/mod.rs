//! What the agent reads of and does to the machine outside BPF: `/proc` (`procfs`), cgroups
//! (`cgroup`), capabilities (`privileges`) and the command `run` starts (`launch`).

pub mod cgroup;
pub mod launch;
pub mod privileges;
pub mod procfs;
