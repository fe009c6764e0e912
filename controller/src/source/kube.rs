//! Kubernetes source (in progress).
