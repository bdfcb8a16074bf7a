//! [`MongoStore`]: the [`SessionStore`] on a MongoDB collection.

use std::future::IntoFuture;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use mongodb::bson::spec::BinarySubtype;
use mongodb::bson::{doc, Binary, Bson, DateTime, Document};
use mongodb::options::IndexOptions;
use mongodb::{Client, Collection, IndexModel};
use session_core::{IndexEntry, ScanPage, SessionStore, SetupError, StoreError, StoredEntry};

use crate::builder::MongoStoreBuilder;
use crate::error::{error_code, is_duplicate_key, map_error};

/// The largest session value the store accepts; larger ones fail with
/// [`StoreError::TooLarge`] before anything is sent.
///
/// MongoDB keeps documents up to 16 MiB (`maxBsonObjectSize`). The value gets that limit
/// less 16 KiB, the room the key (up to [`MAX_KEY_BYTES`]), the other fields and the
/// update command around them need.
pub const MAX_VALUE_BYTES: usize = MAX_BSON_OBJECT_BYTES - 16 * 1024;

/// The longest key the store accepts; longer ones fail with [`StoreError::InvalidKey`].
/// Flask-Session's keys are `session:` and a 43-character id; this bound keeps every
/// command within MongoDB's size limits.
pub const MAX_KEY_BYTES: usize = 8 * 1024;

/// MongoDB's `maxBsonObjectSize`.
const MAX_BSON_OBJECT_BYTES: usize = 16 * 1024 * 1024;

/// The name Flask-Session's `create_index("expiration", expireAfterSeconds=0)` gets.
pub const EXPIRATION_INDEX: &str = "expiration_1";

/// The name of the unique index on `id`.
pub const ID_INDEX: &str = "id_1";

/// The suffix of the owner index's collection: `<collection>_owners` (see
/// [`MongoStore::owners_collection`]).
pub const OWNERS_COLLECTION_SUFFIX: &str = "_owners";

/// The name of the owner index's unique index on `(index, key)`.
pub const OWNERS_KEY_INDEX: &str = "index_1_key_1";

/// How long past its session's expiry an owner index document is kept (its `expiration`
/// date, which the TTL index `expiration_1` of the owners collection acts on): a session's
/// expiry is set by the write that follows its index entry, so it can outlast the entry's
/// `expires_at` by the time that write took, and an expiry extension refreshes the entry
/// only after it extended the session.
pub const OWNERS_EXPIRY_GRACE: Duration = Duration::from_secs(60);

// Index option conflicts: an index of that name or key pattern exists with other options.
const INDEX_OPTIONS_CONFLICT: i32 = 85;
const INDEX_KEY_SPECS_CONFLICT: i32 = 86;

/// Sessions in a MongoDB collection, in Flask-Session's document layout:
/// `{_id: ObjectId, id: <key>, val: BinData(0, <bytes>), expiration: Date}`.
///
/// Build one with [`MongoStore::connect`] or [`MongoStore::builder`]. Clones share the
/// driver's connection pool.
///
/// # Atomicity
///
/// `create`, `compare_and_set` and `touch` are each one `update_one` whose filter carries
/// the condition, so the server applies check and write together. `create` relies on the
/// unique index on `id`: a live document makes its upsert fail with a duplicate key, which
/// reads as "taken". `rotate` uses the trait's default (load, create the new key, delete
/// the old one): an atomic move across two documents needs a multi-document transaction,
/// which needs a replica set. A crash between the steps leaves the old document until it
/// expires; no data is lost and the new id is never handed to anyone else.
#[derive(Clone, Debug)]
pub struct MongoStore {
    client: Client,
    collection: Collection<Document>,
    owners: Collection<Document>,
    operation_timeout: Duration,
}

impl MongoStore {
    pub(crate) fn new(
        client: Client,
        collection: Collection<Document>,
        operation_timeout: Duration,
    ) -> MongoStore {
        let namespace = collection.namespace();
        let owners = client
            .database(&namespace.db)
            .collection(&format!("{}{OWNERS_COLLECTION_SUFFIX}", namespace.coll));
        MongoStore {
            client,
            collection,
            owners,
            operation_timeout,
        }
    }

