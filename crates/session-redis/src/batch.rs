//! Write batching: the compare-and-set writes that different sessions make at the same
//! time on one connection go to Redis as one script call.
//!
//! Each connection of the pool has a writer task. A write that overlaps others on its
//! connection queues itself and waits for its answer. The writer, woken by the first
//! write, lets the tasks that are ready run first (on a multi-threaded runtime it steps to
//! the back of the run queue once; on a current-thread runtime it is there already), takes
//! what they queued meanwhile, up to [`MAX_BATCH`] writes, and sends them as one
//! `EVALSHA`: one compare-and-set per key, in order, atomic on the server. It does not
//! wait for Redis's answer before taking the next batch: it drives every batch in flight
//! itself, so batches are pipelined as single writes were and a write never waits for
//! another batch's round trip. The writer, not a task per batch, waits for the replies,
//! so replies that arrive together wake one task: in actix-web, fred's connection task
//! runs on another thread than the worker, and each task it wakes on the worker's
//! current-thread runtime costs a system call on both threads. Larger batches than 8 did
//! worse in the counter benchmark (one large batch keeps every request waiting on the
//! same reply). Figures for both in `docs/performance.md`.
//!
//! The writer runs on the tokio runtime of the store's first batched write, and is started
//! again on the caller's runtime if that one has shut down. On current-thread runtimes
//! (actix-web's workers) each thread that writes has a writer of its own, on its own
//! runtime: a worker's writes are batched with that worker's, never handed to another
//! worker, which would add a thread switch per batch and would hold them up for as long as
//! that worker is busy or blocked (a handler doing blocking work stops its whole runtime).
//! A caller that stops waiting (its request was cancelled or timed out) cannot strand the
//! others: its write still goes out, as a single write that timed out may still reach
//! Redis. Large values and Redis Cluster are never batched (a script's keys must share a
//! slot).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::task::Poll;
use std::thread::ThreadId;

use fred::clients::Client;
use fred::types::{Key, Value};
use futures_util::stream::{FuturesUnordered, StreamExt};
use session_core::{box_in_place, StoreError};
use tokio::sync::{mpsc, oneshot};

use crate::error::{map_error, unexpected_reply};
use crate::scripts::Script;

/// How many writes after the last one that overlapped another still go through the
/// writer when they find their connection idle.
const OVERLAP_MEMORY: usize = 32;

/// The most writes one script call carries.
const MAX_BATCH: usize = 8;

/// Writes whose expected and new bytes together exceed this go out alone: a batch stays
/// under `MAX_BATCH` × this (2 MiB), far below Redis's 1 GiB query buffer limit.
pub(crate) const MAX_BATCHED_BYTES: usize = 256 * 1024;

/// One compare-and-set: the key and the script's three arguments (expected bytes, new
/// bytes, seconds), built by the caller.
struct QueuedWrite {
    key: Key,
    args: Vec<Value>,
    answer: oneshot::Sender<Result<bool, StoreError>>,
}

/// The writers of each connection of a pool (in the pool's order; one per current-thread
/// runtime's thread, see [`WriterQueue`]), each started on first use. A writer task ends
/// once its queue's sender is dropped (with the last clone of the store, or when
/// replaced).
pub(crate) struct Writers {
    clients: Vec<Client>,
    scripts: (Script, Script),
    queues: Vec<Mutex<Vec<WriterQueue>>>,
    /// Compare-and-sets of each connection between [`enter`](Writers::enter) and their
    /// answer.
    in_flight: Vec<AtomicUsize>,
    /// Per connection: how many more writes go through the writer even if they find the
    /// connection idle (see [`InFlight::batched`]).
    recent_overlaps: Vec<AtomicUsize>,
}

/// The queue of one writer of a connection, and whose writes it takes: a current-thread
/// runtime's thread (`Some`), or any thread of a multi-threaded runtime (`None`), whose
/// workers share the writer and keep it running.
struct WriterQueue {
    thread: Option<ThreadId>,
    sender: mpsc::UnboundedSender<QueuedWrite>,
}

thread_local! {
    /// This thread's id, read once: `std::thread::current()` makes a handle on every call.
    static THREAD_ID: ThreadId = std::thread::current().id();
}

/// A compare-and-set counted as in flight on its connection until dropped.
pub(crate) struct InFlight<'a> {
    count: &'a AtomicUsize,
    batched: bool,
}

