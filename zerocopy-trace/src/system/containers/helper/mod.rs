//! The names helper: a small process of our own binary that asks the container runtimes for
//! names on the agent's behalf, so that the agent itself can give up everything the runtimes'
//! sockets need.
//!
//! Once attached the agent becomes `nobody` and no socket can be made under its seccomp
//! allow-list, while Docker's, Podman's and containerd's sockets are root's (0600 or 0660) and
//! kubelet's log directories are read by root. So, while still privileged, the agent starts
//! this helper (`spawn`): `/proc/self/exe names-helper`, a hidden subcommand, with the sources
//! fixed on its command line and one end of a socket pair as its standard input. The helper
//! (`serve`) keeps root's uid, the owner of those sockets, and nothing else: no capability,
//! no group, `NoNewPrivs`, not dumpable, and its own seccomp allow-list (unix sockets only,
//! files opened for reading only, no program run), says `ready`, which the agent waits for
//! before it drops its own privileges, and answers each `list` with what each source said
//! (`protocol`), at most once a second. It ends with the agent: its parent's death signal, and
//! the end of the socket pair.
//!
//! Each side trusts the other with nothing: the helper asks only the sources it was started
//! with, whatever the agent says, and takes only the one request; the agent reads bounded
//! lines within a deadline and, on anything else, stops asking and shows containers by id.

mod protocol;
pub mod serve;

use std::{
    io::{self, Read, Write},
    os::{fd::OwnedFd, unix::net::UnixStream, unix::process::CommandExt},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use self::protocol::{Answer, Outcome, Violation, MAX_LINE, READY, REQUEST};
use super::{Answers, ApiError, Source, Sources, ANSWER_TIMEOUT, RELIST_INTERVAL};

/// The hidden subcommand the helper runs as.
pub const SUBCOMMAND: &str = "names-helper";

/// The longest the agent waits for a new helper to be confined (it takes milliseconds).
const READY_WITHIN: Duration = Duration::from_secs(5);

/// Why the helper could not be asked (it is then asked no more).
#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    #[error("the names helper: {0}")]
    Io(#[from] io::Error),
    #[error("the names helper ended")]
    Ended,
    #[error("the names helper gave no answer within {} s", .0.as_secs())]
    Timeout(Duration),
    #[error(transparent)]
    Violation(#[from] Violation),
}

/// The agent's end of a running helper.
pub struct NamesHelper {
    stream: UnixStream,
    child: Child,
    sources: Vec<Source>,
    /// The longest a whole answer may take: every source's timeout, one wait of the helper's
    /// pace, and some slack.
    answer_within: Duration,
}

impl NamesHelper {
    /// Starts the helper for `sources`, while this process still has what they need (root's
    /// uid). Relative paths are made absolute here: the helper runs in `/`.
    pub fn spawn(sources: &Sources) -> io::Result<NamesHelper> {
        let mut command = Command::new("/proc/self/exe");
        command
            .arg0("zerocopy-trace")
            .arg(SUBCOMMAND)
            .arg("--parent")
            .arg(std::process::id().to_string());
        for source in &sources.0 {
            let path = std::path::absolute(&source.path)?;
            let path = path.to_str().ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "a source path not in UTF-8")
            })?;
            command
                .arg("--names-from")
                .arg(format!("{}={path}", source.kind.name()));
        }
        NamesHelper::start(command, sources)
    }

    /// Runs `command` as the helper of `sources` and waits until it says it is ready.
    fn start(mut command: Command, sources: &Sources) -> io::Result<NamesHelper> {
        let (ours, theirs) = UnixStream::pair()?;
        command
            // Nothing of the agent's environment, working directory or terminal signals: the
            // helper ignores a Ctrl-C meant for the agent, which still wants names at its end.
            .env_clear()
            .current_dir("/")
            .process_group(0)
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let mut child = command.spawn()?;
        // The command holds the helper's end too: closed here, so a helper that dies is seen.
        drop(command);
        if let Err(err) = wait_until_ready(&ours) {
            // Still root here: a helper that did not confine itself is stopped for sure.
            let _ = child.kill();
            let _ = child.wait();
            return Err(err);
        }
        let slowest = ANSWER_TIMEOUT * u32::try_from(sources.0.len()).unwrap_or(u32::MAX);
        Ok(NamesHelper {
            stream: ours,
            child,
            sources: sources.0.clone(),
            answer_within: slowest + RELIST_INTERVAL + Duration::from_secs(2),
        })
    }

    /// The helper's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every source's answer, in order, as the helper tells it.
    pub fn list(&mut self) -> Result<Answers, HelperError> {
        self.stream.write_all(REQUEST)?;
        let deadline = Instant::now() + self.answer_within;
        let mut answer = Answer::new(self.sources.len());
        let mut pending: Vec<u8> = Vec::with_capacity(MAX_LINE);
        let mut chunk = [0u8; 16 * 1024];
        while !answer.ended() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(HelperError::Timeout(self.answer_within));
            }
            self.stream.set_read_timeout(Some(left))?;
            let n = match self.stream.read(&mut chunk) {
                Ok(0) => return Err(HelperError::Ended),
                Ok(n) => n,
                Err(err)
                    if matches!(
                        err.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) =>
                {
                    continue
                }
                Err(err) => return Err(err.into()),
            };
            pending.extend_from_slice(&chunk[..n]);
            let mut start = 0;
            while let Some(at) = pending[start..].iter().position(|&b| b == b'\n') {
                answer.line(&pending[start..start + at])?;
                start += at + 1;
                if answer.ended() && start != pending.len() {
                    return Err(Violation("bytes after the end".into()).into());
                }
            }
            pending.drain(..start);
            if pending.len() >= MAX_LINE {
                return Err(Violation("an answer too long".into()).into());
            }
        }
        let outcomes = answer.finish()?;
        Ok(self
            .sources
            .iter()
            .cloned()
            .zip(outcomes)
            .map(|(source, outcome)| {
                let answer = match outcome {
                    Outcome::Answered(list) => Ok(list),
                    Outcome::Absent => Err(ApiError::Absent(io::ErrorKind::NotFound.into())),
                    Outcome::Failed(why) => Err(ApiError::Relayed(why)),
                };
                (source, answer)
            })
            .collect())
    }
}

