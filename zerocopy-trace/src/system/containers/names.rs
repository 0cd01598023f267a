//! The names of the containers the trace has seen, asked of the runtimes by a thread of its
//! own so that the agent's loop never waits for one: `NameCache::names` answers at once from
//! what is known and, for an id not known yet, asks the thread to list the runtimes again
//! (at most every `RELIST_INTERVAL`; an id no runtime knows is asked about again after
//! `RETRY_UNKNOWN`). Where no runtime answers at all the containers keep their ids, and the
//! log says so once; a source that is there but refuses (a socket of another user) is
//! warned about once.
//!
//! The thread is started by `start`, which the trace calls once it has dropped its
//! capabilities: a thread inherits its creator's capabilities, and this one needs none. It
//! asks the runtimes itself only where the agent keeps what they need; an agent started as
//! root gives that up, so before it does the trace calls `start_helper`, and the thread asks
//! the names helper (`helper`) instead, which asks them for it.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Condvar, Mutex, MutexGuard},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use super::{
    ask_all,
    helper::{HelperError, NamesHelper},
    Answers, Named, Sources, RELIST_INTERVAL,
};
use crate::snapshot::ContainerNames;

/// An id no runtime knew is asked about again after this long.
pub const RETRY_UNKNOWN: Duration = Duration::from_secs(10);
/// Most names kept: far more containers than a node runs in a day.
const MAX_KNOWN: usize = 65_536;

#[derive(Default)]
struct State {
    known: HashMap<String, Named>,
    /// Ids asked for and not known yet.
    wanted: HashSet<String>,
    /// Ids no listing had, and when they were last asked about.
    unknown: HashMap<String, Instant>,
    /// Sources warned about (a warning is said once).
    warned: HashSet<String>,
    /// Whether a listing has run (the first says which sources answered).
    listed: bool,
    stop: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves plain data: keep using it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Container names by id, filled in the background.
pub struct NameCache {
    sources: Sources,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    /// The helper started by `start_helper`, until the thread takes it.
    helper: Option<NamesHelper>,
}

impl NameCache {
    /// A cache over `sources`; nothing is asked until `start`.
    pub fn new(sources: Sources) -> NameCache {
        NameCache {
            sources,
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                wake: Condvar::new(),
            }),
            thread: None,
            helper: None,
        }
    }

    /// Starts the names helper, which the thread will ask instead of the runtimes (call while
    /// the agent still has root's uid, before it gives it up). Without a source, none; where
    /// it cannot start, the thread asks the runtimes itself, with the agent's rights.
    pub fn start_helper(&mut self) {
        if self.helper.is_some() || self.sources.0.is_empty() {
            return;
        }
        match NamesHelper::spawn(&self.sources) {
            Ok(helper) => {
                log::info!(
                    "container names are asked by the names helper, pid {}",
                    helper.pid()
                );
                self.helper = Some(helper);
            }
            Err(err) => log::warn!(
                "no names helper ({err}): the runtimes are asked with the agent's own rights"
            ),
        }
    }

    /// Starts the thread that asks the runtimes (once; with no source, none). Ids asked for
    /// before are asked about then.
    pub fn start(&mut self) {
        if self.thread.is_some() || self.sources.0.is_empty() {
            return;
        }
        let shared = Arc::clone(&self.shared);
        let asker = match self.helper.take() {
            Some(helper) => Asker::Helper(helper),
            None => Asker::Direct(self.sources.clone()),
        };
        match std::thread::Builder::new()
            .name("zct-names".into())
            .spawn(move || ask(&shared, asker))
        {
            Ok(thread) => self.thread = Some(thread),
            Err(err) => log::warn!("containers are shown by id: no thread to ask runtimes ({err})"),
        }
    }

    /// The names of container `id` if a runtime gave them; if not (yet), the id is asked about.
    pub fn names(&self, id: &str) -> Option<ContainerNames> {
        let mut state = self.shared.lock();
        if let Some(named) = state.known.get(id) {
            return Some(named.names.clone());
        }
        if self.sources.0.is_empty() || state.stop {
            return None;
        }
        let retry = state
            .unknown
            .get(id)
            .is_none_or(|at| at.elapsed() >= RETRY_UNKNOWN);
        if retry && state.wanted.insert(id.to_string()) {
            self.shared.wake.notify_one();
        }
        None
    }

    /// Waits, at most `timeout`, until every id asked for has been looked up (for a report's
    /// final snapshot, taken once the trace is over: a live loop never waits).
    pub fn settle(&self, timeout: Duration) {
        if self.thread.is_none() {
            return;
        }
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        while !state.wanted.is_empty() && !state.stop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = self
                .shared
                .wake
                .wait_timeout(state, left)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|poisoned| poisoned.into_inner().0);
        }
    }

    /// Every container known by name now (for `--container NAME` and `--pod NAME`).
    #[cfg(test)]
    fn known(&self) -> Vec<Named> {
        self.shared.lock().known.values().cloned().collect()
    }
}