impl InFlight<'_> {
    /// Whether this write goes through the writer: when other writes were in flight on
    /// the connection as it entered, or had been within the last [`OVERLAP_MEMORY`]
    /// writes. Writes that keep finding the connection idle (a single user, or one busy
    /// session whose writes core already commits one group at a time) go out directly,
    /// without the writer's hop; under concurrency every write is batched, including the
    /// one that happens to find the connection idle for a moment.
    pub(crate) fn batched(&self) -> bool {
        self.batched
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Writers {
    /// Writers for `clients`, sending with `single` (one key) and `many` (several).
    pub(crate) fn new(clients: &[Client], single: &Script, many: &Script) -> Writers {
        Writers {
            clients: clients.to_vec(),
            scripts: (single.clone(), many.clone()),
            queues: clients.iter().map(|_| Mutex::new(Vec::new())).collect(),
            in_flight: clients.iter().map(|_| AtomicUsize::new(0)).collect(),
            recent_overlaps: clients.iter().map(|_| AtomicUsize::new(0)).collect(),
        }
    }

    /// Counts a compare-and-set on connection `connection` as in flight.
    pub(crate) fn enter(&self, connection: usize) -> InFlight<'_> {
        let count = &self.in_flight[connection];
        let recent = &self.recent_overlaps[connection];
        // Relaxed, and a load and a store rather than an update: this only chooses the
        // faster path, and a lost update of `recent` changes nothing else.
        let batched = if count.fetch_add(1, Ordering::Relaxed) > 0 {
            recent.store(OVERLAP_MEMORY, Ordering::Relaxed);
            true
        } else {
            let left = recent.load(Ordering::Relaxed);
            if left > 0 {
                recent.store(left - 1, Ordering::Relaxed);
            }
            left > 0
        };
        InFlight { count, batched }
    }

    /// Queues a compare-and-set on connection `connection` and waits for Redis's answer
    /// (`true` when written). `None` when called outside a tokio runtime, where no writer
    /// can run, or while the thread is being torn down: the caller sends the write itself.
    pub(crate) async fn compare_and_set(
        &self,
        connection: usize,
        key: Key,
        args: Vec<Value>,
    ) -> Option<Result<bool, StoreError>> {
        let (answer, answered) = oneshot::channel();
        self.queue(connection, QueuedWrite { key, args, answer })?;
        Some(answered.await.unwrap_or_else(|_| {
            // The writer was dropped with the write in hand (its runtime shut down), so
            // whether the write reached Redis is unknown.
            Err(StoreError::unavailable(
                "the connection's writer stopped before Redis answered",
            ))
        }))
    }

    /// Hands `write` to its connection's writer for the calling thread (see
    /// [`WriterQueue`]), starting one on the current runtime if there is none or its
    /// runtime has shut down.
    fn queue(&self, connection: usize, write: QueuedWrite) -> Option<()> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let thread = match runtime.runtime_flavor() {
            // `None` while the thread's locals are being destroyed (a write from a
            // thread-local destructor): the caller then sends the write itself.
            tokio::runtime::RuntimeFlavor::CurrentThread => {
                Some(THREAD_ID.try_with(|id| *id).ok()?)
            }
            _ => None,
        };
        let mut queues = self.queues[connection]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let write = match queues.iter().find(|queue| queue.thread == thread) {
            Some(queue) => match queue.sender.send(write) {
                Ok(()) => return Some(()),
                Err(mpsc::error::SendError(write)) => write,
            },
            None => write,
        };
        // Writers whose runtime has shut down (this thread's among them) are replaced.
        queues.retain(|queue| !queue.sender.is_closed());
        let (sender, writes) = mpsc::unbounded_channel();
        let client = self.clients[connection].clone();
        runtime.spawn(write_loop(client, self.scripts.clone(), writes));
        // A fresh channel whose receiver was just moved into the task: cannot be closed.
        sender.send(write).ok()?;
        queues.push(WriterQueue { thread, sender });
        Some(())
    }
}

