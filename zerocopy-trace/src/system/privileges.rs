//! Checking, before touching the kernel, that we may load and attach BPF programs; and, once
//! attached, giving up for good everything the agent no longer needs.
//!
//! After attach the agent only reads and updates the maps it holds, reads /proc, and serves or
//! prints. So a root-started agent becomes an unprivileged user (`--user`, `nobody` by
//! default), with no capability at all where this kernel lets map file descriptors be used
//! without one (5.19 and later: the check moved to creating maps and loading programs), else
//! with CAP_BPF alone; an empty bounding set, no ambient or inheritable capability,
//! `NoNewPrivs`, and not dumpable. `drop_after_attach` says why each step is where it is.
//! The names helper, which asks the container runtimes for the agent, keeps root's uid alone
//! (`drop_for_names_helper`).

use std::{ffi::CString, io};

use anyhow::{anyhow, bail, Context, Result};
use caps::{CapSet, Capability, CapsHashSet};

/// What loading and attaching tracepoints needs, in the order the error message names them.
const NEEDED: [Capability; 2] = [Capability::CAP_BPF, Capability::CAP_PERFMON];

/// The user an agent started as root becomes after attach, unless `--user` says otherwise.
pub const DEFAULT_USER: &str = "nobody";

/// Capabilities missing from an effective set, for loading and attaching tracepoints.
pub fn missing_capabilities(effective: &CapsHashSet) -> Vec<Capability> {
    NEEDED
        .into_iter()
        .filter(|cap| !effective.contains(cap))
        .collect()
}

/// Fails with an actionable message when this process cannot trace.
pub fn check() -> Result<()> {
    // An unreadable set is treated as empty: the message below is the useful one either way.
    let effective = caps::read(None, CapSet::Effective).unwrap_or_default();
    let missing = missing_capabilities(&effective);
    if !missing.is_empty() {
        bail!(
            "permission denied: tracing needs root or the capabilities CAP_BPF and CAP_PERFMON \
             (missing: {}); run it with sudo, or grant them with `setcap cap_bpf,cap_perfmon+ep`",
            missing
                .iter()
                .map(Capability::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

/// Whether this process runs as root (effective uid 0).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A user account, looked up by name or uid before anything starts: the lookup goes through
/// NSS, which may read files and talk to daemons the agent cannot reach afterwards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// Its supplementary groups (its primary group included).
    pub groups: Vec<u32>,
}

impl User {
    pub fn named(name: &str) -> Result<User> {
        let c_name = CString::new(name).map_err(|_| anyhow!("no user named {name:?}"))?;
        lookup(|pwd, buf, len, found| {
            // SAFETY: every pointer is valid for the call; `buf` outlives the use of `pwd`.
            unsafe { libc::getpwnam_r(c_name.as_ptr(), pwd, buf, len, found) }
        })
        .with_context(|| format!("looking up the user {name:?}"))?
        .ok_or_else(|| anyhow!("no user named {name:?}"))
    }

    pub fn with_uid(uid: u32) -> Result<User> {
        lookup(|pwd, buf, len, found| {
            // SAFETY: as in `named`.
            unsafe { libc::getpwuid_r(uid, pwd, buf, len, found) }
        })
        .with_context(|| format!("looking up uid {uid}"))?
        .ok_or_else(|| anyhow!("no user with uid {uid}"))
    }

    /// The user `sudo` was run by, when this process is root under sudo.
    pub fn sudo_caller() -> Option<User> {
        let uid = std::env::var("SUDO_UID").ok()?.parse().ok()?;
        User::with_uid(uid).ok().filter(|user| user.uid != 0)
    }

    /// Who the agent becomes: its uid and primary group, no supplementary group.
    pub fn account(&self) -> Account {
        Account {
            uid: self.uid,
            gid: self.gid,
        }
    }
}

/// Runs a `getpw*_r` call with a buffer of its own and reads what it found.
fn lookup(
    call: impl FnOnce(
        *mut libc::passwd,
        *mut libc::c_char,
        libc::size_t,
        *mut *mut libc::passwd,
    ) -> libc::c_int,
) -> Result<Option<User>> {
    let mut buf: Vec<libc::c_char> = vec![0; 16 * 1024];
    // SAFETY: passwd is plain data; zeroed is a valid value to be overwritten.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    let rc = call(&mut pwd, buf.as_mut_ptr(), buf.len(), &mut found);
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc).into());
    }
    if found.is_null() {
        return Ok(None);
    }
    // SAFETY: on success pw_name points into `buf`, NUL-terminated.
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) }
        .to_string_lossy()
        .into_owned();
    let (uid, gid) = (pwd.pw_uid, pwd.pw_gid);
    Ok(Some(User {
        groups: groups_of(&name, gid),
        name,
        uid,
        gid,
    }))
}

