//! The conformance kit against a Redis Cluster (`REDIS_CLUSTER_URL`, default the three
//! masters on 127.0.0.1:7000-7002), plus rotation within and across hash slots.

mod common;

use session_core::testkit::SeedExt as _;
use std::time::Duration;

use session_core::{testkit, SessionStore};
use session_redis::RedisStore;

const DEFAULT_URL: &str = "redis-cluster://127.0.0.1:7000?node=127.0.0.1:7001&node=127.0.0.1:7002";
const TTL: Duration = Duration::from_secs(300);

async fn connect() -> RedisStore {
    common::connect("REDIS_CLUSTER_URL", DEFAULT_URL, "redis-cluster").await
}

session_core::store_conformance_tests!(async { connect().await });

#[tokio::test]
async fn detects_the_cluster() {
    assert!(connect().await.is_clustered());
}

/// Keys with the same hash tag share a slot, so the atomic script handles them.
#[tokio::test]
async fn rotation_within_one_slot() {
    let store = connect().await;
    let tag = testkit::unique_prefix("slot");
    let (old, new) = (format!("{{{tag}}}old"), format!("{{{tag}}}new"));
    store.put(&old, b"v1", TTL).await.unwrap();
    assert!(!store
        .rotate(&old, b"stale", &new, b"v2", TTL)
        .await
        .unwrap());
    assert_eq!(store.load(&new).await.unwrap(), None);
    assert!(store.rotate(&old, b"v1", &new, b"v2", TTL).await.unwrap());
    assert_eq!(store.load(&old).await.unwrap(), None);
    assert_eq!(
        store.load(&new).await.unwrap().map(|e| e.value),
        Some(b"v2".to_vec())
    );
}

/// Keys in different slots (almost surely on different masters): the new entry appears,
/// the old one goes, and a failed check leaves neither changed.
#[tokio::test]
async fn rotation_across_slots() {
    let store = connect().await;
    let prefix = testkit::unique_prefix("slots");
    // Pick two keys in different slots deterministically.
    let old = format!("{prefix}old");
    let new = (0..)
        .map(|i| format!("{prefix}new{i}"))
        .find(|k| {
            fred::util::redis_keyslot(k.as_bytes()) != fred::util::redis_keyslot(old.as_bytes())
        })
        .unwrap();
    store.put(&old, b"v1", TTL).await.unwrap();
    assert!(!store
        .rotate(&old, b"stale", &new, b"v2", TTL)
        .await
        .unwrap());
    assert_eq!(
        store.load(&new).await.unwrap(),
        None,
        "the new entry was not undone"
    );
    assert_eq!(
        store.load(&old).await.unwrap().map(|e| e.value),
        Some(b"v1".to_vec())
    );
    assert!(store.rotate(&old, b"v1", &new, b"v2", TTL).await.unwrap());
    assert_eq!(store.load(&old).await.unwrap(), None);
    assert_eq!(
        store.load(&new).await.unwrap().map(|e| e.value),
        Some(b"v2".to_vec())
    );
    let ttl: i64 = fred::interfaces::KeysInterface::ttl(store.pool(), &new)
        .await
        .unwrap();
    assert!((299..=300).contains(&ttl), "{ttl}");
}

/// Many sessions spread over every master, all readable back.
#[tokio::test]
async fn keys_spread_over_all_masters() {
    let store = connect().await;
    let prefix = testkit::unique_prefix("spread");
    let keys: Vec<String> = (0..64).map(|i| format!("{prefix}{i}")).collect();
    for (i, key) in keys.iter().enumerate() {
        assert!(store
            .create(key, format!("v{i}").as_bytes(), TTL)
            .await
            .unwrap());
    }
    for (i, key) in keys.iter().enumerate() {
        let entry = store.load(key).await.unwrap().expect("entry");
        assert_eq!(entry.value, format!("v{i}").into_bytes());
    }
}

/// One master of the test cluster, addressed directly.
struct Master {
    client: fred::clients::Client,
    server: fred::types::config::Server,
    id: String,
}

impl Master {
    /// Every master the store's cluster client knows, each on a connection of its own.
    async fn all(store: &RedisStore) -> Vec<Master> {
        use fred::interfaces::{ClientLike as _, ClusterInterface as _};
        let routing = store
            .pool()
            .next()
            .cached_cluster_state()
            .expect("the cluster's slot map");
        let mut masters = Vec::new();
        for server in routing.unique_primary_nodes() {
            let config = fred::types::config::Config {
                server: fred::types::config::ServerConfig::Centralized {
                    server: server.clone(),
                },
                ..Default::default()
            };
            let client = fred::clients::Client::new(config, None, None, None);
            client.init().await.expect("connect to a master");
            let id: String = client.cluster_myid().await.expect("CLUSTER MYID");
            masters.push(Master { client, server, id });
        }
        masters
    }

