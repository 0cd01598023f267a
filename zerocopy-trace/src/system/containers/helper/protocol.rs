//! What the agent and its names helper say to each other over their socket pair: lines of
//! tab-separated fields, small and bounded, so that either side can refuse what the other sends
//! without trusting it.
//!
//! Once confined, the helper says `ready`: the agent goes on only then, so it never gives up
//! its privileges beside a helper that still has them. The agent then sends `list`. The helper answers with, for each source it was started with (by
//! its index in that list), the containers it named, then one line saying how asking it went,
//! and `end`:
//!
//! ```text
//! container <TAB> 0 <TAB> <id> <TAB> <name> <TAB> <pod> <TAB> <namespace> <TAB> <image> <TAB> <pod uid>
//! answered <TAB> 0
//! absent <TAB> 1
//! failed <TAB> 2 <TAB> permission denied (it needs the socket's owner or group)
//! end
//! ```
//!
//! Nothing is escaped: a field may hold no control character at all (no runtime gives a
//! container, pod, namespace or image such a name), and the helper leaves out a container
//! whose fields do not fit. The agent refuses a line longer than `MAX_LINE`, an answer longer
//! than `MAX_ANSWER` or with more than `MAX_CONTAINERS` containers, a field out of bounds, a
//! source index it did not give, and a source that answers twice or after its status line:
//! any of those means the helper is not the one it started, and it is not asked again.

use super::super::{ApiError, Named};
use crate::snapshot::ContainerNames;

/// The helper's first line, once it is confined.
pub const READY: &[u8] = b"ready\n";
/// The one request.
pub const REQUEST: &[u8] = b"list\n";
/// Longest line either side accepts, its newline included.
pub const MAX_LINE: usize = 4096;
/// Most containers in one answer (the agent's cache holds no more).
pub const MAX_CONTAINERS: usize = 65_536;
/// Longest answer, in bytes: `MAX_CONTAINERS` containers of a generous 256 bytes each.
pub const MAX_ANSWER: usize = MAX_CONTAINERS * 256;
/// Longest container id (the runtimes' are 64 hex digits).
const MAX_ID: usize = 128;
/// Longest name, pod, namespace or pod UID (Kubernetes' names are at most 253 bytes).
const MAX_NAME: usize = 253;
/// Longest image reference (a name, a tag and a digest).
const MAX_IMAGE: usize = 1024;
/// Longest reason a source failed.
const MAX_REASON: usize = 512;

/// A line of the protocol was not what it must be.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("the names helper said something it may not: {0}")]
pub struct Violation(pub String);

fn violation(what: impl Into<String>) -> Violation {
    Violation(what.into())
}

/// How asking one source went, as the helper tells it.
#[derive(Debug)]
pub enum Outcome {
    /// It answered: these containers.
    Answered(Vec<Named>),
    /// It is not there (said once, not warned about).
    Absent,
    /// It is there but failed, and why.
    Failed(String),
}

/// The helper's side: one answer's lines for `answers` (one per source, in order).
pub fn encode_answer<'a>(
    answers: impl IntoIterator<Item = &'a Result<Vec<Named>, ApiError>>,
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut containers = 0;
    for (index, answer) in answers.into_iter().enumerate() {
        match answer {
            Ok(list) => {
                for named in list {
                    if containers == MAX_CONTAINERS {
                        break;
                    }
                    if let Some(line) = container_line(index, named) {
                        out.extend_from_slice(line.as_bytes());
                        containers += 1;
                    }
                }
                out.extend_from_slice(format!("answered\t{index}\n").as_bytes());
            }
            Err(err) if err.is_absent() => {
                out.extend_from_slice(format!("absent\t{index}\n").as_bytes());
            }
            Err(err) => {
                out.extend_from_slice(
                    format!("failed\t{index}\t{}\n", reason(&err.to_string())).as_bytes(),
                );
            }
        }
    }
    out.extend_from_slice(b"end\n");
    out
}

/// A container's line, or `None` when a field does not fit (left out rather than cut: a cut
/// name would be a wrong one).
fn container_line(index: usize, named: &Named) -> Option<String> {
    let n = &named.names;
    let fields = [
        (named.id.as_str(), MAX_ID),
        (n.name.as_str(), MAX_NAME),
        (n.pod.as_str(), MAX_NAME),
        (n.namespace.as_str(), MAX_NAME),
        (n.image.as_str(), MAX_IMAGE),
        (named.pod_uid.as_str(), MAX_NAME),
    ];
    if !valid_id(&named.id) || fields.iter().any(|(f, max)| !valid_field(f, *max)) {
        return None;
    }
    let line = format!(
        "container\t{index}\t{}\n",
        fields.map(|(field, _)| field).join("\t")
    );
    (line.len() <= MAX_LINE).then_some(line)
}

/// A failure's reason on one line, within `MAX_REASON` bytes.
fn reason(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if out.len() + c.len_utf8() > MAX_REASON {
            break;
        }
        out.push(c);
    }
    out
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn valid_field(field: &str, max: usize) -> bool {
    field.len() <= max && !field.chars().any(char::is_control)
}