/// Waits, at most `READY_WITHIN`, for the helper to say it is confined.
fn wait_until_ready(mut stream: &UnixStream) -> io::Result<()> {
    stream.set_read_timeout(Some(READY_WITHIN))?;
    let mut said = [0u8; READY.len()];
    stream.read_exact(&mut said).map_err(|err| {
        let why = match err.kind() {
            io::ErrorKind::UnexpectedEof => "it ended".to_string(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                format!("not ready within {} s", READY_WITHIN.as_secs())
            }
            _ => err.to_string(),
        };
        io::Error::other(format!("the names helper did not start: {why}"))
    })?;
    if said != READY {
        return Err(io::Error::other(
            "the names helper said something else than ready",
        ));
    }
    Ok(())
}

impl Drop for NamesHelper {
    fn drop(&mut self) {
        // The end of the socket pair ends the helper (at once when it waits for a request,
        // else when it writes the answer it is working on); then it is reaped.
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::containers::SourceKind;

    fn one_source() -> Sources {
        Sources(vec![Source {
            kind: SourceKind::Docker,
            path: "/x.sock".into(),
        }])
    }

    /// A stand-in helper: a shell script on the socket pair (its standard input, where its
    /// output goes too).
    fn fake(script: &str) -> io::Result<NamesHelper> {
        let mut command = Command::new("/bin/sh");
        command.args(["-c", &format!("exec 1>&0; {script}")]);
        NamesHelper::start(command, &one_source())
    }

    const READY_THEN_LIST: &str = "printf 'ready\\n'; read request; ";

    #[test]
    fn an_answer_is_read_and_mapped_to_the_sources() {
        let mut helper = fake(&format!(
            "{READY_THEN_LIST}printf 'container\\t0\\tab12\\tweb\\t\\t\\t\\t\\nanswered\\t0\\nend\\n'; \
             read request; printf 'failed\\t0\\tpermission denied\\nend\\n'; read request"
        ))
        .unwrap();
        let answers = helper.list().unwrap();
        assert_eq!(answers.len(), 1);
        assert_eq!(answers[0].0, one_source().0[0]);
        let list = answers[0].1.as_ref().unwrap();
        assert_eq!(
            (list[0].id.as_str(), list[0].names.name.as_str()),
            ("ab12", "web")
        );
        let answers = helper.list().unwrap();
        let err = answers[0].1.as_ref().unwrap_err();
        assert!(!err.is_absent());
        assert_eq!(err.to_string(), "permission denied");
    }

    #[test]
    fn a_helper_that_misbehaves_is_given_up() {
        let mut after_end = fake(&format!(
            "{READY_THEN_LIST}printf 'answered\\t0\\nend\\nmore'; read request"
        ))
        .unwrap();
        let err = after_end.list().unwrap_err();
        assert!(err.to_string().contains("bytes after the end"), "{err}");

        let mut ended = fake(READY_THEN_LIST).unwrap();
        assert!(matches!(ended.list(), Err(HelperError::Ended)));

        let mut silent = fake(&format!("{READY_THEN_LIST}read request")).unwrap();
        silent.answer_within = Duration::from_millis(200);
        assert!(matches!(silent.list(), Err(HelperError::Timeout(_))));

        let endless =
            "printf 'ready\\n'; read request; while printf 'xxxxxxxxxxxxxxxx' 2>/dev/null; do :; done";
        let mut endless = fake(endless).unwrap();
        let err = endless.list().unwrap_err();
        assert!(err.to_string().contains("too long"), "{err}");
    }

    #[test]
    fn a_helper_that_does_not_say_ready_is_refused() {
        let err = fake("exit 0").err().unwrap();
        assert!(err.to_string().contains("it ended"), "{err}");
        let err = fake("printf 'hello\\n'; read request").err().unwrap();
        assert!(err.to_string().contains("something else"), "{err}");
    }
}
