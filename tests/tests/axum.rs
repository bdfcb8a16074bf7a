//! The HTTP suite for the axum adapter, on every store (servers: `cargo xtask services up`).

mod memory {
    session_tests::http_suite!(session_tests::Axum, session_tests::Memory);
}

mod filesystem {
    session_tests::http_suite!(session_tests::Axum, session_tests::Filesystem);
}

mod cachelib {
    session_tests::http_suite!(session_tests::Axum, session_tests::Cachelib);
}

mod redis {
    session_tests::http_suite!(session_tests::Axum, session_tests::Redis);
}

mod memcached {
    session_tests::http_suite!(session_tests::Axum, session_tests::Memcached);
}

mod postgres {
    session_tests::http_suite!(session_tests::Axum, session_tests::Postgres);
}

mod mongodb {
    session_tests::http_suite!(session_tests::Axum, session_tests::MongoDb);
}

mod dynamodb {
    session_tests::http_suite!(session_tests::Axum, session_tests::DynamoDb);
}