    /// A builder with Flask-Session's defaults: [`DEFAULT_URL`](crate::DEFAULT_URL),
    /// database `flask_session`, collection `sessions`, indexes created at start-up.
    pub fn builder() -> MongoStoreBuilder {
        MongoStoreBuilder::default()
    }

    /// Connects to `url` (see [`MongoStoreBuilder::url`]) with the default database,
    /// collection and time limits. Shorthand for
    /// `MongoStore::builder().url(url).connect()`.
    pub async fn connect(url: &str) -> Result<MongoStore, SetupError> {
        MongoStore::builder().url(url).connect().await
    }

    /// The driver client, for the application's own use of the same connection pool.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The collection the sessions live in.
    pub fn collection(&self) -> &Collection<Document> {
        &self.collection
    }

    /// The collection of the owner index: `<collection>_owners` in the same database, one
    /// document `{index, key, created, last_seen, expires_at, expiration}` per entry (see
    /// the README's "Owner index"). Flask-Session never reads it.
    pub fn owners_collection(&self) -> &Collection<Document> {
        &self.owners
    }

    /// Creates the store's indexes if they are missing (idempotent; [`connect`] runs it
    /// unless told to skip):
    ///
    /// - `expiration_1`: `{expiration: 1}` with `expireAfterSeconds: 0`, exactly the TTL
    ///   index Flask-Session creates, so either side may create it first;
    /// - `id_1`: `{id: 1}`, unique. Flask-Session creates no index on `id`; this one makes
    ///   lookups fast and `create` atomic, and Flask-Session works with it unchanged.
    ///
    /// And on the owner index's collection ([`owners_collection`](Self::owners_collection)):
    ///
    /// - `index_1_key_1`: `{index: 1, key: 1}`, unique: one entry per session and owner,
    ///   and the listing of one owner is an index scan;
    /// - `expiration_1`: `{expiration: 1}` with `expireAfterSeconds: 0`: entries go
    ///   [`OWNERS_EXPIRY_GRACE`] after their session's expiry.
    ///
    /// Fails with [`StoreError::Backend`] naming the conflict when an index of the same name
    /// or keys exists with other options (for example a non-unique index on `id`), or when
    /// the collection already holds two documents with one `id`.
    ///
    /// [`connect`]: MongoStoreBuilder::connect
    pub async fn ensure_indexes(&self) -> Result<(), StoreError> {
        // The expiration index is a TTL index: a document goes at the date in its field.
        let expiration = || {
            let options = IndexOptions::builder()
                .name(EXPIRATION_INDEX.to_owned())
                .expire_after(Duration::ZERO)
                .build();
            IndexModel::builder()
                .keys(doc! { "expiration": 1 })
                .options(options)
                .build()
        };
        let unique = |keys, name: &str| {
            let options = IndexOptions::builder()
                .name(name.to_owned())
                .unique(true)
                .build();
            IndexModel::builder().keys(keys).options(options).build()
        };
        for (collection, index, name) in [
            (&self.collection, expiration(), EXPIRATION_INDEX),
            (
                &self.collection,
                unique(doc! { "id": 1 }, ID_INDEX),
                ID_INDEX,
            ),
            (&self.owners, expiration(), EXPIRATION_INDEX),
            (
                &self.owners,
                unique(doc! { "index": 1, "key": 1 }, OWNERS_KEY_INDEX),
                OWNERS_KEY_INDEX,
            ),
        ] {
            let result =
                tokio::time::timeout(self.operation_timeout, collection.create_index(index)).await;
            match result {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => return Err(index_error(collection.name(), name, error)),
                Err(_) => return Err(self.timed_out()),
            }
        }
        Ok(())
    }

