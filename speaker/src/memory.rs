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

/// Allocations at least this large get pages of their own, returned when freed.
const MMAP_THRESHOLD: i32 = 256 * 1024;

/// Sets the allocator up for the speaker's life, so that what a large read frees goes
/// back to the system:
/// - large blocks (a file's text, the vectors of tens of thousands of parsed objects)
///   always get pages of their own; glibc otherwise raises that threshold each time
///   such a block is freed, up to 32 MiB, and then serves them from the heap;
/// - no "fast bins": freed small blocks merge with their neighbours at once. Parsing
///   runs on threads of its own, and a thread's heap (not the main one) only shrinks
///   when a free merges into its top; [`trim`] leaves those tops alone. With fast
///   bins, whether the tens of megabytes a parse frees merged there was down to
///   timing: measured, a speaker holding 10,000 Services then stayed at 35 MiB of heap
///   instead of 13 MiB about one start in three.
pub fn configure() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets tuning parameters of the allocator; it is called once,
    // before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_MXFAST, 0);
    }
}