impl Drop for NameCache {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            // It waits at most one answer's timeout per source.
            let _ = thread.join();
        }
    }
}

/// Who the thread asks.
enum Asker {
    /// The runtimes, with the agent's own rights.
    Direct(Sources),
    /// The names helper.
    Helper(NamesHelper),
}

/// The thread: waits for ids to ask about, lists every source, files the answers.
fn ask(shared: &Shared, asker: Asker) {
    let mut list: Box<dyn FnMut() -> Result<Answers, HelperError>> = match asker {
        Asker::Direct(sources) => {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                log::warn!("containers are shown by id: no runtime to ask them with");
                return;
            };
            Box::new(move || Ok(runtime.block_on(ask_all(&sources))))
        }
        // Plain reads and writes on the socket pair: no runtime.
        Asker::Helper(mut helper) => Box::new(move || helper.list()),
    };
    let mut last_listing: Option<Instant> = None;
    loop {
        let mut state = shared.lock();
        loop {
            if state.stop {
                return;
            }
            let due = last_listing.is_none_or(|at| at.elapsed() >= RELIST_INTERVAL);
            if !state.wanted.is_empty() && due {
                break;
            }
            let wait = match last_listing {
                Some(at) if !state.wanted.is_empty() => {
                    RELIST_INTERVAL.saturating_sub(at.elapsed())
                }
                _ => Duration::from_secs(3600),
            };
            state = shared
                .wake
                .wait_timeout(state, wait)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|poisoned| poisoned.into_inner().0);
        }
        drop(state);
        last_listing = Some(Instant::now());
        let answers = list();
        let mut state = shared.lock();
        match answers {
            Ok(answers) => file(&mut state, answers),
            Err(err) => {
                // A helper that fails or says what it may not is not asked again, and no other
                // can be started without the privileges given up: no one is left to ask.
                log::warn!("{err}: containers are shown by id from now on");
                state.stop = true;
            }
        }
        // Whoever waits for the answers (`settle`).
        shared.wake.notify_all();
    }
}

/// Files one listing's answers: names learned, ids still unknown, and what to say once.
fn file(state: &mut State, answers: Answers) {
    let mut answered = Vec::new();
    for (source, answer) in answers {
        match answer {
            Ok(list) => {
                if !state.listed {
                    answered.push(format!("{source}: {} containers", list.len()));
                }
                if state.known.len() + list.len() > MAX_KNOWN {
                    state.known.clear();
                }
                for named in list {
                    merge(&mut state.known, named);
                }
            }
            Err(err) if err.is_absent() => {}
            Err(err) => {
                if state.warned.insert(source.to_string()) {
                    log::warn!("cannot ask {source} for container names: {err}");
                }
            }
        }
    }
    if !state.listed {
        if answered.is_empty() {
            log::info!(
                "no container runtime answered (asked docker, podman, the CRI and kubelet's logs at their usual places, or as --names-from says): containers are shown by id"
            );
        } else {
            log::info!("container names from {}", answered.join(", "));
        }
        state.listed = true;
    }
    let now = Instant::now();
    for id in std::mem::take(&mut state.wanted) {
        if !state.known.contains_key(&id) {
            state.unknown.insert(id, now);
        }
    }
    if state.unknown.len() > MAX_KNOWN {
        state.unknown.clear();
    }
}

