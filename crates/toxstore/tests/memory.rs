//! The conformance suite against the in-memory backend.

toxstore::conformance_tests!(async { (toxstore::InMemory::new(), ()) });
