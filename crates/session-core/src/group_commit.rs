//! Group commit: saves of one session inside this process never race each other. The
//! first request to save a session writes (the leader); requests that want to save it
//! while that write is in flight queue their change logs, and one task writes all of them
//! with the next compare-and-set, answering each request once the write holding its change
//! is acknowledged. N overlapping requests cost one write per round instead of N, and
//! compare-and-set only settles races with other processes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

use crate::data::SessionData;
use crate::error::SessionError;
use crate::id::SessionId;
use crate::lifecycle::{Change, Engine, Stored};

const SHARDS: usize = 64;
const GENERATION_STRIPES: usize = 1024;

type SlotMap = HashMap<SessionId, Slot, foldhash::fast::RandomState>;

/// One request's part of a group write.
pub(crate) struct Member {
    pub(crate) changes: Vec<Change>,
    pub(crate) regenerate: bool,
    /// The leader's own snapshot: what it loaded and its data with its changes applied,
    /// which it writes as it is when nothing happened meanwhile.
    pub(crate) own: Option<(Stored, Arc<SessionData>)>,
    pub(crate) outcome: Option<Outcome>,
}

/// What became of a member's changes.
pub(crate) enum Outcome {
    /// Written (compare-and-set, or rotation to `stored.id`). `view` is the data with the
    /// changes of this member and of those before it in its group, but not after.
    Written {
        stored: Stored,
        view: Arc<SessionData>,
        ttl: std::time::Duration,
        /// A rotation to a new id, not a compare-and-set.
        rotated: bool,
        /// Store writes the group needed (1 without conflicts).
        attempts: u32,
    },
    /// The changes left the stored data as it was: nothing written.
    Unchanged(Stored),
    /// The changes emptied the session: it was deleted.
    Deleted,
    /// The session ended meanwhile (logout, rotation, expiry): it is never revived; the
    /// member's changes go to a new session.
    Gone(Vec<Change>),
    Failed(SessionError),
}

struct Waiter {
    member: Member,
    reply: oneshot::Sender<Member>,
}

/// A session some request of this process is saving. Present in the map while a write is
/// in flight or queued.
#[derive(Default)]
struct Slot {
    queue: Vec<Waiter>,
    /// What the last write of this slot left in the store.
    last: Option<Stored>,
}

/// The save slots of one engine, and per stripe of ids how many saves completed.
pub(crate) struct Slots {
    shards: Box<[Mutex<SlotMap>]>,
    generations: Box<[AtomicU64]>,
}

pub(crate) enum Joined {
    /// No save of this session is in flight: write it, then call [`Slots::leave`].
    Lead(Member),
    /// Wait for the write that takes this member's changes.
    Wait(oneshot::Receiver<Member>),
}

impl Slots {
    pub(crate) fn new() -> Slots {
        Slots {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            generations: (0..GENERATION_STRIPES).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn shard(&self, id: &SessionId) -> MutexGuard<'_, SlotMap> {
        self.shards[hash(id) as usize % SHARDS]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn join(&self, id: &SessionId, member: Member) -> Joined {
        let mut shard = self.shard(id);
        match shard.get_mut(id) {
            Some(slot) => {
                let (reply, receiver) = oneshot::channel();
                slot.queue.push(Waiter { member, reply });
                Joined::Wait(receiver)
            }
            None => {
                shard.insert(id.clone(), Slot::default());
                Joined::Lead(member)
            }
        }
    }

    /// The leader (or a drain) is done with its group: the slot closes, or the queued
    /// members become the next group, handed to a task of their own so that no request
    /// waits for others' writes after its own.
    pub(crate) fn leave(&self, engine: &Arc<Engine>, id: &SessionId) {
        let queued = {
            let mut shard = self.shard(id);
            match shard.get_mut(id) {
                Some(slot) if !slot.queue.is_empty() => std::mem::take(&mut slot.queue),
                _ => {
                    shard.remove(id);
                    return;
                }
            }
        };
        let drain = drain(engine.clone(), id.clone(), queued);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(drain);
            }
            // No runtime to write them: the waiters see their reply dropped and fail.
            Err(_) => {
                self.shard(id).remove(id);
            }
        }
    }

    /// What the last write of the slot of `id` left in the store, if one is open.
    pub(crate) fn last(&self, id: &SessionId) -> Option<Stored> {
        self.shard(id).get(id).and_then(|slot| slot.last.clone())
    }

    /// Records what a write left in the store (`None` after a delete or a rotation).
    pub(crate) fn set_last(&self, id: &SessionId, last: Option<Stored>) {
        if let Some(slot) = self.shard(id).get_mut(id) {
            slot.last = last;
        }
    }

    /// Records that a save of `id` completed.
    pub(crate) fn bump(&self, id: &SessionId) {
        self.generations[hash(id) as usize % GENERATION_STRIPES].fetch_add(1, Ordering::SeqCst);
    }

    /// How many saves of ids of `id`'s stripe have completed: read before loading,
    /// compared before saving, it tells whether a request of this process saved meanwhile.
    pub(crate) fn generation(&self, id: &SessionId) -> u64 {
        self.generations[hash(id) as usize % GENERATION_STRIPES].load(Ordering::SeqCst)
    }
}

/// Writes queued members in groups until no more arrive. A rotation is a group of its
/// own, so that the members after it find their session gone, as they would one by one.
async fn drain(engine: Arc<Engine>, id: SessionId, mut waiters: Vec<Waiter>) {
    loop {
        // A request that gave up waiting (its save deadline passed, or its client went
        // away) answered without its change: it is not written behind its back.
        waiters.retain(|waiter| !waiter.reply.is_closed());
        while !waiters.is_empty() {
            let size = if waiters[0].member.regenerate {
                1
            } else {
                waiters
                    .iter()
                    .take_while(|waiter| !waiter.member.regenerate)
                    .count()
            };
            let (mut members, replies): (Vec<Member>, Vec<_>) = waiters
                .drain(..size)
                .map(|waiter| (waiter.member, waiter.reply))
                .unzip();
            let mut refreshes = Vec::new();
            engine.write_group(&id, &mut members, &mut refreshes).await;
            for (member, reply) in members.into_iter().zip(replies) {
                // A request that gave up during this write no longer listens: the outcome
                // it answered with (503) already said that it is unknown.
                let _ = reply.send(member);
            }
            // In a task of its own: the next group does not wait for it.
            if !refreshes.is_empty() {
                let engine = engine.clone();
                tokio::spawn(async move { engine.run_refreshes(refreshes).await });
            }
            waiters.retain(|waiter| !waiter.reply.is_closed());
        }
        let mut shard = engine.slots().shard(&id);
        match shard.get_mut(&id) {
            Some(slot) if !slot.queue.is_empty() => waiters = std::mem::take(&mut slot.queue),
            _ => {
                shard.remove(&id);
                return;
            }
        }
    }
}

/// Closes the leader's slot however the leader's future ends, even when a client went
/// away mid-write, so that queued members are always written.
pub(crate) struct Leading<'a> {
    pub(crate) engine: &'a Arc<Engine>,
    pub(crate) id: &'a SessionId,
}

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        self.engine.slots().leave(self.engine, self.id);
    }
}

fn hash(id: &SessionId) -> u64 {
    id.stripe()
}