    /// Asks the server to answer, within the operation timeout.
    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        let database = self
            .client
            .database(self.collection.namespace().db.as_str());
        self.run(database.run_command(doc! { "ping": 1 }))
            .await
            .map(|_| ())
    }

    /// Runs one driver operation within the operation timeout.
    async fn run<T>(
        &self,
        operation: impl IntoFuture<Output = mongodb::error::Result<T>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.operation_timeout, operation).await {
            Ok(result) => result.map_err(map_error),
            Err(_) => Err(self.timed_out()),
        }
    }

    fn timed_out(&self) -> StoreError {
        StoreError::unavailable(format!(
            "MongoDB did not answer within {:?}",
            self.operation_timeout
        ))
    }
}

fn index_error(collection: &str, name: &str, error: mongodb::error::Error) -> StoreError {
    let hint = match error_code(&error) {
        Some(INDEX_OPTIONS_CONFLICT | INDEX_KEY_SPECS_CONFLICT) => {
            if name == OWNERS_KEY_INDEX {
                "an index on `index, key` exists with other options (not unique?); drop it \
                 so the store can create a unique one"
            } else if name == ID_INDEX {
                "an index on `id` exists with other options (not unique?); drop it so the \
                 store can create a unique one, or make it unique yourself and use \
                 skip_index_creation"
            } else {
                "an index on `expiration` exists with other options; the store and \
                 Flask-Session need expireAfterSeconds 0"
            }
        }
        Some(crate::error::DUPLICATE_KEY) => {
            "the collection holds several documents with the same `id`; remove the \
             duplicates (run cleanup to drop expired ones first) before the unique index \
             can be created"
        }
        _ => return map_error(error),
    };
    StoreError::backend(format!(
        "cannot create index {name} on {collection}: {hint} ({error})"
    ))
}

fn check_key(key: &str) -> Result<(), StoreError> {
    if key.len() > MAX_KEY_BYTES {
        return Err(StoreError::InvalidKey(format!(
            "{} bytes long, the MongoDB store's limit is {MAX_KEY_BYTES}",
            key.len()
        )));
    }
    Ok(())
}

fn check_value(size: usize) -> Result<(), StoreError> {
    if size > MAX_VALUE_BYTES {
        return Err(StoreError::TooLarge {
            size,
            limit: MAX_VALUE_BYTES,
        });
    }
    Ok(())
}

fn binary(bytes: &[u8]) -> Bson {
    // Subtype 0 ("generic"), what pymongo writes for Python bytes.
    Bson::Binary(Binary {
        subtype: BinarySubtype::Generic,
        bytes: bytes.to_vec(),
    })
}

/// `now + ttl` as a BSON date (milliseconds), saturating instead of overflowing.
fn expiration_after(now: DateTime, ttl: Duration) -> DateTime {
    let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    DateTime::from_millis(now.timestamp_millis().saturating_add(ttl_ms))
}

fn system_time(date: DateTime) -> Option<SystemTime> {
    let millis = date.timestamp_millis();
    let offset = Duration::from_millis(millis.unsigned_abs());
    if millis >= 0 {
        UNIX_EPOCH.checked_add(offset)
    } else {
        UNIX_EPOCH.checked_sub(offset)
    }
}

#[async_trait]
impl SessionStore for MongoStore {
    fn check_key(&self, key: &str) -> Result<(), StoreError> {
        check_key(key)
    }

    async fn load(&self, key: &str) -> Result<Option<StoredEntry>, StoreError> {
        check_key(key)?;
        // The TTL monitor runs about once a minute: check the expiry here too.
        let filter = doc! { "id": key, "expiration": { "$gt": DateTime::now() } };
        let found = self
            .run(
                self.collection
                    .find_one(filter)
                    .projection(doc! { "_id": 0, "val": 1, "expiration": 1 }),
            )
            .await?;
        let Some(document) = found else {
            return Ok(None);
        };
        let expires_at = match document.get("expiration") {
            Some(Bson::DateTime(date)) => system_time(*date),
            _ => None,
        };
        match document.get("val") {
            Some(Bson::Binary(value)) => Ok(Some(StoredEntry {
                value: value.bytes.clone(),
                expires_at,
            })),
            _ => {
                // Not written by Flask-Session or this store: no session, and the next
                // write under a fresh id leaves this document to expire.
                tracing::warn!("session document without a binary `val` ignored");
                Ok(None)
            }
        }
    }