/// A connection's writer: takes what is queued, a batch at a time, and sends each batch
/// while the ones before it are still in flight, driving them all until answered.
async fn write_loop(
    client: Client,
    scripts: (Script, Script),
    mut writes: mpsc::UnboundedReceiver<QueuedWrite>,
) {
    // A task woken by another runs right after it on a multi-threaded runtime (its "LIFO
    // slot"), before the other ready tasks have queued their writes: there the writer
    // steps back once per batch. On a current-thread runtime (actix-web's workers) it is
    // queued behind them already, and stepping back only delays the batch (measured: 15 %
    // fewer writes per second on actix-web under real-time scheduling).
    let requeue = tokio::runtime::Handle::try_current().is_ok_and(|runtime| {
        runtime.runtime_flavor() != tokio::runtime::RuntimeFlavor::CurrentThread
    });
    let mut in_flight = FuturesUnordered::new();
    loop {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        let received = std::future::poll_fn(|cx| {
            // Answers first: a batch whose reply arrived is done with here. `Ready(None)`:
            // none left in flight.
            while let Poll::Ready(Some(())) = in_flight.poll_next_unpin(cx) {}
            writes.poll_recv_many(cx, &mut batch, MAX_BATCH)
        })
        .await;
        if received == 0 {
            // Every sender is gone (the store was dropped): let the batches in flight finish.
            while in_flight.next().await.is_some() {}
            return;
        }
        if batch.len() < MAX_BATCH && requeue {
            // Requests that are ready to run may be about to queue writes of their own.
            back_of_the_run_queue().await;
            while batch.len() < MAX_BATCH {
                match writes.try_recv() {
                    Ok(write) => batch.push(write),
                    Err(_) => break,
                }
            }
        }
        // Boxed where it is built: fred's command future inside it is about 2 KB, which
        // `FuturesUnordered` would otherwise copy three times into its queue node.
        in_flight.push(box_in_place(|| send(&client, &scripts, batch)));
    }
}

/// Lets the tasks that are ready now run first, and no more: the task wakes itself, which
/// puts it at the back of its runtime's run queue. `tokio::task::yield_now` would also
/// wait for the runtime's next look at I/O, a longer wait for the writes in hand.
async fn back_of_the_run_queue() {
    let mut woken = false;
    std::future::poll_fn(|cx| {
        if woken {
            return std::task::Poll::Ready(());
        }
        woken = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await;
}

/// Sends one batch and answers each of its writes: the single-key script for a batch of
/// one, the many-key script otherwise.
async fn send(client: &Client, (single, many): &(Script, Script), mut batch: Vec<QueuedWrite>) {
    if batch.len() == 1 {
        if let Some(write) = batch.pop() {
            let reply = single.run_owned(client, vec![write.key], write.args).await;
            let result = reply.map_err(map_error).and_then(|reply| flag(&reply));
            let _ = write.answer.send(result);
        }
        return;
    }
    let mut keys = Vec::with_capacity(batch.len());
    let mut args = Vec::with_capacity(batch.len() * 3);
    for write in &mut batch {
        keys.push(write.key.clone());
        args.append(&mut write.args);
    }
    match many.run_owned(client, keys, args).await {
        Ok(Value::Array(answers)) if answers.len() == batch.len() => {
            for (write, answer) in batch.into_iter().zip(answers) {
                let _ = write.answer.send(key_answer(answer));
            }
        }
        Ok(other) => {
            for write in batch {
                let error = unexpected_reply("the batched compare-and-set script", &other);
                let _ = write.answer.send(Err(error));
            }
        }
        Err(error) => {
            for write in batch {
                let copy =
                    fred::error::Error::new(error.kind().clone(), error.details().to_owned());
                let _ = write.answer.send(Err(map_error(copy)));
            }
        }
    }
}

/// A compare-and-set script's answer: 1 when written, 0 when the entry did not match.
fn flag(reply: &Value) -> Result<bool, StoreError> {
    match reply.as_i64() {
        Some(flag) => Ok(flag == 1),
        None => Err(unexpected_reply("EVALSHA", reply)),
    }
}

/// One key's answer in the batched script's reply: 1 or 0 as [`flag`], or the error
/// Redis raised for that key alone (the others of the batch went ahead).
fn key_answer(answer: Value) -> Result<bool, StoreError> {
    match answer {
        Value::String(text) => Err(StoreError::backend(format!(
            "Redis refused the compare-and-set: {text}"
        ))),
        Value::Bytes(bytes) => Err(StoreError::backend(format!(
            "Redis refused the compare-and-set: {}",
            String::from_utf8_lossy(&bytes)
        ))),
        other => flag(&other),
    }
}