    /// `CLUSTER SETSLOT slot state node-id` (fred's typed form omits the node of
    /// IMPORTING and MIGRATING).
    async fn set_slot(&self, slot: u16, state: &'static str, node: &str) {
        if let Err(error) = self.try_set_slot(slot, state, Some(node)).await {
            panic!("CLUSTER SETSLOT on {}: {error}", self.server);
        }
    }

    /// `CLUSTER SETSLOT slot state [node-id]`, its error returned.
    async fn try_set_slot(
        &self,
        slot: u16,
        state: &'static str,
        node: Option<&str>,
    ) -> Result<fred::types::Value, fred::error::Error> {
        let mut args = vec!["SETSLOT".into(), slot.into(), state.into()];
        args.extend(node.map(fred::types::Value::from));
        self.try_command("CLUSTER", args).await
    }

    async fn command(&self, name: &'static str, args: Vec<fred::types::Value>) {
        if let Err(error) = self.try_command(name, args).await {
            panic!("{name} on {}: {error}", self.server);
        }
    }

    async fn try_command(
        &self,
        name: &'static str,
        args: Vec<fred::types::Value>,
    ) -> Result<fred::types::Value, fred::error::Error> {
        use fred::interfaces::ClientLike as _;
        let command =
            fred::types::CustomCommand::new_static(name, fred::types::ClusterHash::Random, false);
        self.client.custom(command, args).await
    }

    /// Moves `key` to `to` (`MIGRATE`).
    async fn migrate(&self, key: &str, to: &Master) {
        self.command("MIGRATE", to.migrate_args(key)).await;
    }

    /// The arguments of a `MIGRATE` of `key` to this master.
    fn migrate_args(&self, key: &str) -> Vec<fred::types::Value> {
        vec![
            self.server.host.to_string().into(),
            i64::from(self.server.port).into(),
            key.into(),
            0.into(),
            5000.into(),
        ]
    }

    /// Moves every key of `slot` this master holds to `to`.
    async fn migrate_keys(&self, slot: u16, to: &Master) {
        use fred::interfaces::ClusterInterface as _;
        let keys: Vec<String> = self
            .client
            .cluster_get_keys_in_slot(slot, 1000)
            .await
            .expect("CLUSTER GETKEYSINSLOT");
        for key in keys {
            self.migrate(&key, to).await;
        }
    }
}

/// Moves `slot` from `from` to `to` as `redis-cli --cluster reshard` does; `during` runs
/// while the slot is being migrated, before the remaining keys move.
async fn move_slot(
    slot: u16,
    masters: &[Master],
    from: usize,
    to: usize,
    during: impl std::future::Future<Output = ()>,
) {
    let (source, target) = (&masters[from], &masters[to]);
    target.set_slot(slot, "IMPORTING", &source.id).await;
    source.set_slot(slot, "MIGRATING", &target.id).await;
    during.await;
    source.migrate_keys(slot, target).await;
    for master in masters {
        master.set_slot(slot, "NODE", &target.id).await;
    }
}

/// Gives `slot` back to master `owner` with all its keys if the test fails half-way, so
/// that the shared cluster is whole for the other tests.
struct SlotRestorer {
    slot: u16,
    owner: fred::types::config::Server,
    url: String,
}

impl Drop for SlotRestorer {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let (slot, owner, url) = (self.slot, self.owner.clone(), self.url.clone());
        let restore = std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().expect("a runtime");
            runtime.block_on(async move {
                let store = RedisStore::connect(&url).await.expect("reconnect");
                let masters = Master::all(&store).await;
                let Some(owner) = masters.iter().find(|m| m.server == owner) else {
                    return;
                };
                for master in &masters {
                    let _ = master.try_set_slot(slot, "STABLE", None).await;
                }
                // A master that holds keys of a slot it does not own serves them only
                // while importing it, after ASKING.
                for master in masters.iter().filter(|m| m.server != owner.server) {
                    let _ = master
                        .try_set_slot(slot, "IMPORTING", Some(&owner.id))
                        .await;
                    let keys: Vec<String> =
                        fred::interfaces::ClusterInterface::cluster_get_keys_in_slot(
                            &master.client,
                            slot,
                            1000,
                        )
                        .await
                        .unwrap_or_default();
                    for key in keys {
                        let _ = master.try_command("ASKING", Vec::new()).await;
                        let _ = master
                            .try_command("MIGRATE", owner.migrate_args(&key))
                            .await;
                    }
                    let _ = master.try_set_slot(slot, "STABLE", None).await;
                }
                for master in &masters {
                    let _ = master.try_set_slot(slot, "NODE", Some(&owner.id)).await;
                }
            });
        });
        let _ = restore.join();
    }
}