    async fn create(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        check_key(key)?;
        check_value(value.len())?;
        let now = DateTime::now();
        // Matches only an expired leftover, which is overwritten. With no document the
        // upsert inserts one; with a live document the upsert's insert hits the unique
        // index on `id`, and that duplicate key is the answer "taken".
        let filter = doc! { "id": key, "expiration": { "$lte": now } };
        let update = doc! { "$set": {
            "id": key,
            "val": binary(value),
            "expiration": expiration_after(now, ttl),
        } };
        let result = tokio::time::timeout(
            self.operation_timeout,
            self.collection.update_one(filter, update).upsert(true),
        )
        .await;
        match result {
            Ok(Ok(_)) => Ok(true),
            Ok(Err(error)) if is_duplicate_key(&error) => Ok(false),
            Ok(Err(error)) => Err(map_error(error)),
            Err(_) => Err(self.timed_out()),
        }
    }

    async fn compare_and_set(
        &self,
        key: &str,
        expected: &[u8],
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        check_key(key)?;
        check_value(value.len())?;
        // Both values travel in one command, which MongoDB limits to about 16 MiB.
        check_value(expected.len().saturating_add(value.len()))?;
        let now = DateTime::now();
        let filter = doc! {
            "id": key,
            "val": binary(expected),
            "expiration": { "$gt": now },
        };
        let update = doc! { "$set": {
            "val": binary(value),
            "expiration": expiration_after(now, ttl),
        } };
        let result = self.run(self.collection.update_one(filter, update)).await?;
        Ok(result.matched_count > 0)
    }

    async fn touch(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        check_key(key)?;
        let now = DateTime::now();
        let filter = doc! { "id": key, "expiration": { "$gt": now } };
        let update = doc! { "$set": { "expiration": expiration_after(now, ttl) } };
        let result = self.run(self.collection.update_one(filter, update)).await?;
        Ok(result.matched_count > 0)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        check_key(key)?;
        // Every copy: a collection Flask-Session filled before the unique index existed
        // can hold several documents with one `id`.
        self.run(self.collection.delete_many(doc! { "id": key }))
            .await?;
        Ok(())
    }

    /// `delete_one` filtered on the id, the exact bytes and a live expiration: atomic on
    /// the server. Rotation uses it through the default [`rotate`](SessionStore::rotate).
    async fn compare_and_delete(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        check_key(key)?;
        check_value(expected.len())?;
        let filter = doc! {
            "id": key,
            "val": binary(expected),
            "expiration": { "$gt": DateTime::now() },
        };
        let result = self.run(self.collection.delete_one(filter)).await?;
        Ok(result.deleted_count > 0)
    }

    async fn cleanup(&self) -> Result<u64, StoreError> {
        // The TTL monitor does this about once a minute; cleanup does it now, and does it
        // at all where the TTL index was skipped.
        let filter = doc! { "expiration": { "$lte": DateTime::now() } };
        let result = self
            .run(self.collection.delete_many(filter.clone()))
            .await?;
        // Owner index entries past their grace go too (not counted: they are not sessions).
        self.run(self.owners.delete_many(filter)).await?;
        Ok(result.deleted_count)
    }

