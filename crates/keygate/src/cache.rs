//! The verification cache.
//!
//! Entries are found by key id but only *used* when the SHA-256 of the full
//! presented key equals the digest stored with them (compared in constant
//! time), so knowing a key id alone never hits the cache. Keying by key id
//! makes invalidation by update/delete O(1). Only successful hash checks are
//! inserted, so a flood of random or wrong keys cannot evict the working set.
//!
//! An entry is *fresh* for `ttl`; after that the entity is re-read from the
//! store, but the secret is not hashed again as long as the stored hash is
//! the one this exact key was proven against (for `proof_ttl`). So a short
//! `ttl` (changes seen quickly, even those made by other instances) costs a
//! store read per key per `ttl`, never a burst of Argon2 work.
//!
//! Each thread also keeps its own copies of the fresh entries it keeps
//! using (a small direct-mapped table, its entities deep-copied): a hit
//! there takes no lock and touches no reference count another core uses,
//! which is what a hot key's hits on several cores contend for otherwise.
//! A copy is used only while no invalidation happened since it was made
//! (one shared counter, read-only on the hit path) and while the shared
//! entry it came from would have been fresh.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use foldhash::fast::RandomState;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use thread_local::ThreadLocal;
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use crate::entity::ApiKey;

/// SHA-256 of a full presented key.
pub type KeyDigest = [u8; 32];

/// Digest of a full presented key.
pub fn digest(raw_key: &str) -> KeyDigest {
    Sha256::digest(raw_key.as_bytes()).into()
}

/// Constant-time equality of two digests: the differences of their four
/// words are gathered without a branch, and the one comparison at the end
/// goes through subtle (whose byte-slice comparison fences every byte, a
/// quarter of the cache hit's cost; one fence gives the same guarantee).
fn same_digest(a: &KeyDigest, b: &KeyDigest) -> bool {
    let word = |d: &KeyDigest, i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&d[i * 8..i * 8 + 8]);
        u64::from_ne_bytes(w)
    };
    let differences = (0..4).fold(0, |all, i| all | (word(a, i) ^ word(b, i)));
    bool::from(differences.ct_eq(&0))
}

/// Size and lifetimes of the verification cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// How long a cached entity is used without a store read (default 1 s):
    /// the longest a change made elsewhere (another instance, a direct SQL
    /// update) can go unseen. Status, expiry and scopes are checked on every
    /// hit regardless.
    pub ttl: Duration,
    /// How long a verified key is remembered so that re-reading its entity
    /// needs no hashing (default 1 h).
    pub proof_ttl: Duration,
    /// Most keys held at once.
    pub max_entries: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(1),
            proof_ttl: Duration::from_secs(3600),
            max_entries: 100_000,
        }
    }
}

/// Stored by value: a hit clones the one `Arc` inside, and hands it out,
/// instead of cloning an `Arc<Entry>` and then the entity (shared counters
/// are what concurrent hits on one key contend for).
#[derive(Clone)]
struct Entry {
    digest: KeyDigest,
    entity: Arc<ApiKey>,
    proof: Proof,
    /// On the service's clock, so tests can move it.
    fresh_until: DateTime<Utc>,
    /// After this the entry is gone: the key must be hashed again.
    proven_until: DateTime<Utc>,
}

impl Entry {
    /// True when `digest` is the key this entry was proven for, and the
    /// proof still holds at `now`.
    fn usable(&self, digest: &KeyDigest, now: DateTime<Utc>) -> bool {
        same_digest(&self.digest, digest) && now < self.proven_until
    }
}

/// Which of the entity's hashes the presented key was proven against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proof {
    /// `key_hash`: the current secret.
    Current,
    /// `previous_key_hash`: the secret a rotation replaced, valid only
    /// until `previous_secret_expires_at`.
    Previous,
}

impl Proof {
    /// The hash of `key` this proof refers to.
    pub(crate) fn hash_in(self, key: &ApiKey) -> Option<&str> {
        match self {
            Self::Current => Some(&key.key_hash),
            Self::Previous => key.previous_key_hash.as_deref(),
        }
    }
}

impl Cached {
    /// The entity, fresh or not, and what the key was proven against.
    pub(crate) fn parts(&self) -> (&ApiKey, Proof) {
        match self {
            Self::Fresh(e, p) | Self::Stale(e, p) => (e, *p),
        }
    }
}