/// The groups `name` belongs to (`getgrouplist`), its primary group first.
fn groups_of(name: &str, gid: u32) -> Vec<u32> {
    let Ok(c_name) = CString::new(name) else {
        return vec![gid];
    };
    let mut count: libc::c_int = 64;
    loop {
        let mut groups: Vec<libc::gid_t> = vec![0; count as usize];
        let mut n = count;
        // SAFETY: `groups` has room for `n` entries; getgrouplist writes at most that many and
        // says how many there are.
        let rc = unsafe { libc::getgrouplist(c_name.as_ptr(), gid, groups.as_mut_ptr(), &mut n) };
        if rc >= 0 {
            groups.truncate(n.max(0) as usize);
            return groups;
        }
        if n <= count || n > 65536 {
            return vec![gid];
        }
        count = n;
    }
}

/// The uid and gid an agent started as root becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Account {
    pub uid: u32,
    pub gid: u32,
}

/// What the agent kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dropped {
    pub uid: u32,
    /// CAP_BPF was kept: this kernel checks it on every use of a map.
    pub kept_bpf: bool,
}

/// Gives up, for good, every privilege but what reading the maps needs; `account` is who an
/// agent running as root becomes (ignored otherwise: a non-root agent keeps its uid).
///
/// The order matters, each step needing what a later one takes away: the bounding set needs
/// CAP_SETPCAP and the groups CAP_SETGID, which the uid change removes; the gid goes before
/// the uid; a kept capability must stay permitted across the uid change (`PR_SET_KEEPCAPS`).
/// Capabilities and the bounding set are per thread: call this before any other thread
/// exists (the runtime has one thread; threads started later inherit what is left).
pub fn drop_after_attach(account: Option<Account>) -> Result<Dropped> {
    let keep_bpf = map_use_needs_cap_bpf();
    let keep: CapsHashSet = if keep_bpf {
        CapsHashSet::from([Capability::CAP_BPF])
    } else {
        CapsHashSet::new()
    };
    let effective = caps::read(None, CapSet::Effective).unwrap_or_default();
    let become_user = account.filter(|_| is_root()).filter(|to| {
        // Root without CAP_SETUID and CAP_SETGID (a container given only what tracing needs)
        // cannot change its user: it keeps root's uid, and gives up every capability below.
        let can = to.uid == 0
            || (effective.contains(&Capability::CAP_SETUID)
                && effective.contains(&Capability::CAP_SETGID));
        if !can {
            log::warn!(
                "keeping uid 0 after attach: becoming uid {} needs CAP_SETUID and CAP_SETGID, which this agent was not given (every capability is given up all the same)",
                to.uid
            );
        }
        can
    });
    if effective.contains(&Capability::CAP_SETPCAP) {
        // Nothing exec'd later could regain a capability.
        caps::clear(None, CapSet::Bounding)
            .map_err(|e| anyhow!("{e}"))
            .context("emptying the capability bounding set")?;
    }
    // SAFETY: plain prctl calls with constant arguments.
    ok_or_errno(
        unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
                0,
                0,
                0,
            )
        },
        "clearing the ambient capabilities",
    )?;
    if let Some(to) = become_user {
        if to.uid != 0 {
            // SAFETY: setgroups with no groups; the prctl takes constant arguments.
            unsafe {
                ok_or_errno(libc::setgroups(0, std::ptr::null()), "dropping the groups")?;
                if keep_bpf {
                    ok_or_errno(
                        libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0),
                        "PR_SET_KEEPCAPS",
                    )?;
                }
            }
            // Through glibc, so that every thread changes (it signals each): there is only
            // one, but a raw syscall would change the caller alone.
            // SAFETY: plain calls with the looked-up ids.
            unsafe {
                ok_or_errno(
                    libc::setresgid(to.gid, to.gid, to.gid),
                    "changing the group",
                )?;
                ok_or_errno(libc::setresuid(to.uid, to.uid, to.uid), "changing the user")?;
            }
        }
    }
    caps::clear(None, CapSet::Inheritable)
        .and_then(|()| caps::set(None, CapSet::Effective, &keep))
        .and_then(|()| caps::set(None, CapSet::Permitted, &keep))
        .map_err(|e| anyhow!("{e}"))
        .context("dropping capabilities after attach")?;
    // SAFETY: plain prctl calls with constant arguments.
    unsafe {
        if keep_bpf {
            ok_or_errno(
                libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0),
                "PR_SET_KEEPCAPS",
            )?;
        }
    }
    no_new_privileges_nor_dumps()?;
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    // SAFETY: a plain call; it must fail.
    if uid != 0 && unsafe { libc::setresuid(0, 0, 0) } == 0 {
        bail!("could become root again after dropping privileges");
    }
    Ok(Dropped {
        uid,
        kept_bpf: keep_bpf,
    })
}

