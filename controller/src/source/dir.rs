//! Directory source (in progress).