/// Adds what one source says of a container to what others said: a field one source leaves
/// empty (Docker knows no pod) does not erase another's.
fn merge(known: &mut HashMap<String, Named>, named: Named) {
    match known.get_mut(&named.id) {
        None => {
            known.insert(named.id.clone(), named);
        }
        Some(old) => {
            let keep = |old: &mut String, new: String| {
                if !new.is_empty() {
                    *old = new;
                }
            };
            keep(&mut old.names.name, named.names.name);
            keep(&mut old.names.pod, named.names.pod);
            keep(&mut old.names.namespace, named.names.namespace);
            keep(&mut old.names.image, named.names.image);
            keep(&mut old.pod_uid, named.pod_uid);
        }
    }
}

/// What the sources said when asked at once (for the filters, before attach).
#[derive(Debug, Default)]
pub struct Listing {
    /// Every container they know, by id.
    pub named: Vec<Named>,
    /// Whether any source answered (an empty list is an answer).
    pub answered: bool,
    /// The sources that are there but failed, and why.
    pub problems: Vec<String>,
}

/// Every container the sources know now, asked at once.
pub fn list_now(sources: &Sources) -> Listing {
    let mut known = HashMap::new();
    let mut listing = Listing::default();
    for (source, answer) in super::ask_all_blocking(sources) {
        match answer {
            Ok(list) => {
                listing.answered = true;
                for named in list {
                    merge(&mut known, named);
                }
            }
            Err(err) if err.is_absent() => {}
            Err(err) => listing.problems.push(format!("{source}: {err}")),
        }
    }
    listing.named = known.into_values().collect();
    listing
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::containers::{ApiError, Source, SourceKind};

    fn named(id: &str, name: &str, pod: &str) -> Named {
        Named {
            id: id.into(),
            names: ContainerNames {
                name: name.into(),
                pod: pod.into(),
                ..ContainerNames::default()
            },
            pod_uid: String::new(),
        }
    }

    fn source(kind: SourceKind) -> Source {
        Source {
            kind,
            path: "/x".into(),
        }
    }

    #[test]
    fn answers_are_merged_and_misses_remembered() {
        let mut state = State::default();
        state.wanted.insert("a".into());
        state.wanted.insert("zz".into());
        file(
            &mut state,
            vec![
                (source(SourceKind::Docker), Ok(vec![named("a", "web", "")])),
                (
                    source(SourceKind::KubeletLogs),
                    Ok(vec![named("a", "", "shop-0")]),
                ),
                (
                    source(SourceKind::Podman),
                    Err(ApiError::Absent(std::io::ErrorKind::NotFound.into())),
                ),
                (source(SourceKind::Cri), Err(ApiError::Denied)),
            ],
        );
        let a = &state.known["a"];
        assert_eq!(
            (a.names.name.as_str(), a.names.pod.as_str()),
            ("web", "shop-0")
        );
        assert!(state.wanted.is_empty());
        assert!(state.unknown.contains_key("zz"));
        assert!(state.warned.contains("cri (/x)"), "warned once");
        assert!(state.listed);
    }

    #[test]
    fn a_cache_without_sources_never_asks() {
        let mut cache = NameCache::new(Sources::none());
        cache.start();
        assert!(cache.thread.is_none());
        assert_eq!(cache.names("abc"), None);
        assert!(cache.shared.lock().wanted.is_empty());
    }

    #[test]
    fn the_thread_asks_and_stops() {
        let dir = std::env::temp_dir().join(format!("zct-names-{}", std::process::id()));
        let logs = dir.join("containers");
        std::fs::create_dir_all(&logs).unwrap();
        let id = "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb";
        std::fs::write(logs.join(format!("shop-0_prod_web-{id}.log")), "").unwrap();
        let mut cache = NameCache::new(Sources(vec![Source {
            kind: SourceKind::KubeletLogs,
            path: logs.clone(),
        }]));
        assert_eq!(cache.names(id), None, "not known before the thread runs");
        cache.start();
        cache.settle(Duration::from_secs(10));
        assert!(cache.shared.lock().wanted.is_empty(), "settled");
        let deadline = Instant::now() + Duration::from_secs(10);
        let names = loop {
            if let Some(names) = cache.names(id) {
                break names;
            }
            assert!(Instant::now() < deadline, "no answer in 10 s");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(
            (
                names.name.as_str(),
                names.pod.as_str(),
                names.namespace.as_str()
            ),
            ("web", "shop-0", "prod")
        );
        assert_eq!(cache.known().len(), 1);
        drop(cache);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
