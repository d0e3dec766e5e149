//! The two glibc calls behind [`super`]. This file is the only place in the
//! workspace allowed `unsafe` code: `mallopt` and `malloc_trim` are glibc
//! extensions that neither std nor a maintained crate wraps.
#![allow(unsafe_code)]

/// `mallopt(M_ARENA_MAX, 1)`.
pub(super) fn use_one_arena() {
    // SAFETY: mallopt takes two integers and no pointers; glibc applies the
    // setting under its own lock. A refusal (0) only leaves the default.
    let applied = unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
    if applied == 0 {
        tracing::debug!("the allocator kept its default arenas (mallopt refused M_ARENA_MAX)");
    }
}

/// `malloc_trim(0)`: every whole free page of every arena goes back to the
/// system, and the main heap's free top is shrunk.
pub(super) fn give_back_free_memory() {
    // SAFETY: malloc_trim takes no pointers and touches only the allocator's
    // free lists, which it locks arena by arena.
    let released = unsafe { libc::malloc_trim(0) };
    tracing::debug!(released = released != 0, "gave free memory back to the system");
}
