/* A QMP client: connect, greeting, qmp_capabilities, commands, close.
 * Every wait has a deadline. The socket serves one client at a time, so a
 * busy socket shows as no greeting; that is waited for up to the deadline.
 * Nothing here logs; errors are returned for the caller to explain. */
#pragma once

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Lines longer than this are a protocol error (a VM's answers are small). */
#define QMP_MAX_LINE (4 * 1024 * 1024)

struct qmp;

/* Connects to the socket at path and negotiates capabilities. Each wait
 * (the greeting, each answer) lasts up to timeout_ms, and none past
 * run_deadline_ms (CLOCK_MONOTONIC ms, util_now_ms(); 0: no such limit).
 *   0            connected, *ret set
 *   -ENOENT      no socket: the VM is not running
 *   -ECONNREFUSED nobody listening: the VM is not running
 *   -ETIMEDOUT   no greeting before the deadline: another client holds it
 *   -ECONNRESET / -EPROTO / -EMSGSIZE  QEMU closed or sent something else
 *   other -errno */
int qmp_open(const char *path, int timeout_ms, int64_t run_deadline_ms, struct qmp **ret);

/* The same over a connected stream socket (for the fuzzer and fake peers);
 * fd is owned by *ret afterwards, or closed on failure. */
int qmp_open_fd(int fd, int timeout_ms, int64_t run_deadline_ms, struct qmp **ret);

/* Runs one command; args, an object, is stolen (json_object() for none;
 * NULL, a json_pack() that failed, gives -ENOMEM and sends nothing). On 0,
 * *ret (if not NULL) gets a new reference to the "return" value. -EREMOTEIO
 * when QEMU answered with an error: see qmp_error_class()/qmp_error_desc().
 * Events that arrive meanwhile are skipped. Any other error (a timeout, a
 * reset, garbage) breaks the connection: every later call returns that
 * error at once, without waiting again. */
int qmp_execute(struct qmp *q, const char *command, json_t *args, json_t **ret);

/* The same in two halves, to send several commands before reading their
 * answers (QEMU answers in order): one round trip instead of many.
 * qmp_receive() must be called for each id, in the order sent. */
int qmp_send(struct qmp *q, const char *command, json_t *args, unsigned long *ret_id);
int qmp_receive(struct qmp *q, unsigned long id, json_t **ret);

/* The transport error that broke the connection, or 0. */
int qmp_broken(const struct qmp *q);

/* The last error QEMU answered with ("GenericError", "DeviceNotFound"). */
/* The process at the other end of the socket (the kernel's word,
 * SO_PEERCRED): QEMU's pid where no pid file names it; 0 when unknown. */
unsigned long qmp_peer_pid(const struct qmp *q);

const char *qmp_error_class(const struct qmp *q);
const char *qmp_error_desc(const struct qmp *q);

/* Closes and frees; accepts NULL, returns NULL. */
struct qmp *qmp_close(struct qmp *q);

/* Framing, pure and exposed for the tests. */

enum qmp_kind {
	QMP_MSG_GREETING,
	QMP_MSG_RETURN,
	QMP_MSG_ERROR,
	QMP_MSG_EVENT,
	QMP_MSG_UNKNOWN,
};

/* What a parsed message is. */
enum qmp_kind qmp_classify(json_t *msg);

/* Looks for a complete line in buf[0..len). Returns its length without the
 * line end ("\n" or "\r\n") and sets *ret_consumed to the bytes to drop
 * with it; -EAGAIN when no line is complete yet; -EMSGSIZE when the line
 * would be longer than max. */
long qmp_frame_line(const char *buf, size_t len, size_t max, size_t *ret_consumed);
