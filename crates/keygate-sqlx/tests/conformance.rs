//! The conformance suite of `keygate::testing` against every SQL store.
//! PostgreSQL and MySQL run against the servers named by
//! `KEYGATE_TEST_POSTGRES_URL` / `KEYGATE_TEST_MYSQL_URL` (default on
//! 127.0.0.1) and are skipped with a printed reason when absent, unless
//! `CI=true`. (The in-memory store runs it from the core crate.)

mod support;

mod sqlite {
    keygate::conformance_tests!(crate::support::sqlite);
}

mod postgres {
    keygate::conformance_tests!(crate::support::postgres);
}

mod mysql {
    keygate::conformance_tests!(crate::support::mysql);
}
