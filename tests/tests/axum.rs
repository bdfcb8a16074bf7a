//! The HTTP suite for the axum adapter, on every store that needs no server.

mod memory {
    session_tests::http_suite!(session_tests::Axum, session_tests::Memory);
}

mod filesystem {
    session_tests::http_suite!(session_tests::Axum, session_tests::Filesystem);
}

mod redis {
    session_tests::http_suite!(session_tests::Axum, session_tests::Redis);
}