/// The securebits that make root's uid no special case for capabilities, each locked: no
/// capability is gained by an exec as uid 0 (`NOROOT`), none can be raised as ambient, and a
/// uid change keeps none (`KEEP_CAPS` and `NO_SETUID_FIXUP` locked off).
const SECUREBITS_LOCKED_DOWN: libc::c_ulong = {
    const NOROOT: libc::c_ulong = 1 << 0;
    const NO_SETUID_FIXUP: libc::c_ulong = 1 << 2;
    const KEEP_CAPS: libc::c_ulong = 1 << 4;
    const NO_CAP_AMBIENT_RAISE: libc::c_ulong = 1 << 6;
    // Each bit's lock is the bit above it.
    let set = NOROOT | NO_CAP_AMBIENT_RAISE;
    let locks = (NOROOT | NO_SETUID_FIXUP | KEEP_CAPS | NO_CAP_AMBIENT_RAISE) << 1;
    set | locks
};

/// Gives up, in the names helper (`containers::helper`), everything but its uid: the agent
/// starts it while still root, and root's uid is what owns the runtimes' sockets (0600 or 0660)
/// and may read kubelet's log directories, with no capability at all. So: no supplementary
/// group, no capability in any set (the bounding set emptied and root's special case turned
/// off for good where CAP_SETPCAP allows: a container's agent may lack it), `NoNewPrivs`, not
/// dumpable. Its seccomp filter then keeps it from opening anything for writing.
pub fn drop_for_names_helper() -> Result<()> {
    let effective = caps::read(None, CapSet::Effective).unwrap_or_default();
    if effective.contains(&Capability::CAP_SETPCAP) {
        // SAFETY: a plain prctl with constant arguments.
        ok_or_errno(
            unsafe { libc::prctl(libc::PR_SET_SECUREBITS, SECUREBITS_LOCKED_DOWN, 0, 0, 0) },
            "PR_SET_SECUREBITS",
        )?;
        caps::clear(None, CapSet::Bounding)
            .map_err(|e| anyhow!("{e}"))
            .context("emptying the capability bounding set")?;
    }
    if effective.contains(&Capability::CAP_SETGID) {
        // SAFETY: setgroups with no groups.
        ok_or_errno(
            unsafe { libc::setgroups(0, std::ptr::null()) },
            "dropping the groups",
        )?;
    }
    // SAFETY: plain prctl calls with constant arguments.
    unsafe {
        ok_or_errno(
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
                0,
                0,
                0,
            ),
            "clearing the ambient capabilities",
        )?;
    }
    caps::clear(None, CapSet::Inheritable)
        .and_then(|()| caps::clear(None, CapSet::Effective))
        .and_then(|()| caps::clear(None, CapSet::Permitted))
        .map_err(|e| anyhow!("{e}"))
        .context("dropping the names helper's capabilities")?;
    no_new_privileges_nor_dumps()?;
    if !caps::read(None, CapSet::Permitted)
        .map_err(|e| anyhow!("{e}"))?
        .is_empty()
    {
        bail!("the names helper kept a capability");
    }
    Ok(())
}

fn ok_or_errno(rc: libc::c_int, what: &str) -> Result<()> {
    if rc != 0 {
        return Err(io::Error::last_os_error()).context(what.to_string());
    }
    Ok(())
}

/// Whether this kernel wants a capability for every use of a map fd already held. Before 5.19
/// (and where that change is not backported), with unprivileged BPF disabled, every bpf() call
/// needs CAP_BPF; since, only creating maps and loading programs do. Asked of the kernel
/// rather than guessed from its version: a tiny map is created, the effective set emptied
/// (permitted stays, so this is undone below), the map read, and the effective set restored.
/// The one bpf() call outside `kernel/`: it answers a question about privileges, not tracing.
fn map_use_needs_cap_bpf() -> bool {
    let effective = caps::read(None, CapSet::Effective).unwrap_or_default();
    if !effective.contains(&Capability::CAP_BPF) && !effective.contains(&Capability::CAP_SYS_ADMIN)
    {
        // Nothing to keep: the agent got this far without.
        return false;
    }
    let Some(map) = tiny_map() else {
        // Cannot ask: keep it, as before.
        return true;
    };
    if caps::clear(None, CapSet::Effective).is_err() {
        return true;
    }
    let needed = lookup_in(&map) == Err(libc::EPERM);
    if let Err(e) = caps::set(None, CapSet::Effective, &effective) {
        log::warn!("restoring the effective capabilities: {e}");
    }
    needed
}

