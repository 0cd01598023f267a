//! What processes are grouped by (their name, the systemd unit of their cgroup, the cgroup
//! itself on request) and the totals of each group's exited processes. A group, once given its
//! place, keeps it for the whole trace, so a group's counts only ever grow; past `max_groups`
//! new groups are all counted under one `other` group.

use std::collections::HashMap;

use zerocopy_trace_common::Counters;

use crate::snapshot::{
    groups::{OTHER, OTHER_COMM},
    Group, GroupId, GroupKey, ProcessCounters,
};

/// How processes are grouped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grouping {
    /// Keep the cgroup path in the key (more groups: one per cgroup, not per unit).
    pub by_cgroup: bool,
    /// Most groups with a place of their own (`other` not included).
    pub max_groups: usize,
}

/// The default cap on groups: far more names and units than a server runs, few enough that
/// the totals stay within a few MiB.
pub const DEFAULT_MAX_GROUPS: usize = 1000;

impl Default for Grouping {
    fn default() -> Self {
        Grouping {
            by_cgroup: false,
            max_groups: DEFAULT_MAX_GROUPS,
        }
    }
}

impl Grouping {
    /// The key of a process named `comm` in cgroup `cgroup` (a path, empty when unknown):
    /// its unit and container come from the path.
    pub fn key(&self, comm: &str, cgroup: &str) -> GroupKey {
        GroupKey {
            comm: comm.to_string(),
            unit: crate::system::cgroup::unit_of(cgroup).to_string(),
            cgroup: if self.by_cgroup {
                cgroup.to_string()
            } else {
                String::new()
            },
            container: crate::system::containers::layout::identify(cgroup),
        }
    }
}

/// Every group of the trace, in the order they first appeared (`OTHER` first).
pub struct GroupTable {
    grouping: Grouping,
    ids: HashMap<GroupKey, GroupId>,
    groups: Vec<Group>,
    /// Processes counted under `other` because the table was full.
    overflowed: u64,
}

impl GroupTable {
    pub fn new(grouping: Grouping) -> GroupTable {
        let other = GroupKey {
            comm: OTHER_COMM.to_string(),
            ..GroupKey::default()
        };
        GroupTable {
            grouping,
            ids: HashMap::from([(other.clone(), OTHER)]),
            groups: vec![Group {
                key: other,
                container: None,
                exited: 0,
                counters: ProcessCounters::default(),
            }],
            overflowed: 0,
        }
    }

    pub fn grouping(&self) -> Grouping {
        self.grouping
    }

    /// The group of one process (called once per process): its own, made if there is room,
    /// else `OTHER`, and the process is counted as overflowed.
    pub fn admit(&mut self, key: GroupKey) -> GroupId {
        if let Some(&id) = self.ids.get(&key) {
            return id;
        }
        // `groups` holds OTHER besides the groups of their own.
        if self.groups.len() > self.grouping.max_groups {
            self.overflowed += 1;
            return OTHER;
        }
        let id = self.groups.len() as GroupId;
        self.groups.push(Group {
            key: key.clone(),
            container: None,
            exited: 0,
            counters: ProcessCounters::default(),
        });
        self.ids.insert(key, id);
        id
    }

    /// Adds one exited process's final counts (per syscall id) to its group.
    pub fn fold(&mut self, id: GroupId, syscalls: &[(u8, Counters)]) {
        let Some(group) = self.groups.get_mut(id as usize) else {
            return;
        };
        group.exited += 1;
        for (syscall, counters) in syscalls {
            add_syscall(&mut group.counters, *syscall, counters);
        }
    }

    /// Adds counts that arrived after their process was folded (its exit's last records).
    pub fn fold_late(&mut self, id: GroupId, syscall: u8, counters: &Counters) {
        if let Some(group) = self.groups.get_mut(id as usize) {
            add_syscall(&mut group.counters, syscall, counters);
        }
    }

    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    pub fn overflowed(&self) -> u64 {
        self.overflowed
    }
}

/// Adds the counters of id `id` (a syscall's or an io_uring operation's) into `into`.
fn add_syscall(into: &mut ProcessCounters, id: u8, counters: &Counters) {
    if let Some(slot) = into.slot_mut(usize::from(id)) {
        slot.add(counters);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(comm: &str) -> GroupKey {
        Grouping::default().key(comm, "/system.slice/a.service")
    }

    #[test]
    fn groups_are_sticky_and_capped() {
        let mut table = GroupTable::new(Grouping {
            by_cgroup: false,
            max_groups: 2,
        });
        let a = table.admit(key("a"));
        let b = table.admit(key("b"));
        assert_ne!(a, b);
        assert!(a != OTHER && b != OTHER);
        assert_eq!(table.admit(key("a")), a, "the same key keeps its group");
        assert_eq!(table.admit(key("c")), OTHER);
        assert_eq!(table.admit(key("d")), OTHER);
        assert_eq!(table.overflowed(), 2);
        assert_eq!(table.groups().len(), 3);
        assert_eq!(table.groups()[a as usize].key.unit, "a.service");
        assert_eq!(table.groups()[OTHER as usize].key.comm, "other");
    }

    #[test]
    fn folding_adds_per_syscall_and_counts_processes() {
        let mut table = GroupTable::new(Grouping::default());
        let a = table.admit(key("a"));
        let c = Counters {
            calls: 1,
            bytes: 10,
            ..Counters::default()
        };
        table.fold(a, &[(0, c), (1, c)]);
        table.fold(a, &[(0, c)]);
        table.fold_late(a, 1, &c);
        // Out of range ids are ignored, not a panic.
        table.fold(a, &[(200, c)]);
        table.fold(99, &[(0, c)]);
        let group = &table.groups()[a as usize];
        assert_eq!(group.exited, 3);
        assert_eq!(group.counters.syscall(0).bytes, 20);
        assert_eq!(group.counters.syscall(1).bytes, 20);
    }

    #[test]
    fn containers_are_told_apart() {
        let id = "0934f6b1a335b838525323cd033639ebcc79d524878673b5dba1a1361dcd30ab";
        let a = Grouping::default().key("nginx", &format!("/libpod_parent/libpod-{id}"));
        let host = Grouping::default().key("nginx", "/system.slice/nginx.service");
        assert_eq!(a.container.as_ref().map(|c| c.id.as_str()), Some(id));
        assert_eq!(host.container, None);
        let mut table = GroupTable::new(Grouping::default());
        assert_ne!(table.admit(a), table.admit(host), "same name, two groups");
    }

    #[test]
    fn cgroup_kept_only_when_asked() {
        let by_unit = Grouping::default().key("x", "/system.slice/a.service/sub");
        assert_eq!(
            (by_unit.unit.as_str(), by_unit.cgroup.as_str()),
            ("a.service", "")
        );
        let by_cgroup = Grouping {
            by_cgroup: true,
            ..Grouping::default()
        }
        .key("x", "/system.slice/a.service/sub");
        assert_eq!(by_cgroup.cgroup, "/system.slice/a.service/sub");
    }
}