    /// Live documents whose `id` starts with the prefix (an anchored, escaped regular
    /// expression, which the unique index on `id` serves), in `id` order after the last
    /// key of the previous page.
    async fn scan(
        &self,
        prefix: &str,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<ScanPage, StoreError> {
        check_key(prefix)?;
        let limit = limit.clamp(1, 100_000);
        let mut id = doc! { "$regex": format!("^{}", regex_escape(prefix)) };
        if let Some(after) = &cursor {
            check_key(after)?;
            id.insert("$gt", after.as_str());
        }
        let filter = doc! { "id": id, "expiration": { "$gt": DateTime::now() } };
        let mut found = self
            .run(
                self.collection
                    .find(filter)
                    .sort(doc! { "id": 1 })
                    .limit(i64::try_from(limit).unwrap_or(i64::MAX))
                    .projection(doc! { "_id": 0, "id": 1 }),
            )
            .await?;
        let mut keys = Vec::new();
        while self.run(found.advance()).await? {
            let document = found.deserialize_current().map_err(map_error)?;
            if let Ok(key) = document.get_str("id") {
                keys.push(key.to_owned());
            }
        }
        let next = (keys.len() == limit)
            .then(|| keys.last().cloned())
            .flatten();
        Ok(ScanPage { keys, next })
    }

    /// The owner index is kept, in [`owners_collection`](MongoStore::owners_collection).
    fn owner_index(&self) -> bool {
        true
    }

    /// One upsert on `(index, key)`; the document's `expiration` (for the TTL index) is
    /// [`OWNERS_EXPIRY_GRACE`] after `entry.expires_at`.
    async fn index_put(&self, index: &str, entry: &IndexEntry) -> Result<(), StoreError> {
        check_key(index)?;
        check_key(&entry.key)?;
        let filter = doc! { "index": index, "key": &entry.key };
        let expiration = owners_expiration(entry.expires_at);
        let update = doc! { "$set": {
            "created": seconds(entry.created),
            "last_seen": seconds(entry.last_seen),
            "expires_at": seconds(entry.expires_at),
            "expiration": expiration,
        } };
        // Two upserts of one new entry at once: one inserts, the other hits the unique
        // index; then the entry exists and a second attempt updates it.
        for attempt in 0..2 {
            let result = tokio::time::timeout(
                self.operation_timeout,
                self.owners
                    .update_one(filter.clone(), update.clone())
                    .upsert(true),
            )
            .await;
            match result {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(error)) if attempt == 0 && is_duplicate_key(&error) => {}
                Ok(Err(error)) => return Err(map_error(error)),
                Err(_) => return Err(self.timed_out()),
            }
        }
        Ok(())
    }

    async fn index_remove(&self, index: &str, key: &str) -> Result<(), StoreError> {
        check_key(index)?;
        check_key(key)?;
        // Every copy: without the unique index (skip_index_creation), racing upserts may
        // have made two.
        self.run(self.owners.delete_many(doc! { "index": index, "key": key }))
            .await?;
        Ok(())
    }

    /// The index's documents whose `expiration` is still ahead (the TTL monitor runs about
    /// once a minute, so the filter does not rely on it). Documents that do not read as an
    /// entry (a field missing or of another type) are skipped with a warning.
    async fn index_list(&self, index: &str) -> Result<Vec<IndexEntry>, StoreError> {
        check_key(index)?;
        let filter = doc! { "index": index, "expiration": { "$gt": DateTime::now() } };
        let mut found = self
            .run(self.owners.find(filter).projection(doc! {
                "_id": 0, "key": 1, "created": 1, "last_seen": 1, "expires_at": 1,
            }))
            .await?;
        let mut entries = Vec::new();
        while self.run(found.advance()).await? {
            match found.deserialize_current().ok().as_ref().and_then(entry_of) {
                Some(entry) => entries.push(entry),
                None => tracing::warn!("owner index document that is no entry skipped"),
            }
        }
        Ok(entries)
    }
}

/// Unix seconds as a BSON integer (saturating at `i64::MAX`).
fn seconds(at: u64) -> i64 {
    i64::try_from(at).unwrap_or(i64::MAX)
}

/// The `expiration` date of an owner index entry whose session expires at `expires_at`.
fn owners_expiration(expires_at: u64) -> DateTime {
    let at = seconds(expires_at)
        .saturating_add(OWNERS_EXPIRY_GRACE.as_secs() as i64)
        .saturating_mul(1000);
    DateTime::from_millis(at)
}

