//! No-ops where the allocator is not glibc's (see [`super`]).

/// Nothing to set: other allocators have no arena limit to ask for.
pub(super) fn use_one_arena() {}

/// Nothing to do: other allocators give free memory back on their own.
pub(super) fn give_back_free_memory() {}