/// What the cache knows about a presented key.
pub(crate) enum Cached {
    /// Use the entity as it is.
    Fresh(Arc<ApiKey>, Proof),
    /// This key was proven against one of the entity's hashes; re-read
    /// the entity.
    Stale(Arc<ApiKey>, Proof),
}

/// Verified keys by key id.
pub(crate) struct VerifyCache {
    entries: Entries,
    /// Each thread's copies of the entries it keeps using.
    local: ThreadLocal<RefCell<LocalEntries>>,
    /// Moves on every invalidation. A store read that began before an
    /// invalidation may return the key as it was before the change; such a
    /// read is cached as stale (see [`VerifyCache::insert`]).
    generation: AtomicU64,
    ttl: TimeDelta,
    proof_ttl: TimeDelta,
    hashing: Mutex<Gates>,
}

/// Shards of a bounded map from key id to entries, each behind a read-write
/// lock: a hit is one hash, one read lock and one reference-count
/// increment. When a shard is full, an insert evicts an arbitrary key id
/// (only keys that passed a hash check are ever inserted, so clients
/// cannot flood it; the bound only caps memory).
struct Entries {
    shards: Box<[Shard]>,
    per_shard: usize,
    hasher: RandomState,
}

const SHARDS: usize = 16;

/// foldhash: a fraction of SipHash's cost on a 16-byte key id, and safe
/// here (randomly seeded, and only keys that passed a hash check are ever
/// inserted, so clients cannot build colliding entries).
type Shard = RwLock<HashMap<Box<str>, Pair, RandomState>>;

/// The entries of one key id, one per presented key proven against it: at
/// most two, as a rotation's grace period lets the replaced secret in
/// beside the new one (with one, clients moving over one by one would make
/// every switch between the two a store read and a slow hash).
#[derive(Default)]
struct Pair([Option<Entry>; 2]);

impl Pair {
    fn find(&self, digest: &KeyDigest) -> Option<&Entry> {
        self.0
            .iter()
            .flatten()
            .find(|e| same_digest(&e.digest, digest))
    }

    fn find_mut(&mut self, digest: &KeyDigest) -> Option<&mut Entry> {
        self.0
            .iter_mut()
            .flatten()
            .find(|e| same_digest(&e.digest, digest))
    }

    fn entries_mut(&mut self) -> impl Iterator<Item = &mut Entry> {
        self.0.iter_mut().flatten()
    }

    /// Puts `entry` in place of the one for the same presented key, else
    /// in a free place, else in place of the one proven earliest.
    fn put(&mut self, entry: Entry) {
        let at = self
            .0
            .iter()
            .position(|e| {
                e.as_ref()
                    .is_some_and(|e| same_digest(&e.digest, &entry.digest))
            })
            .or_else(|| self.0.iter().position(Option::is_none))
            .unwrap_or_else(|| {
                let proven = |i: usize| self.0[i].as_ref().map(|e| e.proven_until);
                usize::from(proven(1) < proven(0))
            });
        self.0[at] = Some(entry);
    }
}

impl Entries {
    fn new(max_entries: u64) -> Self {
        let max = usize::try_from(max_entries).unwrap_or(usize::MAX).max(1);
        Self {
            shards: (0..SHARDS)
                .map(|_| RwLock::new(HashMap::with_hasher(RandomState::default())))
                .collect(),
            per_shard: max.div_ceil(SHARDS),
            hasher: RandomState::default(),
        }
    }

    /// Picks the shard, and the slot of a thread's [`LocalEntries`] (the
    /// shard map hashes again with its own state).
    fn hash(&self, key_id: &str) -> u64 {
        self.hasher.hash_one(key_id)
    }

    fn shard(&self, key_id: &str) -> &Shard {
        self.shard_of(self.hash(key_id))
    }

    fn shard_of(&self, hash: u64) -> &Shard {
        &self.shards[hash as usize % SHARDS]
    }

    /// The entry of `key_id` for the presented key `digest`.
    fn get(&self, hash: u64, key_id: &str, digest: &KeyDigest) -> Option<Entry> {
        let shard = self
            .shard_of(hash)
            .read()
            .unwrap_or_else(|p| p.into_inner());
        shard.get(key_id)?.find(digest).cloned()
    }

