//! Which shim serves a container, and how a serving shim admits more containers.
//!
//! containerd runs the `start` action once per container and talks to whatever address it
//! prints: a new shim's or a running one's (containerd's runtime v2 README). A pod's
//! containers share their pod's shim, as with runc's shim. Containers outside pods (`ctr`,
//! nerdctl, Docker) share shims too, up to `containers_per_shim` (operator config) each: a
//! shim and the relocated data of this PIE binary (about 2 MiB per process, shared with the
//! inits it forks) then cost a container a fraction of that. The price is the blast radius:
//! a shim that dies takes every container it serves with it (guests never run in the shim,
//! so a guest cannot crash it). `containers_per_shim = 1` gives every container its own.
//!
//! A shared shim is found by name: `<key>:0`, `<key>:1`, ... where the key names this
//! binary (a replaced binary starts new shims rather than joining old code), the handler's
//! config and the limit. The `start` action asks a running shim to admit the container
//! with a `Connect` call whose id carries [`JOIN_PREFIX`]; the shim counts it against its
//! limit until its Create arrives ([`Admission`]), so it never exits between the answer
//! and the Create, and a full or exiting shim says no and the action tries the next name.
//! Running shims with room come first; a new shim takes the first unused name.
//!
//! Pods share shims the same way when the operator allows more than one per shim
//! (`pods_per_shim`): the pod's sandbox (its pause container) is admitted as one pod, counted
//! against the limit with every container of its pod, and the pod's other containers go to
//! the shim their sandbox went to (its address is in the sandbox's bundle). containerd 2.x
//! sends them there itself, without a `start` action.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// Containers one shim serves outside pods unless the operator config says otherwise.
pub const DEFAULT_CONTAINERS_PER_SHIM: usize = 16;
/// Pods one shim serves unless the operator config says otherwise (`1`: a shim per pod, as
/// with runc).
pub const DEFAULT_PODS_PER_SHIM: usize = 16;
/// How the `start` action tells the serving process its limit.
pub const LIMIT_ENV: &str = "WASMBOX_CONTAINERS_PER_SHIM";
/// How the `start` action tells the serving process what its limit counts.
pub const COUNTING_ENV: &str = "WASMBOX_SHIM_COUNTS";
/// Annotation CRI sets on every container of a pod: the id of the pod's sandbox.
pub const SANDBOX_ID_ANNOTATION: &str = "io.kubernetes.cri.sandbox-id";
/// Prefix of a `Connect` id that asks to admit a container (containerd ids have no ':').
pub const JOIN_PREFIX: &str = "wasmbox.join:";
/// How long an admitted container's place is kept for its Create.
pub const RESERVATION_TTL: Duration = Duration::from_secs(30);
/// Overrides [`RESERVATION_TTL`] in milliseconds (for tests of the lapse).
pub const RESERVATION_TTL_ENV: &str = "WASMBOX_RESERVATION_TTL_MS";

/// The lapse of an admitted container's place: [`RESERVATION_TTL`] unless the environment says.
pub fn reservation_ttl() -> Duration {
    std::env::var(RESERVATION_TTL_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(RESERVATION_TTL)
}
/// Names a `start` action looks at (16 per shim: 65 536 containers).
pub const MAX_SLOTS: usize = 4096;
/// Unused names in a row after which a `start` action stops looking for running shims
/// (shims exit when empty, so running ones cluster at the low names).
pub const SCAN_GAP: usize = 8;
/// Times a `start` action starts a shim and finds it taken by racing actions before it fails.
pub const START_ATTEMPTS: usize = 8;

/// Where a container goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Its pod's shim, named by the sandbox id; started by the first container of the pod.
    Pod(String),
    /// A container of a pod whose sandbox went to a shared shim: that shim.
    PodMember { sandbox: String },
    /// A shim of its own, named by the container id.
    Own(String),
    /// A shared shim of this key with room left.
    Shared { key: String, limit: usize, counts: Counting },
}

/// What a shared shim's limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counting {
    /// Containers outside pods.
    Containers,
    /// Pods, each with all its containers.
    Pods,
}

