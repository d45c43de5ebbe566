//! Giving memory the process no longer uses back to the system.
//!
//! glibc's malloc keeps freed memory in its arenas for reuse and returns little of it on its
//! own, so a process's RSS stays at the high-water mark of its deepest backlog (the fetched
//! blocks, batches and produce queues of a catch-up) long after the backlog is gone.
//! [`release_free_memory`], called every few seconds from the engine's loop, releases the free
//! pages of every arena (`malloc_trim`): RSS then follows what is in use.

/// Releases the allocator's free pages to the system (glibc); elsewhere it does nothing.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn release_free_memory() {
    // SAFETY: malloc_trim takes no pointers; it only walks the allocator's own free lists
    // under the allocator's locks and gives whole free pages back.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Releases the allocator's free pages to the system (glibc); elsewhere it does nothing.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_memory() {}
