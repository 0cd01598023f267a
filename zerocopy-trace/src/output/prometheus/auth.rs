//! HTTP Basic authentication against the bcrypt hashes of the web configuration's
//! `basic_auth_users`, without letting a password flood stop the scrapes.
//!
//! bcrypt is slow on purpose (about 70 ms of CPU at cost 10 here), so:
//! - credentials once verified are remembered, keyed by an HMAC under a key drawn at start (no
//!   password is kept, and a lookup's timing tells nothing): a scraper sending the same good
//!   credentials costs one bcrypt in the exporter's life. Only verified credentials enter that
//!   set, so a flood of wrong ones cannot push the scraper's out;
//! - wrong ones are remembered too, in a bounded first-in first-out list of their own (a client
//!   retrying one wrong password costs one bcrypt);
//! - every other check runs on a blocking thread, never on the runtime's (which serves every
//!   connection), one at a time; each client address has its own budget of checks (3 at once,
//!   then one a second; IPv6 per /64), and at most `MAX_QUEUED` checks wait: past either the
//!   answer is 429 at once, without hashing. A flood from one address so costs one bcrypt a
//!   second and cannot keep a scraper at another address from its first check;
//! - an unknown user is checked against a hash of the same cost (no telling users apart by
//!   timing); bcrypt's own final comparison is constant-time.

use std::{
    collections::{BTreeMap, HashMap, HashSet, VecDeque},
    net::IpAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex, MutexGuard,
    },
    time::Duration,
};

use anyhow::{anyhow, Result};
use base64::Engine as _;
use ring::hmac;
use tokio::sync::Semaphore;

use super::token_bucket::TokenBucket;

/// Wrong credentials remembered.
const WRONG_REMEMBERED: usize = 256;
/// Verified credentials remembered (a handful of scrapers, each with its own).
const VERIFIED_REMEMBERED: usize = 64;
/// Uncached checks waiting for the hashing thread, beyond which: 429.
const MAX_QUEUED: usize = 4;
/// Client addresses whose budgets are remembered (all forgotten past it).
const MAX_CLIENTS: usize = 4096;
/// Each client's budget: this many uncached checks at once, then one per `CHECK_INTERVAL`.
const CHECK_BURST: u32 = 3;
const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// What a request's credentials are worth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// 401.
    Unauthorized,
    /// Too many checks: 429, without hashing.
    Throttled,
}

type Tag = [u8; 32];

/// The users and what is remembered of their checks.
pub struct BasicAuth {
    /// user -> bcrypt hash.
    users: BTreeMap<String, String>,
    /// Checked when the user is unknown, at the cost of the real hashes.
    stand_in: String,
    key: hmac::Key,
    verified: Mutex<HashSet<Tag>>,
    wrong: Mutex<(HashSet<Tag>, VecDeque<Tag>)>,
    budgets: Mutex<HashMap<u128, TokenBucket>>,
    queued: AtomicUsize,
    hashing: Semaphore,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl BasicAuth {
    /// `users` maps names to bcrypt hashes (already checked to be hashes).
    pub fn new(users: BTreeMap<String, String>) -> Result<BasicAuth> {
        let cost = users
            .values()
            .filter_map(|hash| hash.parse::<bcrypt::HashParts>().ok())
            .map(|parts| parts.get_cost())
            .max()
            .unwrap_or(10);
        // The stand-in is no secret: a fixed salt is enough.
        let stand_in = bcrypt::hash_with_salt("no one's password", cost, [7; 16])
            .map_err(|e| anyhow!("preparing the password checks: {e}"))?
            .to_string();
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &ring::rand::SystemRandom::new())
            .map_err(|_| anyhow!("no randomness for the key of the credentials cache"))?;
        Ok(BasicAuth {
            users,
            stand_in,
            key,
            verified: Mutex::default(),
            wrong: Mutex::default(),
            budgets: Mutex::default(),
            queued: AtomicUsize::new(0),
            hashing: Semaphore::new(1),
        })
    }

    /// Checks an `Authorization` header from `peer`.
    pub async fn check(self: &Arc<Self>, authorization: Option<&[u8]>, peer: IpAddr) -> Verdict {
        let Some((user, password)) = authorization.and_then(parse_basic) else {
            return Verdict::Unauthorized;
        };
        let tag = self.tag(&user, &password);
        if lock(&self.verified).contains(&tag) {
            return Verdict::Allowed;
        }
        if lock(&self.wrong).0.contains(&tag) {
            return Verdict::Unauthorized;
        }
        if !self.take_budget(peer) {
            return Verdict::Throttled;
        }
        if self.queued.fetch_add(1, Ordering::Relaxed) >= MAX_QUEUED {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            return Verdict::Throttled;
        }
        let permit = self.hashing.acquire().await;
        self.queued.fetch_sub(1, Ordering::Relaxed);
        let Ok(_permit) = permit else {
            return Verdict::Unauthorized;
        };
        let known = self.users.get(&user);
        let hash = known.unwrap_or(&self.stand_in).clone();
        let matches =
            tokio::task::spawn_blocking(move || bcrypt::verify(&password, &hash).unwrap_or(false))
                .await
                .unwrap_or(false);
        if known.is_some() && matches {
            let mut verified = lock(&self.verified);
            if verified.len() >= VERIFIED_REMEMBERED {
                verified.clear();
            }
            verified.insert(tag);
            Verdict::Allowed
        } else {
            let mut wrong = lock(&self.wrong);
            if wrong.0.insert(tag) {
                wrong.1.push_back(tag);
            }
            while wrong.1.len() > WRONG_REMEMBERED {
                if let Some(oldest) = wrong.1.pop_front() {
                    wrong.0.remove(&oldest);
                }
            }
            Verdict::Unauthorized
        }
    }

