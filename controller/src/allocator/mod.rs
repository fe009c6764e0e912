//! Allocation: pure.