impl Counting {
    /// The value of [`COUNTING_ENV`].
    pub fn as_env(self) -> &'static str {
        match self {
            Counting::Containers => "containers",
            Counting::Pods => "pods",
        }
    }

    /// What the serving process was started to count.
    pub fn from_env() -> Self {
        match std::env::var(COUNTING_ENV).as_deref() {
            Ok("pods") => Counting::Pods,
            _ => Counting::Containers,
        }
    }
}

/// How many containers outside pods, and how many pods, one shim may serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub containers: usize,
    pub pods: usize,
}

/// Decides the placement of container `id` from its pod's sandbox id (if any), the operator's
/// limits and `identity` (this binary and the handler's config, see [`binary_identity`]).
pub fn placement(id: &str, sandbox_id: Option<&str>, limits: Limits, identity: &str) -> Placement {
    // containerd-shim hashes the group into the socket's name, so any text will do.
    if let Some(sandbox) = sandbox_id.filter(|s| !s.is_empty()) {
        return if limits.pods <= 1 {
            Placement::Pod(sandbox.to_string())
        } else if sandbox != id {
            Placement::PodMember { sandbox: sandbox.to_string() }
        } else {
            Placement::Shared {
                key: format!("wasmbox-pods:{identity}:{}", limits.pods),
                limit: limits.pods,
                counts: Counting::Pods,
            }
        };
    }
    if limits.containers <= 1 {
        return Placement::Own(id.to_string());
    }
    Placement::Shared {
        key: format!("wasmbox-shared:{identity}:{}", limits.containers),
        limit: limits.containers,
        counts: Counting::Containers,
    }
}

/// The pod a bundle's container belongs to (CRI's sandbox id annotation), if any.
pub fn sandbox_id(bundle: &Path) -> Option<String> {
    let spec = oci_spec::runtime::Spec::load(bundle.join("config.json")).ok()?;
    spec.annotations()
        .as_ref()?
        .get(SANDBOX_ID_ANNOTATION)
        .filter(|s| !s.is_empty())
        .cloned()
}

/// The group (hashed into the socket's name) of a shared shim's `slot`.
pub fn slot_group(key: &str, slot: usize) -> String {
    format!("{key}:{slot}")
}

/// This binary as installed now, plus the handler's config path: containers started by a
/// replaced binary, or under another handler, never join a shim of the old one.
pub fn binary_identity(config: Option<&Path>) -> String {
    let exe = std::fs::metadata("/proc/self/exe")
        .map(|m| format!("{}:{}:{}:{}.{}", m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec()))
        .unwrap_or_default();
    format!("{exe}:{}", config.map(|p| p.display().to_string()).unwrap_or_default())
}

/// The limit the serving process was started with (pods: none).
pub fn limit_from_env() -> usize {
    std::env::var(LIMIT_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n >= 1)
        .unwrap_or(usize::MAX)
}

/// Why a shim would not admit a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the shim serves its limit of containers")]
    Full,
    #[error("the shim is exiting")]
    Exiting,
}

/// A serving shim's count of containers on their way in, and its decision to exit.
#[derive(Debug)]
pub struct Admission {
    limit: usize,
    ttl: Duration,
    /// Admitted containers whose Create has not come yet, with when their place lapses.
    reserved: HashMap<String, Instant>,
    /// Containers whose Create is under way (a first start may compile for minutes), and
    /// whether containerd gave it up meanwhile (see [`Self::abandon`]).
    creating: HashMap<String, bool>,
    /// Those of them that take no place of their own (a pod's containers beside its sandbox).
    members: std::collections::HashSet<String>,
    /// containerd asked the shim to exit (after a Delete), or an admitted container never came.
    exit_wanted: bool,
    /// Decided to exit: nobody is admitted any more.
    exiting: bool,
}

