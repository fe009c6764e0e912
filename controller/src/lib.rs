//! FerroLB's controller: turns LoadBalancer Services and IPAddressPools into address
//! assignments. The decisions live in [`allocator`] (pure); the rest is the shell that
//! feeds it from Kubernetes or a directory and writes the results back.

pub mod allocator;