/// The agent's side: an answer read line by line, checked as it comes.
pub struct Answer {
    /// How many sources the helper was given.
    sources: usize,
    outcomes: Vec<Option<Outcome>>,
    /// Containers of sources whose status line has not come yet.
    pending: Vec<Vec<Named>>,
    containers: usize,
    bytes: usize,
    ended: bool,
}

impl Answer {
    pub fn new(sources: usize) -> Answer {
        Answer {
            sources,
            outcomes: (0..sources).map(|_| None).collect(),
            pending: vec![Vec::new(); sources],
            containers: 0,
            bytes: 0,
            ended: false,
        }
    }

    /// Whether `end` has come.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Takes one line (without its newline).
    pub fn line(&mut self, line: &[u8]) -> Result<(), Violation> {
        if self.ended {
            return Err(violation("a line after the end"));
        }
        self.bytes += line.len() + 1;
        if line.len() + 1 > MAX_LINE || self.bytes > MAX_ANSWER {
            return Err(violation("an answer too long"));
        }
        let line = std::str::from_utf8(line).map_err(|_| violation("a line not in UTF-8"))?;
        let mut fields = line.split('\t');
        let kind = fields.next().unwrap_or_default();
        if kind == "end" {
            if fields.next().is_some() {
                return Err(violation("`end` with fields"));
            }
            self.ended = true;
            return Ok(());
        }
        let index = self.index(fields.next())?;
        if self.outcomes[index].is_some() {
            return Err(violation(format!("source {index} answered twice")));
        }
        let rest: Vec<&str> = fields.collect();
        match (kind, rest.as_slice()) {
            ("container", [id, name, pod, namespace, image, pod_uid]) => {
                self.containers += 1;
                if self.containers > MAX_CONTAINERS {
                    return Err(violation("too many containers"));
                }
                let named = container(id, name, pod, namespace, image, pod_uid)?;
                self.pending[index].push(named);
            }
            ("answered", []) => {
                let list = std::mem::take(&mut self.pending[index]);
                self.outcomes[index] = Some(Outcome::Answered(list));
            }
            ("absent", []) => self.outcome(index, Outcome::Absent)?,
            ("failed", [why]) => {
                if !valid_field(why, MAX_REASON) {
                    return Err(violation("a reason out of bounds"));
                }
                self.outcome(index, Outcome::Failed(why.to_string()))?;
            }
            _ => {
                let shown: String = line.chars().take(40).collect();
                return Err(violation(format!("an unknown line {shown:?}")));
            }
        }
        Ok(())
    }

    fn index(&self, field: Option<&str>) -> Result<usize, Violation> {
        field
            .filter(|f| !f.is_empty() && f.len() <= 5 && f.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|f| f.parse::<usize>().ok())
            .filter(|&i| i < self.sources)
            .ok_or_else(|| violation("a source it was not given"))
    }

    fn outcome(&mut self, index: usize, outcome: Outcome) -> Result<(), Violation> {
        if !self.pending[index].is_empty() {
            return Err(violation(format!(
                "containers of source {index}, which did not answer"
            )));
        }
        self.outcomes[index] = Some(outcome);
        Ok(())
    }

    /// Every source's outcome, once `end` has come; a source the helper said nothing of
    /// failed.
    pub fn finish(self) -> Result<Vec<Outcome>, Violation> {
        if !self.ended {
            return Err(violation("an answer without its end"));
        }
        if self.pending.iter().any(|p| !p.is_empty()) {
            return Err(violation("containers of a source without its status"));
        }
        Ok(self
            .outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Outcome::Failed("the names helper said nothing".into())))
            .collect())
    }
}

