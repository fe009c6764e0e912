//! FerroLB's controller: turns LoadBalancer Services and IPAddressPools into address
//! assignments. The decisions live in [`allocator`] and [`engine`] (pure); the rest is
//! the shell that feeds them from Kubernetes or a directory and writes the results back.

pub mod allocator;
pub mod cli;
pub mod engine;
pub mod health;
pub mod metrics;
pub mod model;
pub mod plan;
pub mod references;
pub mod source;