    /// Inserts `entry`; `stale` is asked under the shard's lock, so it sees
    /// every invalidation of `key_id` made before or during the insert.
    fn insert(&self, key_id: &str, mut entry: Entry, stale: impl FnOnce() -> bool) {
        let mut shard = self
            .shard(key_id)
            .write()
            .unwrap_or_else(|p| p.into_inner());
        if stale() {
            entry.fresh_until = DateTime::<Utc>::MIN_UTC;
        }
        if shard.len() >= self.per_shard && !shard.contains_key(key_id) {
            let evicted = shard.keys().next().cloned();
            if let Some(victim) = evicted {
                shard.remove(&victim);
            }
        }
        match shard.get_mut(key_id) {
            Some(pair) => pair.put(entry),
            None => {
                let mut pair = Pair::default();
                pair.put(entry);
                shard.insert(key_id.into(), pair);
            }
        }
    }

    /// Applies `f` to the entries of `key_id`, if there are any.
    fn update(&self, key_id: &str, f: impl FnOnce(Option<&mut Pair>)) {
        let mut shard = self
            .shard(key_id)
            .write()
            .unwrap_or_else(|p| p.into_inner());
        f(shard.get_mut(key_id));
    }

    fn remove(&self, key_id: &str, then: impl FnOnce()) {
        let mut shard = self
            .shard(key_id)
            .write()
            .unwrap_or_else(|p| p.into_inner());
        shard.remove(key_id);
        then();
    }

    /// Applies `f` to every entry, one shard at a time.
    fn update_all(&self, f: impl Fn(&mut Entry)) {
        for shard in &*self.shards {
            let mut shard = shard.write().unwrap_or_else(|p| p.into_inner());
            shard.values_mut().flat_map(Pair::entries_mut).for_each(&f);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }
}

/// Slots of a thread's table of copies (direct-mapped by key id hash).
const LOCAL_SLOTS: usize = 64;

/// One thread's copies of the fresh entries it used, in a direct-mapped
/// table: a presented key takes the slot its [`marker`] names, evicting
/// whatever was there.
/// A key is copied on its second fresh hit in a row in its slot (the first
/// only marks it), so a thread serving many keys once each makes no copies.
struct LocalEntries {
    slots: Box<[LocalSlot]>,
}

#[derive(Default)]
enum LocalSlot {
    #[default]
    Empty,
    /// The last key seen in this slot, not copied yet (by its marker).
    Seen { marker: u64, generation: u64 },
    /// A thread-private copy: `entry.entity` is this thread's own `Arc`.
    Copy { entry: Entry, generation: u64 },
}

impl LocalEntries {
    fn new() -> Self {
        Self {
            slots: (0..LOCAL_SLOTS).map(|_| LocalSlot::Empty).collect(),
        }
    }

    fn slot(&mut self, marker: u64) -> &mut LocalSlot {
        // The high bits: the low ones of the key id's hash picked the shard.
        &mut self.slots[(marker >> 32) as usize % LOCAL_SLOTS]
    }
}

/// Names a presented key in a thread's table: the hash of its key id mixed
/// with its digest, so two keys of one id (a rotation's grace) seldom
/// share a slot.
fn marker(hash: u64, digest: &KeyDigest) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&digest[..8]);
    hash ^ u64::from_ne_bytes(word)
}

/// Held while one request hashes a presented key; others with the same key
/// wait for it and then find the key proven in the cache.
pub(crate) struct HashTurn<'a> {
    // Fields drop in order: release the lock, then leave the queue.
    _guard: OwnedMutexGuard<()>,
    _member: Waiting<'a>,
}

/// Membership in the queue for one digest. Dropped on completion *and* on
/// cancellation (a client that hangs up mid-wait), so the map never keeps
/// an entry nobody waits on.
struct Waiting<'a> {
    cache: &'a VerifyCache,
    digest: KeyDigest,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut gates = self.cache.gates();
        if let Some((_, waiting)) = gates.get_mut(&self.digest) {
            *waiting -= 1;
            if *waiting == 0 {
                gates.remove(&self.digest);
            }
        }
    }
}

type Gates = HashMap<KeyDigest, (Arc<AsyncMutex<()>>, usize)>;

