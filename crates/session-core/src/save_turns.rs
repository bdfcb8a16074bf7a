//! Saves of one session inside this process take turns: a striped lock with a per-stripe
//! count of completed saves, so that compare-and-set only has to settle races with other
//! processes.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::SystemTime;

use tokio::sync::{Mutex, MutexGuard};

use crate::id::SessionId;

/// Number of stripes of the in-process save lock.
const STRIPES: usize = 1024;

/// What a save wrote, kept only while other requests wait for the same stripe, so that the
/// next request (whose copy is then stale) starts from it instead of reading the store
/// again: one round trip per save instead of two when one session is busy.
pub(crate) struct LastSave {
    pub(crate) id: SessionId,
    pub(crate) bytes: Vec<u8>,
    pub(crate) expires_at: Option<SystemTime>,
}

/// One stripe of the lock.
#[derive(Default)]
pub(crate) struct SaveTurn {
    last_save: Mutex<Option<LastSave>>,
    /// Requests waiting for (or holding) this turn.
    waiting: AtomicUsize,
}

impl SaveTurn {
    pub(crate) async fn take(&self) -> MutexGuard<'_, Option<LastSave>> {
        /// Counts a waiter until its turn is granted, or until it gives up (the request's
        /// future dropped).
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(&self.waiting);
        self.last_save.lock().await
    }

    /// Whether another request waits for this turn (the caller holds it).
    pub(crate) fn has_waiters(&self) -> bool {
        self.waiting.load(Ordering::SeqCst) > 0
    }
}

/// The stripes, and per stripe how many saves have completed in this process.
pub(crate) struct SaveTurns {
    turns: Box<[SaveTurn]>,
    generations: Box<[AtomicU64]>,
}

impl SaveTurns {
    pub(crate) fn new() -> SaveTurns {
        SaveTurns {
            turns: (0..STRIPES).map(|_| SaveTurn::default()).collect(),
            generations: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// The turn that saves of `id` take.
    pub(crate) fn turn(&self, id: &SessionId) -> &SaveTurn {
        &self.turns[stripe(id)]
    }

    /// Records that a save under the turn of `id` completed.
    pub(crate) fn bump(&self, id: Option<&SessionId>) {
        if let Some(id) = id {
            self.generations[stripe(id)].fetch_add(1, Ordering::SeqCst);
        }
    }

    /// How many saves under the turn of `id` have completed: read before loading, compared
    /// before saving, it tells whether a request of this process saved meanwhile.
    pub(crate) fn generation(&self, id: &SessionId) -> u64 {
        self.generations[stripe(id)].load(Ordering::SeqCst)
    }
}

fn stripe(id: &SessionId) -> usize {
    // FNV-1a over the id: ids are random, so any cheap hash spreads them.
    let hash = id.as_str().bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    });
    (hash % STRIPES as u64) as usize
}
