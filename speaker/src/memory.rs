//! Giving freed heap back to the system.
//!
//! Reading the inputs parses every object into a tree, builds the world from it, and
//! drops the tree: a passing peak of a few MiB for a few thousand objects. glibc's
//! malloc keeps such freed memory in its heap, so the resident size would stay at the
//! peak for the life of the process. [`trim`] returns the free pages (`malloc_trim`
//! releases whole free pages anywhere in the heap, not only at its top); the speaker
//! calls it after taking in new inputs, which is rare and never on a packet path.

/// Returns free heap pages to the system (glibc only; elsewhere nothing to do).
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and releases the allocator's own free lists; it
    // has no preconditions and is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}
