//! Kubernetes objects to allocator inputs (in progress).