impl Admission {
    pub fn new(limit: usize, ttl: Duration) -> Self {
        Self {
            limit: limit.max(1),
            ttl,
            reserved: HashMap::new(),
            creating: HashMap::new(),
            members: std::collections::HashSet::new(),
            exit_wanted: false,
            exiting: false,
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// How long a place is held for a Create that has not begun.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Admits container `id` next to `used` places the running tasks take (one per container,
    /// or per pod), or says why not.
    pub fn reserve(&mut self, id: &str, used: usize, now: Instant) -> Result<(), Refusal> {
        self.expire(now);
        if self.exiting {
            return Err(Refusal::Exiting);
        }
        let creating = self.creating.keys().filter(|k| !self.members.contains(*k)).count();
        let others = self.reserved.keys().filter(|k| *k != id).count() + creating;
        if used + others >= self.limit {
            return Err(Refusal::Full);
        }
        self.reserved.insert(id.to_string(), now + self.ttl);
        Ok(())
    }

    /// Create of `id` began: its place is held, without lapsing, until [`Self::created`].
    pub fn creating(&mut self, id: &str) {
        self.reserved.remove(id);
        self.creating.insert(id.to_string(), false);
    }

    /// Create of `id`, a container of a pod this shim already serves, began: it takes no
    /// place, but the shim stays for it as for any Create under way.
    pub fn creating_member(&mut self, id: &str) {
        self.creating(id);
        self.members.insert(id.to_string());
    }

    /// Create of `id` ended (a task now, or failed): it no longer holds a place of its own.
    /// True when containerd gave it up meanwhile: what it made must be undone, and the shim
    /// exits once nothing else is left (containerd will send no Delete or Shutdown for it).
    pub fn created(&mut self, id: &str) -> bool {
        self.members.remove(id);
        let abandoned = self.creating.remove(id).unwrap_or(false);
        if abandoned {
            self.exit_wanted = true;
        }
        abandoned
    }

    /// containerd gave up the Create of `id` under way (its connection closed, its deadline
    /// passed, or it deleted the task before the Create answered). False if none is under way.
    pub fn abandon(&mut self, id: &str) -> bool {
        match self.creating.get_mut(id) {
            Some(abandoned) => {
                *abandoned = true;
                true
            }
            None => false,
        }
    }

    /// containerd's Shutdown: exit once nothing is left.
    pub fn want_exit(&mut self) {
        self.exit_wanted = true;
    }

    /// True, once, when the shim should exit now: exit was wanted, no task is left and no
    /// admitted container is still to come. From then on nobody is admitted.
    pub fn should_exit(&mut self, tasks: usize, now: Instant) -> bool {
        self.expire(now);
        if self.exiting || !self.exit_wanted || tasks > 0 || !self.reserved.is_empty() || !self.creating.is_empty() {
            return false;
        }
        self.exiting = true;
        true
    }

    fn expire(&mut self, now: Instant) {
        let before = self.reserved.len();
        self.reserved.retain(|_, lapses| *lapses > now);
        if self.reserved.len() < before {
            // Its Create will not come (containerd gave up on it): nothing else would end
            // a shim that has served nobody.
            self.exit_wanted = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(containers: usize, pods: usize) -> Limits {
        Limits { containers, pods }
    }

    #[test]
    fn pods_keep_their_shim_and_a_limit_of_one_gives_each_its_own() {
        assert_eq!(placement("c", Some("pod1"), limits(16, 1), "x"), Placement::Pod("pod1".into()));
        assert_eq!(placement("c", Some(""), limits(1, 1), "x"), Placement::Own("c".into()));
        assert_eq!(placement("c", None, limits(0, 8), "x"), Placement::Own("c".into()));
    }

    #[test]
    fn shared_pods_place_the_sandbox_and_send_its_containers_after_it() {
        let sandbox = placement("pod1", Some("pod1"), limits(16, 8), "x");
        let Placement::Shared { key, limit, counts } = sandbox else { panic!("{sandbox:?}") };
        assert_eq!((limit, counts), (8, Counting::Pods));
        let Placement::Shared { key: containers_key, .. } = placement("c", None, limits(8, 8), "x") else { panic!() };
        assert_ne!(key, containers_key, "pods never share a shim counting containers");
        assert_eq!(placement("c", Some("pod1"), limits(16, 8), "x"), Placement::PodMember { sandbox: "pod1".into() });
    }

    #[test]
    fn a_pods_containers_take_no_place_of_their_own() {
        let now = Instant::now();
        let mut a = Admission::new(2, RESERVATION_TTL);
        a.reserve("pod1", 0, now).unwrap();
        a.creating("pod1");
        a.created("pod1");
        a.creating_member("c1");
        assert_eq!(a.reserve("pod2", 1, now), Ok(()), "c1's Create holds no place");
        a.creating("pod2");
        assert_eq!(a.reserve("pod3", 1, now), Err(Refusal::Full));
        a.want_exit();
        a.created("pod2");
        assert!(!a.should_exit(0, now), "c1's Create is under way");
        a.created("c1");
        assert!(a.should_exit(0, now));
    }

    #[test]
    fn shared_keys_differ_by_binary_config_and_limit() {
        let key = |identity: &str, limit| match placement("c", None, limits(limit, 1), identity) {
            Placement::Shared { key, .. } => key,
            p => panic!("{p:?}"),
        };
        assert_eq!(key("a", 16), key("a", 16));
        assert_ne!(key("a", 16), key("b", 16));
        assert_ne!(key("a", 16), key("a", 8));
        assert_eq!(slot_group("k", 3), "k:3");
    }

    #[test]
    fn identity_names_the_config() {
        assert_ne!(binary_identity(None), binary_identity(Some(Path::new("/etc/x.toml"))));
        assert_eq!(binary_identity(None), binary_identity(None));
    }

    #[test]
    fn admits_up_to_the_limit_counting_places_held() {
        let now = Instant::now();
        let mut a = Admission::new(3, RESERVATION_TTL);
        assert_eq!(a.reserve("a", 1, now), Ok(()));
        assert_eq!(a.reserve("b", 1, now), Ok(()));
        assert_eq!(a.reserve("c", 1, now), Err(Refusal::Full));
        // Asking again for a held place is not a second place.
        assert_eq!(a.reserve("b", 1, now), Ok(()));
        a.creating("a");
        assert_eq!(a.reserve("c", 1, now), Err(Refusal::Full), "a Create under way holds its place");
        a.created("a");
        assert_eq!(a.reserve("c", 2, now), Err(Refusal::Full));
        assert_eq!(a.reserve("c", 1, now), Ok(()));
    }

    #[test]
    fn exits_only_when_wanted_and_nobody_is_left_or_coming() {
        let now = Instant::now();
        let mut a = Admission::new(16, RESERVATION_TTL);
        assert!(!a.should_exit(0, now), "a fresh shim waits for its first Create");
        a.reserve("a", 0, now).unwrap();
        a.want_exit();
        assert!(!a.should_exit(0, now), "a container is on its way");
        a.creating("a");
        let later = now + RESERVATION_TTL * 10;
        assert!(!a.should_exit(0, later), "a Create under way (compiling) does not lapse");
        a.created("a");
        assert!(!a.should_exit(1, now), "a task is left");
        assert!(a.should_exit(0, now));
        assert!(!a.should_exit(0, now), "decided once");
        assert_eq!(a.reserve("b", 0, now), Err(Refusal::Exiting));
    }

    #[test]
    fn an_abandoned_create_is_undone_and_lets_the_shim_exit() {
        let now = Instant::now();
        let mut a = Admission::new(16, RESERVATION_TTL);
        assert!(!a.abandon("a"), "nothing under way");
        a.reserve("a", 0, now).unwrap();
        a.creating("a");
        assert!(a.abandon("a"));
        assert!(!a.should_exit(0, now), "its Create is still under way");
        assert!(a.created("a"), "the Create learns it was given up");
        assert!(a.should_exit(0, now), "nothing is left and containerd sends no Shutdown");
        let mut b = Admission::new(16, RESERVATION_TTL);
        b.creating("b");
        assert!(!b.created("b"));
    }

    #[test]
    fn a_place_never_taken_lapses_and_lets_an_empty_shim_exit() {
        let now = Instant::now();
        let mut a = Admission::new(2, RESERVATION_TTL);
        a.reserve("a", 0, now).unwrap();
        assert!(!a.should_exit(0, now));
        let later = now + RESERVATION_TTL + Duration::from_millis(1);
        assert!(a.should_exit(0, later));
    }

    #[test]
    fn a_place_lapsing_does_not_end_a_shim_with_tasks() {
        let now = Instant::now();
        let mut a = Admission::new(2, RESERVATION_TTL);
        a.reserve("a", 1, now).unwrap();
        let later = now + RESERVATION_TTL + Duration::from_millis(1);
        assert!(!a.should_exit(1, later));
        assert!(a.should_exit(0, later));
    }
}