/// bpf(2)'s attribute union, as large as any command here needs; unused bytes must be zero.
#[repr(C, align(8))]
struct BpfAttr([u8; 128]);

fn bpf(cmd: libc::c_long, attr: &mut BpfAttr) -> libc::c_long {
    // SAFETY: `attr` is a zeroed union of the size given, filled for `cmd`.
    unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut BpfAttr,
            size_of::<BpfAttr>() as libc::c_uint,
        )
    }
}

/// An array map of one 4-byte entry, for `map_use_needs_cap_bpf`.
fn tiny_map() -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    const BPF_MAP_CREATE: libc::c_long = 0;
    const BPF_MAP_TYPE_ARRAY: u32 = 2;
    let mut attr = BpfAttr([0; 128]);
    // map_type, key_size, value_size, max_entries.
    for (i, value) in [BPF_MAP_TYPE_ARRAY, 4, 4, 1].into_iter().enumerate() {
        attr.0[i * 4..i * 4 + 4].copy_from_slice(&value.to_ne_bytes());
    }
    let fd = bpf(BPF_MAP_CREATE, &mut attr);
    // SAFETY: a new descriptor the kernel just returned, owned once.
    (fd >= 0).then(|| unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}

fn lookup_in(map: &std::os::fd::OwnedFd) -> Result<(), i32> {
    use std::os::fd::AsRawFd;
    const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
    let key = 0u32;
    let mut value = 0u32;
    let mut attr = BpfAttr([0; 128]);
    // map_fd (u32, padded to 8), key pointer, value pointer.
    attr.0[0..4].copy_from_slice(&(map.as_raw_fd() as u32).to_ne_bytes());
    attr.0[8..16].copy_from_slice(&(&raw const key as u64).to_ne_bytes());
    attr.0[16..24].copy_from_slice(&(&raw mut value as u64).to_ne_bytes());
    if bpf(BPF_MAP_LOOKUP_ELEM, &mut attr) == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }
}

/// No exec of a setuid or file-capability program can raise anything again, and not even a
/// process of the same user may attach to this one or read its memory: the agent after attach
/// and its names helper both end so.
fn no_new_privileges_nor_dumps() -> Result<()> {
    // SAFETY: plain prctl calls with constant arguments.
    unsafe {
        ok_or_errno(
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0),
            "PR_SET_NO_NEW_PRIVS",
        )?;
        ok_or_errno(
            libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0),
            "PR_SET_DUMPABLE",
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_has_everything() {
        assert!(missing_capabilities(&caps::all()).is_empty());
    }

    #[test]
    fn names_what_is_missing() {
        assert_eq!(
            missing_capabilities(&CapsHashSet::new()),
            vec![Capability::CAP_BPF, Capability::CAP_PERFMON]
        );
        assert_eq!(
            missing_capabilities(&CapsHashSet::from([Capability::CAP_BPF])),
            vec![Capability::CAP_PERFMON]
        );
        assert_eq!(
            missing_capabilities(&CapsHashSet::from([Capability::CAP_PERFMON])),
            vec![Capability::CAP_BPF]
        );
    }

    #[test]
    fn users_are_found_by_name_and_uid() {
        let root = User::named("root").expect("root exists");
        assert_eq!((root.uid, root.gid), (0, 0));
        assert!(root.groups.contains(&0), "{root:?}");
        assert_eq!(User::with_uid(0).unwrap().name, "root");
        let message = User::named("no-such-user-zc").unwrap_err().to_string();
        assert_eq!(message, "no user named \"no-such-user-zc\"");
    }

    /// Asks the kernel in a thread of its own (capabilities are per thread, and the effective
    /// set is restored anyway), then checks nothing was lost.
    #[test]
    fn asking_whether_maps_need_cap_bpf_changes_nothing() {
        let (before, after) = std::thread::spawn(|| {
            let before = caps::read(None, CapSet::Effective).unwrap();
            let _ = map_use_needs_cap_bpf();
            (before, caps::read(None, CapSet::Effective).unwrap())
        })
        .join()
        .unwrap();
        assert_eq!(before, after);
    }
}
