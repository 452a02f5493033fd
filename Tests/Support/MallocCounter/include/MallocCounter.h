#ifndef MALLOC_COUNTER_H
#define MALLOC_COUNTER_H
/// Counts heap allocations (malloc, calloc, realloc, memalign, posix_memalign, aligned_alloc)
/// made by any thread of this process while counting is on. Linked only into the
/// allocation-check tool, whose definitions of malloc & co. interpose on the C library's.
void malloc_counter_start(void);
long malloc_counter_stop(void);
#endif
