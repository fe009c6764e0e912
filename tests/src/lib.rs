//! Shared helpers for the integration tests in `tests/tests/`.
pub mod bgp;
pub mod lab;
