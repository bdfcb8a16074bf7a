//! A private Redis Cluster of three masters without replicas loses one master: the
//! sessions on the other two are served throughout, those on the lost one fail with
//! `Unavailable` within the command timeout, and once the master is back they work again
//! on the same store; when another master takes its slots instead, the dead master's pool
//! is closed at once.

mod common;

use std::time::{Duration, Instant};

use common::PrivateRedis;
use fred::clients::Client;
use fred::interfaces::{ClientLike as _, ClusterInterface as _, KeysInterface as _};
use fred::types::config::{Config, Server, ServerConfig};
use fred::types::{ClusterHash, CustomCommand, Value};
use session_core::testkit::SeedExt as _;
use session_core::{SessionStore, StoreError};
use session_redis::RedisStore;

const TTL: Duration = Duration::from_secs(300);
/// The slots of each master.
const RANGES: [(u16, u16); 3] = [(0, 5460), (5461, 10922), (10923, 16383)];
/// Short enough that the live masters mark the lost one failed during the test.
const NODE_TIMEOUT_MS: &str = "1000";
const COMMAND_TIMEOUT: Duration = Duration::from_millis(500);

/// A standalone connection to one node.
async fn node_client(port: u16) -> Client {
    let config = Config {
        server: ServerConfig::Centralized {
            server: Server::new("127.0.0.1", port),
        },
        ..Default::default()
    };
    let client = Client::new(config, None, None, None);
    client.init().await.expect("connect to a cluster node");
    client
}

async fn cluster_command(client: &Client, args: Vec<Value>) {
    let command = CustomCommand::new_static("CLUSTER", ClusterHash::Random, false);
    let _: Value = client.custom(command, args).await.expect("CLUSTER command");
}

