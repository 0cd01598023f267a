//! The git revision a build comes from, for `zerocopy-trace --version`: the agent's build.rs
//! embeds it, and xtask's packaging checks it. A build from a tarball (no `.git`, or no git at
//! all) says "unknown" rather than failing, and so does a source tree that sits inside some
//! other repository (a distribution's packaging repository, say): that repository's HEAD is not
//! ours.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

/// What `--version` says when the revision cannot be known.
pub const UNKNOWN: &str = "unknown";

/// Hex digits of the abbreviated commit id: enough to be unique in any repository of this size.
const ABBREV: &str = "--short=12";

/// The revision of the repository whose top level is `workspace`, its commit date
/// (`YYYY-MM-DD`, for the man pages: reproducible, unlike the build's date), and the files whose
/// change means HEAD may have moved (for `cargo:rerun-if-changed`; only files that exist, since
/// cargo reruns a build script on every build while a watched path is missing).
#[derive(Debug, PartialEq, Eq)]
pub struct Revision {
    pub id: String,
    pub date: Option<String>,
    pub watch: Vec<PathBuf>,
}

/// The revision of `workspace`, or [`UNKNOWN`] (and nothing to watch) where it is not the top
/// level of a git work tree.
pub fn of_workspace(workspace: &Path) -> Revision {
    let unknown = Revision {
        id: UNKNOWN.to_owned(),
        date: None,
        watch: Vec::new(),
    };
    let Some(top) = git(workspace, &["rev-parse", "--show-toplevel"]) else {
        return unknown;
    };
    if !same_dir(Path::new(&top), workspace) {
        return unknown;
    }
    let Some(id) = git(workspace, &["rev-parse", ABBREV, "--verify", "HEAD"]) else {
        return unknown;
    };
    Revision {
        id,
        date: git(workspace, &["show", "--no-patch", "--format=%cs", "HEAD"]),
        watch: watched_files(workspace),
    }
}

/// HEAD, the branch it points to (loose or packed) and HEAD's reflog: a commit, checkout or
/// reset changes one of them. In a linked worktree git resolves each to the right directory.
fn watched_files(workspace: &Path) -> Vec<PathBuf> {
    let mut names = vec![
        "HEAD".to_owned(),
        "logs/HEAD".to_owned(),
        "packed-refs".to_owned(),
    ];
    if let Some(branch) = git(workspace, &["symbolic-ref", "--quiet", "HEAD"]) {
        names.push(branch);
    }
    let mut args = vec!["rev-parse".to_owned()];
    for name in &names {
        args.push("--git-path".to_owned());
        args.push(name.clone());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let Some(paths) = git(workspace, &args) else {
        return Vec::new();
    };
    paths
        .lines()
        .map(|line| workspace.join(line))
        .filter(|path| path.is_file())
        .collect()
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// `git -C dir ARGS`'s trimmed stdout, or `None` if git is missing or fails.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        // A hook or a wrapper may have set these for another repository.
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("xtask-git-revision-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn run_git(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=t", "-c", "user.email=t@t", "-c"])
            .arg("init.defaultBranch=main")
            .args(args)
            .output()
            .expect("git runs");
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    #[test]
    fn a_tree_without_git_is_unknown() {
        let dir = temp_dir("tarball");
        assert_eq!(
            of_workspace(&dir),
            Revision {
                id: UNKNOWN.to_owned(),
                date: None,
                watch: Vec::new()
            }
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_repository_gives_its_head_and_the_files_that_move_with_it() {
        let dir = temp_dir("repo");
        run_git(&dir, &["init", "--quiet"]);
        run_git(&dir, &["commit", "--quiet", "--allow-empty", "-m", "one"]);
        let head = run_git(&dir, &["rev-parse", "HEAD"]);
        let revision = of_workspace(&dir);
        assert_eq!(revision.id.len(), 12, "{revision:?}");
        assert!(head.starts_with(&revision.id), "{head} vs {revision:?}");
        let date = run_git(
            &dir,
            &["show", "-s", "--format=%cd", "--date=short", "HEAD"],
        );
        assert_eq!(revision.date.as_deref(), Some(date.as_str()));
        assert_eq!(date.len(), 10, "{date}");
        let git_dir = dir.join(".git");
        assert!(
            revision.watch.contains(&git_dir.join("HEAD")),
            "{revision:?}"
        );
        assert!(
            revision.watch.contains(&git_dir.join("refs/heads/main")),
            "{revision:?}"
        );
        assert!(revision.watch.iter().all(|p| p.is_file()), "{revision:?}");

        // Unpacked inside some other repository: that one's HEAD is not ours.
        let inner = dir.join("unpacked-tarball");
        std::fs::create_dir(&inner).unwrap();
        assert_eq!(of_workspace(&inner).id, UNKNOWN);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
