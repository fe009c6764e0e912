//! `/metrics`, `/healthz` and `/readyz` over HTTP: the shared server of
//! [`ferrolb_observe`].
//!
//! - `/healthz`: 200 while the process runs.
//! - `/readyz`: 200 while [`Readiness::is_ready`]: a standby replica (not holding the
//!   Lease) is ready, so a rolling update of the Deployment can proceed; the active
//!   replica is ready once it has processed the initial lists of Services, pools and
//!   Namespaces. 503 before the Lease manager is up and while the leader is starting.
//! - `/metrics`: OpenMetrics text of [`crate::metrics::Metrics`].

pub use ferrolb_observe::{BindError, Readiness, Response, Routes, bind, serve, start};
