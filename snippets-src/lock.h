/* Per-VM serialization: an flock() on <lock_dir>/<vmid>.lock. The kernel
 * drops the lock when the holder exits, however it exits, so a lock file
 * left by a killed run never blocks the next. */
#pragma once

/* Waits up to timeout_ms for the lock; creates lock_dir if missing.
 * Returns 0 with the held fd in *ret_fd (close it to unlock), -ETIMEDOUT,
 * or another -errno. Logs nothing. */
int lock_vm(const char *lock_dir, unsigned long vmid, int timeout_ms, int *ret_fd);
