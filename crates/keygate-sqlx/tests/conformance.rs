//! The conformance suite against every store. PostgreSQL and MySQL run
//! against the servers named by `KEYGATE_TEST_POSTGRES_URL` /
//! `KEYGATE_TEST_MYSQL_URL` (default on 127.0.0.1) and are skipped with a
//! printed reason when absent, unless `CI=true`.

mod suite;
mod support;

mod memory {
    crate::suite::conformance_tests!(crate::support::memory);
}

mod sqlite {
    crate::suite::conformance_tests!(crate::support::sqlite);
}

mod postgres {
    crate::suite::conformance_tests!(crate::support::postgres);
}

mod mysql {
    crate::suite::conformance_tests!(crate::support::mysql);
}