/// Three masters with a third of the slots each, once every node reports the cluster ok.
async fn start_cluster() -> Vec<PrivateRedis> {
    let options = [
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
        "--cluster-node-timeout",
        NODE_TIMEOUT_MS,
        "--cluster-require-full-coverage",
        "no",
    ];
    let mut nodes = Vec::new();
    for _ in RANGES {
        nodes.push(PrivateRedis::start_with(&options).await);
    }
    let clients = connect_all(&nodes).await;
    for (client, (low, high)) in clients.iter().zip(RANGES) {
        cluster_command(
            client,
            vec!["ADDSLOTSRANGE".into(), low.into(), high.into()],
        )
        .await;
    }
    for client in &clients[1..] {
        let meet = vec!["MEET".into(), "127.0.0.1".into(), nodes[0].port.into()];
        cluster_command(client, meet).await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut ready = true;
        for client in &clients {
            let info: String = client.cluster_info().await.expect("CLUSTER INFO");
            ready &= info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:3");
        }
        if ready {
            break;
        }
        assert!(Instant::now() < deadline, "the test cluster did not form");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for client in clients {
        let _ = client.quit().await;
    }
    nodes
}

async fn connect_all(nodes: &[PrivateRedis]) -> Vec<Client> {
    let mut clients = Vec::new();
    for node in nodes {
        clients.push(node_client(node.port).await);
    }
    clients
}

/// A key of the slots of master `master`.
fn key_on(master: usize, prefix: &str) -> String {
    let (low, high) = RANGES[master];
    (0..)
        .map(|n| format!("{prefix}{n}"))
        .find(|key| (low..=high).contains(&fred::util::redis_keyslot(key.as_bytes())))
        .expect("a key in the range")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_master_fails_only_the_sessions_in_its_slots() {
    let mut nodes = start_cluster().await;
    let url = format!(
        "redis-cluster://127.0.0.1:{}?node=127.0.0.1:{}&node=127.0.0.1:{}",
        nodes[0].port, nodes[1].port, nodes[2].port
    );
    let store = RedisStore::builder()
        .url(url)
        .command_timeout(COMMAND_TIMEOUT)
        .connect()
        .await
        .expect("connect to the test cluster");
    let keys: Vec<String> = (0..RANGES.len())
        .map(|master| key_on(master, "session:outage:"))
        .collect();
    for key in &keys {
        store.put(key, b"v", TTL).await.unwrap();
    }

    nodes[0].kill().await;
    // Past the node timeout, so the live masters mark the lost one failed meanwhile:
    // every read of theirs answers, each well within the command timeout.
    let outage = Instant::now();
    let mut reads = 0;
    while outage.elapsed() < Duration::from_secs(3) {
        for key in &keys[1..] {
            let started = Instant::now();
            let value = store.load(key).await.expect("a session on a live master");
            assert_eq!(value.map(|entry| entry.value), Some(b"v".to_vec()));
            assert!(
                started.elapsed() < COMMAND_TIMEOUT / 2,
                "a read on a live master took {:?}",
                started.elapsed()
            );
            reads += 1;
        }
    }
    assert!(reads > 10, "only {reads} reads");
    let started = Instant::now();
    match store.load(&keys[0]).await {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("a session on the lost master: {other:?}"),
    }
    assert!(started.elapsed() < COMMAND_TIMEOUT * 2);

    // Back on its port with its cluster configuration (its data is gone: no persistence);
    // the store reconnects by itself.
    nodes[0].restart().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.put(&keys[0], b"w", TTL).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the master's sessions did not come back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let value = store.load(&keys[0]).await.unwrap();
    assert_eq!(value.map(|entry| entry.value), Some(b"w".to_vec()));
}

async fn cluster_reply(client: &Client, args: Vec<Value>) -> Value {
    let command = CustomCommand::new_static("CLUSTER", ClusterHash::Random, false);
    client.custom(command, args).await.expect("CLUSTER command")
}

/// A master dies and another takes over its slots (here by hand, as a failover would): the
/// store drops the dead master's pool from its map and closes it, so a command that was
/// waiting on that pool's reconnection fails at once instead of at the command timeout,
/// and the slots' sessions go to the new owner. Both halves of the store's reaction are
/// needed: noticing the lost connection when it happens (not when a command to it times
/// out), and closing a pool whose clients are between reconnection attempts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_master_whose_slots_moved_is_closed_at_once() {
    let command_timeout = Duration::from_secs(5);
    let mut nodes = start_cluster().await;
    let url = format!(
        "redis-cluster://127.0.0.1:{}?node=127.0.0.1:{}&node=127.0.0.1:{}",
        nodes[0].port, nodes[1].port, nodes[2].port
    );
    let store = RedisStore::builder()
        .url(url)
        .command_timeout(command_timeout)
        .connect()
        .await
        .expect("connect to the test cluster");
    let key = key_on(0, "session:takeover:");
    store.put(&key, b"v", TTL).await.unwrap();
    let dead = node_client(nodes[0].port).await;
    let dead_id = cluster_reply(&dead, vec!["MYID".into()]).await;
    let _ = dead.quit().await;
    let live = connect_all(&nodes[1..]).await;

    nodes[0].kill().await;
    let waiting = {
        let (store, key) = (store.clone(), key.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let result = store.load(&key).await;
            (result, started.elapsed())
        })
    };
    // Both live masters forget the dead one, and the first claims its slots.
    for client in &live {
        cluster_command(client, vec!["FORGET".into(), dead_id.clone()]).await;
    }
    let (low, high) = RANGES[0];
    cluster_command(
        &live[0],
        vec!["ADDSLOTSRANGE".into(), low.into(), high.into()],
    )
    .await;
    cluster_command(&live[0], vec!["BUMPEPOCH".into()]).await;

    let (result, waited) = waiting.await.unwrap();
    assert!(
        waited < command_timeout / 2,
        "a read waiting on the dead master's pool took {waited:?} ({result:?})"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.put(&key, b"w", TTL).await.is_err() {
        assert!(Instant::now() < deadline, "the moved slots were not served");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let value = store.load(&key).await.unwrap();
    assert_eq!(value.map(|entry| entry.value), Some(b"w".to_vec()));
    let on_new_owner: Option<Vec<u8>> = live[0].get(&key).await.unwrap();
    assert_eq!(on_new_owner.as_deref(), Some(&b"w"[..]));
}
