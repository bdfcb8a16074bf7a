//! Micro-benchmarks of the core: id generation, encode/decode of a typical session, and
//! the whole open → handler → finish path on MemoryStore.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use session_core::{
    MemoryStore, SerializationFormat, SessionConfig, SessionData, SessionId, SessionManager, Value,
};

/// A session like a Flask app with Flask-Login and Flask-WTF keeps.
fn typical_session() -> SessionData {
    [
        ("_permanent", Value::Boolean(true)),
        ("_user_id", Value::from("42")),
        ("_fresh", Value::Boolean(true)),
        ("_id", Value::from("f".repeat(128))),
        ("csrf_token", Value::from("c".repeat(40))),
        ("counter", Value::from(17)),
        (
            "_flashes",
            Value::Array(vec![Value::Array(vec![
                Value::from("message"),
                Value::from("Welcome back"),
            ])]),
        ),
    ]
    .into_iter()
    .collect()
}

fn ids(c: &mut Criterion) {
    c.bench_function("id/generate_32_bytes", |b| {
        b.iter(|| SessionId::generate(black_box(32)).unwrap())
    });
    let id = SessionId::generate(32).unwrap().to_string();
    c.bench_function("id/parse_cookie_value", |b| {
        b.iter(|| SessionId::parse(black_box(&id)))
    });
}

fn formats(c: &mut Criterion) {
    let data = typical_session();
    for format in [SerializationFormat::Msgpack, SerializationFormat::Json] {
        let bytes = format.encode(&data).unwrap();
        c.bench_function(&format!("format/{format}/encode"), |b| {
            b.iter(|| format.encode(black_box(&data)).unwrap())
        });
        c.bench_function(&format!("format/{format}/decode"), |b| {
            b.iter(|| format.decode(black_box(&bytes)).unwrap())
        });
    }
}

fn lifecycle(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let manager = SessionManager::new(MemoryStore::new(), SessionConfig::default());
    let cookie = runtime.block_on(async {
        let session = manager.open(None);
        for (key, value) in typical_session().iter() {
            session.insert_value(key, value.clone()).await.unwrap();
        }
        let outcome = manager.finish(&session).await.unwrap();
        let header = outcome.set_cookie.unwrap();
        header.split(';').next().unwrap()["session=".len()..].to_owned()
    });
    let manager = Arc::new(manager);

    c.bench_function("lifecycle/untouched", |b| {
        b.to_async(&runtime).iter(|| async {
            let session = manager.open(Some(&cookie));
            manager.finish(&session).await.unwrap()
        })
    });
    c.bench_function("lifecycle/read_only", |b| {
        b.to_async(&runtime).iter(|| async {
            let session = manager.open(Some(&cookie));
            let user: Option<String> = session.get("_user_id").await.unwrap();
            black_box(user);
            manager.finish(&session).await.unwrap()
        })
    });
    c.bench_function("lifecycle/counter_update", |b| {
        b.to_async(&runtime).iter(|| async {
            let session = manager.open(Some(&cookie));
            session
                .update("counter", |n: Option<i64>| n.unwrap_or(0) + 1)
                .await
                .unwrap();
            manager.finish(&session).await.unwrap()
        })
    });
}

criterion_group!(benches, ids, formats, lifecycle);
criterion_main!(benches);