/// A slot moved to another master while its sessions are in use: during the migration a
/// session already moved is found there (`ASK`), and afterwards every session of the slot
/// is found on its new master (`MOVED`, then a new slot map), for reads and for
/// compare-and-set alike. The slot is moved back at the end.
#[tokio::test]
async fn sessions_follow_a_slot_moved_to_another_master() {
    let store = connect().await;
    let tag = testkit::unique_prefix("moving");
    let (moved, stays) = (format!("{{{tag}}}moved"), format!("{{{tag}}}stays"));
    let slot = fred::util::redis_keyslot(moved.as_bytes());
    let masters = Master::all(&store).await;
    assert!(masters.len() > 1, "the test cluster needs two masters");
    let routing = fred::interfaces::ClusterInterface::cached_cluster_state(store.pool().next())
        .expect("the cluster's slot map");
    let owner = routing.get_server(slot).expect("the slot's master").clone();
    let from = masters.iter().position(|m| m.server == owner).unwrap();
    let to = (from + 1) % masters.len();
    let _restorer = SlotRestorer {
        slot,
        owner,
        url: std::env::var("REDIS_CLUSTER_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned()),
    };
    store.put(&moved, b"v1", TTL).await.unwrap();
    store.put(&stays, b"s1", TTL).await.unwrap();

    let value = |key: &str| {
        let (store, key) = (store.clone(), key.to_owned());
        async move { store.load(&key).await.unwrap().map(|e| e.value) }
    };
    move_slot(slot, &masters, from, to, async {
        // Only `moved` goes ahead: the source answers ASK for it.
        masters[from].migrate(&moved, &masters[to]).await;
        assert_eq!(value(&moved).await, Some(b"v1".to_vec()), "read after ASK");
        assert!(store
            .compare_and_set(&moved, b"v1", b"v2", TTL)
            .await
            .unwrap());
        assert_eq!(value(&stays).await, Some(b"s1".to_vec()), "not yet moved");
    })
    .await;
    assert_eq!(
        value(&moved).await,
        Some(b"v2".to_vec()),
        "read after MOVED"
    );
    assert!(store
        .compare_and_set(&stays, b"s1", b"s2", TTL)
        .await
        .unwrap());

    move_slot(slot, &masters, to, from, async {}).await;
    assert_eq!(value(&moved).await, Some(b"v2".to_vec()));
    assert_eq!(value(&stays).await, Some(b"s2".to_vec()));
    store.delete(&moved).await.unwrap();
    assert_eq!(value(&moved).await, None);
}

/// Client tracking works on every master's pool: a key one store read is reported when
/// another store writes it, whichever master holds it.
#[tokio::test]
async fn another_writer_is_reported_from_every_master() {
    let (here, there) = (connect().await, connect().await);
    assert!(here.is_tracking(), "the cluster store tracks");
    let feed = here.invalidations().expect("an invalidation feed");
    let prefix = testkit::unique_prefix("tracked");
    let masters = Master::all(&here).await.len();
    let routing = fred::interfaces::ClusterInterface::cached_cluster_state(here.pool().next())
        .expect("the cluster's slot map");
    let mut seen = std::collections::HashSet::new();
    for i in 0.. {
        if seen.len() == masters {
            break;
        }
        let key = format!("{prefix}{i}");
        let slot = fred::util::redis_keyslot(key.as_bytes());
        let master = routing.get_server(slot).expect("a master").clone();
        if seen.contains(&master) {
            continue;
        }
        here.put(&key, b"here", TTL).await.unwrap();
        assert!(here.load(&key).await.unwrap().is_some());
        let mut watch = feed.watch();
        watch.borrow_and_update();
        there.put(&key, b"there", TTL).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), watch.changed())
            .await
            .unwrap_or_else(|_| panic!("no invalidation of {key} on {master}"))
            .unwrap();
        seen.insert(master);
    }
}
