//! The HTTP suite for the actix-web adapter, on the same stores as axum's.

mod memory {
    session_tests::http_suite!(session_tests::Actix, session_tests::Memory);
}

mod filesystem {
    session_tests::http_suite!(session_tests::Actix, session_tests::Filesystem);
}

mod cachelib {
    session_tests::http_suite!(session_tests::Actix, session_tests::Cachelib);
}

mod redis {
    session_tests::http_suite!(session_tests::Actix, session_tests::Redis);
}

mod memcached {
    session_tests::http_suite!(session_tests::Actix, session_tests::Memcached);
}

mod postgres {
    session_tests::http_suite!(session_tests::Actix, session_tests::Postgres);
}

mod mongodb {
    session_tests::http_suite!(session_tests::Actix, session_tests::MongoDb);
}

mod dynamodb {
    session_tests::http_suite!(session_tests::Actix, session_tests::DynamoDb);
}