/// An owner index document as an entry; `None` when it is not one.
fn entry_of(document: &Document) -> Option<IndexEntry> {
    let number = |field: &str| -> Option<u64> {
        match document.get(field)? {
            Bson::Int64(n) => u64::try_from(*n).ok(),
            Bson::Int32(n) => u64::try_from(*n).ok(),
            _ => None,
        }
    };
    Some(IndexEntry {
        key: document.get_str("key").ok()?.to_owned(),
        created: number("created")?,
        last_seen: number("last_seen")?,
        expires_at: number("expires_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiration_saturates() {
        let now = DateTime::from_millis(1_000);
        assert_eq!(
            expiration_after(now, Duration::from_secs(2)).timestamp_millis(),
            3_000
        );
        assert_eq!(
            expiration_after(now, Duration::MAX).timestamp_millis(),
            i64::MAX
        );
    }

    #[test]
    fn dates_convert_to_system_time() {
        assert_eq!(
            system_time(DateTime::from_millis(1_500)),
            Some(UNIX_EPOCH + Duration::from_millis(1_500))
        );
        assert_eq!(
            system_time(DateTime::from_millis(-1_500)),
            UNIX_EPOCH.checked_sub(Duration::from_millis(1_500))
        );
        // Extreme dates never panic.
        let _ = system_time(DateTime::from_millis(i64::MAX));
        let _ = system_time(DateTime::from_millis(i64::MIN));
    }

    #[test]
    fn limits() {
        assert!(check_value(MAX_VALUE_BYTES).is_ok());
        assert!(matches!(
            check_value(MAX_VALUE_BYTES + 1),
            Err(StoreError::TooLarge { size, limit }) if size == MAX_VALUE_BYTES + 1 && limit == MAX_VALUE_BYTES
        ));
        assert!(check_key(&"k".repeat(MAX_KEY_BYTES)).is_ok());
        assert!(matches!(
            check_key(&"k".repeat(MAX_KEY_BYTES + 1)),
            Err(StoreError::InvalidKey(_))
        ));
    }

    #[test]
    fn owner_documents_read_back_and_bad_ones_are_none() {
        let good =
            doc! { "key": "session:a", "created": 1_i64, "last_seen": 2_i32, "expires_at": 3_i64 };
        assert_eq!(
            entry_of(&good),
            Some(IndexEntry {
                key: "session:a".to_owned(),
                created: 1,
                last_seen: 2,
                expires_at: 3
            })
        );
        for bad in [
            doc! { "created": 1_i64, "last_seen": 2_i64, "expires_at": 3_i64 },
            doc! { "key": 5, "created": 1_i64, "last_seen": 2_i64, "expires_at": 3_i64 },
            doc! { "key": "k", "created": -1_i64, "last_seen": 2_i64, "expires_at": 3_i64 },
            doc! { "key": "k", "created": "1", "last_seen": 2_i64, "expires_at": 3_i64 },
            doc! { "key": "k", "created": 1_i64, "last_seen": 2_i64 },
        ] {
            assert_eq!(entry_of(&bad), None, "{bad}");
        }
        assert_eq!(
            owners_expiration(u64::MAX).timestamp_millis(),
            i64::MAX,
            "saturates"
        );
        assert_eq!(owners_expiration(10).timestamp_millis(), 70_000);
    }

    #[test]
    fn values_are_generic_binary() {
        assert_eq!(
            binary(b"\x81"),
            Bson::Binary(Binary {
                subtype: BinarySubtype::Generic,
                bytes: vec![0x81]
            })
        );
    }
}

/// `text` as a literal in a regular expression: its metacharacters escaped.
fn regex_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\^$.|?*+()[]{}/-".contains(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod scan_tests {
    #[test]
    fn regex_metacharacters_of_the_prefix_are_literal() {
        assert_eq!(super::regex_escape("session:"), "session:");
        assert_eq!(super::regex_escape("a.b*c(d)"), r"a\.b\*c\(d\)");
    }
}
