/* Per-VM serialization: an flock() on <key>.lock in the state directory
 * (see state.h). The kernel drops the lock when the holder exits, however it
 * exits, so a lock file left by a killed run never blocks the next. */
#pragma once

#include <stdint.h>

/* Waits until deadline_ms (CLOCK_MONOTONIC, util_now_ms()) for the lock of
 * the guest key (target.h) in the directory dirfd. flock() promises no order
 * among waiters: in a storm of events any waiter may get the lock next, so
 * a holder looks again at what it planned without the lock (plan.h).
 * Returns 0 with the held fd in *ret_fd (close
 * it to unlock), -ETIMEDOUT, -EINVAL when the lock file is not a regular
 * file, or another -errno. Logs nothing. */
int lock_vm(int dirfd, const char *key, int64_t deadline_ms, int *ret_fd);