    fn tag(&self, user: &str, password: &[u8]) -> Tag {
        let mut context = hmac::Context::with_key(&self.key);
        context.update(&(user.len() as u64).to_le_bytes());
        context.update(user.as_bytes());
        context.update(password);
        let mut tag = [0; 32];
        tag.copy_from_slice(context.sign().as_ref());
        tag
    }

    fn take_budget(&self, peer: IpAddr) -> bool {
        let client = match peer {
            IpAddr::V4(v4) => u128::from(u32::from(v4)),
            // One budget per /64: a host has a whole /64 to pick addresses from.
            IpAddr::V6(v6) => u128::from(v6) & !((1u128 << 64) - 1),
        };
        let mut budgets = lock(&self.budgets);
        if budgets.len() >= MAX_CLIENTS && !budgets.contains_key(&client) {
            budgets.clear();
        }
        budgets
            .entry(client)
            .or_insert_with(|| TokenBucket::new(CHECK_INTERVAL, CHECK_BURST))
            .take()
    }
}

/// `Basic base64(user:password)` -> (user, password).
fn parse_basic(value: &[u8]) -> Option<(String, Vec<u8>)> {
    let value = std::str::from_utf8(value).ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let user = String::from_utf8(decoded[..colon].to_vec()).ok()?;
    Some((user, decoded[colon + 1..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cost 4, bcrypt's lowest: the tests check the logic, not the cost.
    fn auth() -> Arc<BasicAuth> {
        let hash = bcrypt::hash_with_salt("s3cret", 4, [1; 16])
            .unwrap()
            .to_string();
        Arc::new(BasicAuth::new(BTreeMap::from([("prometheus".to_string(), hash)])).unwrap())
    }

    fn header(user: &str, password: &str) -> Vec<u8> {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        format!("Basic {encoded}").into_bytes()
    }

    fn check(auth: &Arc<BasicAuth>, header: Option<&[u8]>, peer: &str) -> Verdict {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(auth.check(header, peer.parse().unwrap()))
    }

    #[test]
    fn the_right_password_and_only_it() {
        let auth = auth();
        let peer = "127.0.0.1";
        assert_eq!(
            check(&auth, Some(&header("prometheus", "s3cret")), peer),
            Verdict::Allowed
        );
        assert_eq!(
            check(&auth, Some(&header("prometheus", "wrong")), peer),
            Verdict::Unauthorized
        );
        assert_eq!(
            check(&auth, Some(&header("nobody", "s3cret")), peer),
            Verdict::Unauthorized
        );
        assert_eq!(check(&auth, None, peer), Verdict::Unauthorized);
        assert_eq!(
            check(&auth, Some(b"Bearer abc"), peer),
            Verdict::Unauthorized
        );
        assert_eq!(
            check(&auth, Some(b"Basic !!!not base64"), peer),
            Verdict::Unauthorized
        );
    }

    #[test]
    fn a_flood_of_passwords_is_throttled_but_the_verified_stay_in() {
        let auth = auth();
        assert_eq!(
            check(&auth, Some(&header("prometheus", "s3cret")), "127.0.0.1"),
            Verdict::Allowed
        );
        // The attacker's address: its budget (3 at once) is spent, then 429 without hashing.
        let verdicts: Vec<Verdict> = (0..10)
            .map(|i| {
                check(
                    &auth,
                    Some(&header("prometheus", &format!("guess{i}"))),
                    "127.0.0.2",
                )
            })
            .collect();
        assert_eq!(&verdicts[..3], &[Verdict::Unauthorized; 3]);
        assert!(
            verdicts[3..].iter().all(|&v| v == Verdict::Throttled),
            "{verdicts:?}"
        );
        // A wrong password already seen is answered from memory, without a budget.
        assert_eq!(
            check(&auth, Some(&header("prometheus", "guess0")), "127.0.0.2"),
            Verdict::Unauthorized
        );
        // The scraper, verified before, is still let in; another address still gets its checks.
        assert_eq!(
            check(&auth, Some(&header("prometheus", "s3cret")), "127.0.0.1"),
            Verdict::Allowed
        );
        assert_eq!(
            check(&auth, Some(&header("prometheus", "other")), "::1"),
            Verdict::Unauthorized
        );
    }

    #[test]
    fn basic_headers_parse() {
        assert_eq!(
            parse_basic(&header("a", "b:c")),
            Some(("a".to_string(), b"b:c".to_vec()))
        );
        assert_eq!(
            parse_basic(b"basic YTpi"),
            Some(("a".to_string(), b"b".to_vec()))
        );
        assert_eq!(parse_basic(b"Basic"), None);
        assert_eq!(parse_basic(b"Basic YWI="), None, "no colon");
    }
}