impl VerifyCache {
    pub(crate) fn new(config: CacheConfig) -> Self {
        Self {
            entries: Entries::new(config.max_entries),
            local: ThreadLocal::new(),
            generation: AtomicU64::new(0),
            ttl: TimeDelta::from_std(config.ttl).unwrap_or(TimeDelta::MAX),
            proof_ttl: TimeDelta::from_std(config.proof_ttl.max(config.ttl))
                .unwrap_or(TimeDelta::MAX),
            hashing: Mutex::new(HashMap::new()),
        }
    }

    fn gates(&self) -> std::sync::MutexGuard<'_, Gates> {
        // Every change to the map is a single insert or remove; ignore poison.
        self.hashing.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until no other request is hashing this same presented key.
    pub(crate) async fn hash_turn(&self, digest: KeyDigest) -> HashTurn<'_> {
        let gate = {
            let mut gates = self.gates();
            let (gate, waiting) = gates.entry(digest).or_default();
            *waiting += 1;
            gate.clone()
        };
        let member = Waiting {
            cache: self,
            digest,
        };
        HashTurn {
            _guard: gate.lock_owned().await,
            _member: member,
        }
    }

    /// What is known of the presented key at `now`, when its digest matches.
    pub(crate) fn get(
        &self,
        key_id: &str,
        digest: &KeyDigest,
        now: DateTime<Utc>,
    ) -> Option<Cached> {
        let hash = self.entries.hash(key_id);
        let marker = marker(hash, digest);
        // Before the shared read, as for a store read (see `insert`): a
        // copy made from what the read returns is dropped at the next
        // invalidation, whether the read saw its change or not.
        let generation = self.generation();
        let local = self.local.get_or(|| RefCell::new(LocalEntries::new()));
        let mut local = local.borrow_mut();
        let slot = local.slot(marker);
        if let LocalSlot::Copy {
            entry,
            generation: made,
        } = &*slot
        {
            // Another presented key with this id (a rotation's grace lets
            // two secrets in) is looked up in the shared map.
            let current = *made == generation && *entry.entity.key_id == *key_id;
            if current && now < entry.fresh_until && entry.usable(digest, now) {
                return Some(Cached::Fresh(entry.entity.clone(), entry.proof));
            }
        }
        let entry = self.entries.get(hash, key_id, digest)?;
        if !entry.usable(digest, now) {
            return None;
        }
        if now >= entry.fresh_until {
            return Some(Cached::Stale(entry.entity, entry.proof));
        }
        let seen = matches!(*slot, LocalSlot::Seen { marker: m, generation: g } if m == marker && g == generation);
        if !seen {
            *slot = LocalSlot::Seen { marker, generation };
            return Some(Cached::Fresh(entry.entity, entry.proof));
        }
        let entity = Arc::new(ApiKey::clone(&entry.entity));
        let found = Cached::Fresh(entity.clone(), entry.proof);
        *slot = LocalSlot::Copy {
            entry: Entry { entity, ..entry },
            generation,
        };
        Some(found)
    }

    /// The current invalidation generation: read it before a store read,
    /// pass it to [`VerifyCache::insert`] with what the read returned.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Caches a key proven at `now`, read from the store when the
    /// generation was `read_at`. If any invalidation came since, the read
    /// may predate the change it announced: the entry keeps its proof but
    /// is stale, so its next use reads the store again.
    pub(crate) fn insert(
        &self,
        digest: KeyDigest,
        entity: Arc<ApiKey>,
        proof: Proof,
        now: DateTime<Utc>,
        read_at: u64,
    ) {
        let until = |d| {
            now.checked_add_signed(d)
                .unwrap_or(DateTime::<Utc>::MAX_UTC)
        };
        let entry = Entry {
            digest,
            entity,
            proof,
            fresh_until: until(self.ttl),
            proven_until: until(self.proof_ttl),
        };
        let key_id = entry.entity.key_id.clone();
        self.entries
            .insert(&key_id, entry, || self.generation() != read_at);
    }

    /// Records a use in the cached entity of this presented key: its
    /// `last_used_at` moves forward, nothing else of it changes (the caller's
    /// copy may be older than the cached one). This thread's copy becomes
    /// `used` (the entity as this request used it), so the next request
    /// here does not find the use due again; other threads' copies keep
    /// theirs, and record a use at most once more per interval each.
    pub(crate) fn record_use(
        &self,
        key_id: &str,
        digest: KeyDigest,
        at: DateTime<Utc>,
        used: &Arc<ApiKey>,
    ) {
        if let Some(local) = self.local.get() {
            let mut local = local.borrow_mut();
            let marker = marker(self.entries.hash(key_id), &digest);
            if let LocalSlot::Copy { entry, .. } = local.slot(marker) {
                if *entry.entity.key_id == *key_id && same_digest(&entry.digest, &digest) {
                    entry.entity = used.clone();
                }
            }
        }
        self.entries.update(key_id, |pair| {
            let Some(entry) = pair.and_then(|p| p.find_mut(&digest)) else {
                return;
            };
            if entry.entity.last_used_at.is_none_or(|t| t < at) {
                Arc::make_mut(&mut entry.entity).last_used_at = Some(at);
            }
        });
    }

    /// Makes the entry stale, keeping its proof: the next use re-reads the
    /// entity from the store without hashing again.
    pub(crate) fn expire(&self, key_id: &str) {
        self.entries.update(key_id, |pair| {
            // Under the shard's lock: an insert of this key either came
            // before (and is marked here) or sees the new generation.
            self.generation.fetch_add(1, Ordering::AcqRel);
            for entry in pair.into_iter().flat_map(Pair::entries_mut) {
                entry.fresh_until = DateTime::<Utc>::MIN_UTC;
            }
        });
    }

    /// Makes every entry stale (announcements may have been lost).
    pub(crate) fn expire_all(&self) {
        // First the generation, so inserts racing with the sweep below
        // come out stale; entries inserted before are swept.
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.entries
            .update_all(|entry| entry.fresh_until = DateTime::<Utc>::MIN_UTC);
    }

    pub(crate) fn invalidate(&self, key_id: &str) {
        self.entries.remove(key_id, || {
            self.generation.fetch_add(1, Ordering::AcqRel);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::sample_key;

    fn key(key_id: String) -> Arc<ApiKey> {
        Arc::new(ApiKey {
            key_id,
            ..sample_key("H")
        })
    }

    #[test]
    fn digests_are_equal_only_when_every_byte_is() {
        let a = digest("ak_v1-0123456789abcdef-secret");
        assert!(same_digest(&a, &a.clone()));
        for i in 0..32 {
            let mut b = a;
            b[i] ^= 0x80;
            assert!(!same_digest(&a, &b), "byte {i}");
        }
    }

    #[test]
    fn entries_are_bounded_and_expire_on_the_service_clock() {
        let config = CacheConfig {
            ttl: Duration::from_secs(1),
            proof_ttl: Duration::from_secs(60),
            max_entries: 64,
        };
        let cache = VerifyCache::new(config);
        let now = Utc::now();
        for i in 0..1000 {
            cache.insert([1; 32], key(format!("{i:016x}")), Proof::Current, now, 0);
        }
        assert!(
            cache.entries.len() <= 64 + SHARDS,
            "{}",
            cache.entries.len()
        );
        let id = "00000000000003e7"; // the last one inserted stays
        let at = |s: i64| now + TimeDelta::seconds(s);
        assert!(matches!(
            cache.get(id, &[1; 32], now),
            Some(Cached::Fresh(..))
        ));
        assert!(
            cache.get(id, &[2; 32], now).is_none(),
            "another key, same id"
        );
        assert!(matches!(
            cache.get(id, &[1; 32], at(1)),
            Some(Cached::Stale(..))
        ));
        assert!(cache.get(id, &[1; 32], at(60)).is_none(), "proof expired");
        cache.expire(id);
        assert!(matches!(
            cache.get(id, &[1; 32], now),
            Some(Cached::Stale(..))
        ));
        cache.invalidate(id);
        assert!(cache.get(id, &[1; 32], now).is_none());
    }

    #[tokio::test]
    async fn abandoned_waits_leave_no_gate_behind() {
        let cache = VerifyCache::new(CacheConfig::default());
        let d = [7u8; 32];
        let first = cache.hash_turn(d).await;
        let mut waiter = Box::pin(cache.hash_turn(d));
        let wait = tokio::time::timeout(Duration::from_millis(5), &mut waiter).await;
        assert!(wait.is_err(), "the second request waits for the first");
        drop(first);
        drop(waiter); // the client hung up before its turn came
        assert_eq!(cache.gates().len(), 0);
        let again = cache.hash_turn(d).await;
        assert_eq!(cache.gates().len(), 1);
        drop(again);
        assert!(cache.gates().is_empty());
    }
}