fn container(
    id: &str,
    name: &str,
    pod: &str,
    namespace: &str,
    image: &str,
    pod_uid: &str,
) -> Result<Named, Violation> {
    let fits = valid_id(id)
        && valid_field(name, MAX_NAME)
        && valid_field(pod, MAX_NAME)
        && valid_field(namespace, MAX_NAME)
        && valid_field(image, MAX_IMAGE)
        && valid_field(pod_uid, MAX_NAME);
    if !fits {
        return Err(violation("a container's field out of bounds"));
    }
    Ok(Named {
        id: id.to_string(),
        names: ContainerNames {
            name: name.to_string(),
            pod: pod.to_string(),
            namespace: namespace.to_string(),
            image: image.to_string(),
        },
        pod_uid: pod_uid.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(id: &str, name: &str) -> Named {
        Named {
            id: id.into(),
            names: ContainerNames {
                name: name.into(),
                pod: "shop-0".into(),
                namespace: "prod".into(),
                image: "nginx:1.27".into(),
            },
            pod_uid: "7c9e6679-7425-40de-944b-e07fc1f90ae7".into(),
        }
    }

    fn read(bytes: &[u8], sources: usize) -> Result<Vec<Outcome>, Violation> {
        let mut answer = Answer::new(sources);
        let whole_lines = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        for line in whole_lines.split(|&b| b == b'\n') {
            answer.line(line)?;
        }
        answer.finish()
    }

    #[test]
    fn an_answer_round_trips() {
        let id = "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb";
        let answers = vec![
            Ok(vec![
                named(id, "web"),
                named("bad id!", "x"),
                named("ab", "a\tb"),
            ]),
            Err(ApiError::Absent(std::io::ErrorKind::NotFound.into())),
            Err(ApiError::Denied),
            Ok(vec![]),
        ];
        let bytes = encode_answer(&answers);
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert_eq!(
            text,
            format!(
                "container\t0\t{id}\tweb\tshop-0\tprod\tnginx:1.27\t7c9e6679-7425-40de-944b-e07fc1f90ae7\n\
                 answered\t0\nabsent\t1\n\
                 failed\t2\tpermission denied (it needs the socket's owner or group)\n\
                 answered\t3\nend\n"
            ),
            "a container whose fields do not fit is left out"
        );
        let outcomes = read(&bytes, 4).unwrap();
        assert!(matches!(&outcomes[0], Outcome::Answered(list) if *list == vec![named(id, "web")]));
        assert!(matches!(outcomes[1], Outcome::Absent));
        assert!(
            matches!(&outcomes[2], Outcome::Failed(why) if why.starts_with("permission denied"))
        );
        assert!(matches!(&outcomes[3], Outcome::Answered(list) if list.is_empty()));
    }

    #[test]
    fn a_reason_is_one_bounded_line() {
        let long = format!("line one\nline two{}", "é".repeat(400));
        let said = reason(&long);
        assert!(said.starts_with("line one line two"));
        assert!(said.len() <= MAX_REASON && said.len() > MAX_REASON - 2);
    }

    #[test]
    fn what_the_helper_may_not_say_is_refused() {
        let id = "ab12";
        let ok = format!("container\t0\t{id}\tweb\t\t\t\t\n");
        for (bytes, why) in [
            (
                format!("{ok}answered\t0\nanswered\t0\nend\n"),
                "answered twice",
            ),
            (format!("{ok}answered\t0\n{ok}end\n"), "answered twice"),
            ("answered\t1\nend\n".to_string(), "not given"),
            ("answered\t-0\nend\n".to_string(), "not given"),
            (
                "answered\t00000000000000000000\nend\n".to_string(),
                "not given",
            ),
            (format!("{ok}absent\t0\nend\n"), "did not answer"),
            (format!("{ok}end\n"), "without its status"),
            ("container\t0\tab\tweb\n".to_string(), "unknown line"),
            (
                "container\t0\tnot-hex!\t\t\t\t\t\nanswered\t0\nend\n".to_string(),
                "out of bounds",
            ),
            (
                format!("container\t0\t{id}\t{}\t\t\t\t\n", "n".repeat(254)),
                "out of bounds",
            ),
            ("hello\t0\nend\n".to_string(), "unknown line"),
            ("end\textra\n".to_string(), "`end` with fields"),
            ("answered\t0\n".to_string(), "without its end"),
            (format!("answered\t0\nend\n{ok}"), "after the end"),
            (
                format!("failed\t0\t{}\nend\n", "x".repeat(513)),
                "reason out of bounds",
            ),
            (
                format!("answered\t0\t{}\nend\n", "x".repeat(MAX_LINE)),
                "too long",
            ),
        ] {
            let err = read(bytes.as_bytes(), 1).unwrap_err();
            assert!(err.0.contains(why), "{bytes:?}: {err}");
        }
        let mut answer = Answer::new(1);
        assert!(answer
            .line(b"answered\t0\xff")
            .unwrap_err()
            .0
            .contains("UTF-8"));
        // A source the helper says nothing of failed.
        let outcomes = read(b"end\n", 1).unwrap();
        assert!(matches!(&outcomes[0], Outcome::Failed(why) if why.contains("said nothing")));
    }

    #[test]
    fn an_answer_is_bounded() {
        let mut answer = Answer::new(1);
        let long = "n".repeat(MAX_NAME);
        let line = format!("container\t0\tab\t{long}\t{long}\t\t\t");
        let mut refused = None;
        for n in 0..=MAX_CONTAINERS {
            if let Err(err) = answer.line(line.as_bytes()) {
                refused = Some((n, err));
                break;
            }
        }
        let (n, err) = refused.expect("refused at some point");
        assert!(err.0.contains("too long"), "{err}");
        assert_eq!(n, MAX_ANSWER / (line.len() + 1));
        let mut answer = Answer::new(1);
        let short = "container\t0\tab\t\t\t\t\t";
        for _ in 0..MAX_CONTAINERS {
            answer.line(short.as_bytes()).unwrap();
        }
        assert!(answer
            .line(short.as_bytes())
            .unwrap_err()
            .0
            .contains("too many"));
        // The helper's side never writes more than the agent takes.
        let many: Vec<Named> = (0..MAX_CONTAINERS + 5)
            .map(|i| named(&format!("{i:x}"), "w"))
            .collect();
        let bytes = encode_answer(&[Ok(many)]);
        let outcomes = read(&bytes, 1).unwrap();
        assert!(matches!(&outcomes[0], Outcome::Answered(list) if list.len() == MAX_CONTAINERS));
    }
}
