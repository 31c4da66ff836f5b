#include "guests/qmp.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "base/util.h"

struct qmp {
	int fd;
	int timeout_ms;
	int64_t run_deadline_ms; /* 0: none */
	int broken;		 /* the first transport error: every later call fails with it */
	unsigned long next_id;
	unsigned long caps_id; /* qmp_capabilities sent, its answer not read yet */
	char *buf;
	size_t len, cap;
	char *err_class, *err_desc;
};

long qmp_frame_line(const char *buf, size_t len, size_t max, size_t *ret_consumed)
{
	const char *nl;
	size_t l;

	if (len == 0)
		return -EAGAIN;	/* buf may be NULL */
	nl = memchr(buf, '\n', len < max + 2 ? len : max + 2);
	if (!nl)
		return len > max + 1 ? -EMSGSIZE : -EAGAIN;
	l = (size_t)(nl - buf);
	*ret_consumed = l + 1;
	if (l > 0 && buf[l - 1] == '\r')
		l--;
	if (l > max)
		return -EMSGSIZE;
	return (long)l;
}

enum qmp_kind qmp_classify(json_t *msg)
{
	if (!json_is_object(msg))
		return QMP_MSG_UNKNOWN;
	if (json_object_get(msg, "return"))
		return QMP_MSG_RETURN;
	if (json_is_object(json_object_get(msg, "error")))
		return QMP_MSG_ERROR;
	if (json_is_string(json_object_get(msg, "event")))
		return QMP_MSG_EVENT;
	if (json_is_object(json_object_get(msg, "QMP")))
		return QMP_MSG_GREETING;
	return QMP_MSG_UNKNOWN;
}

/* When the next answer must be there: timeout_ms from now, or the end of
 * the run if that comes first. */
static int64_t op_deadline(const struct qmp *q)
{
	int64_t d = util_now_ms() + q->timeout_ms;

	return q->run_deadline_ms && q->run_deadline_ms < d ? q->run_deadline_ms : d;
}

/* A transport error leaves the stream in an unknown state: remember it. */
static int fail(struct qmp *q, int r)
{
	if (r < 0 && r != -EREMOTEIO && !q->broken)
		q->broken = r;
	return r;
}

/* Reads more bytes into q->buf before the deadline. */
static int fill(struct qmp *q, int64_t deadline)
{
	for (;;) {
		struct pollfd p = { .fd = q->fd, .events = POLLIN };
		ssize_t n;
		int r;

		if (q->cap - q->len < 4096) {
			size_t ncap = q->cap ? q->cap * 2 : 8192;
			char *nb;

			if (ncap > QMP_MAX_LINE + 8192)
				ncap = QMP_MAX_LINE + 8192;
			if (ncap <= q->cap)
				return -EMSGSIZE;
			nb = realloc(q->buf, ncap);
			if (!nb)
				return -ENOMEM;
			q->buf = nb;
			q->cap = ncap;
		}
		n = recv(q->fd, q->buf + q->len, q->cap - q->len, 0);
		if (n > 0) {
			q->len += (size_t)n;
			return 0;
		}
		if (n == 0)
			return -ECONNRESET;
		if (errno != EAGAIN && errno != EINTR)
			return -errno;

		r = poll(&p, 1, util_remaining_ms(deadline));
		if (r == 0)
			return -ETIMEDOUT;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

/* Next complete JSON message, new reference. */
static int read_msg(struct qmp *q, int64_t deadline, json_t **ret)
{
	for (;;) {
		size_t consumed;
		long l = qmp_frame_line(q->buf, q->len, QMP_MAX_LINE, &consumed);

		if (l >= 0) {
			json_t *msg = json_loadb(q->buf, (size_t)l, JSON_REJECT_DUPLICATES, NULL);

			memmove(q->buf, q->buf + consumed, q->len - consumed);
			q->len -= consumed;
			if (!msg)
				return -EPROTO;
			*ret = msg;
			return 0;
		}
		if (l != -EAGAIN)
			return (int)l;
		l = fill(q, deadline);
		if (l < 0)
			return (int)l;
	}
}

static int send_all(struct qmp *q, const char *data, size_t len, int64_t deadline)
{
	while (len > 0) {
		struct pollfd p = { .fd = q->fd, .events = POLLOUT };
		ssize_t n = send(q->fd, data, len, MSG_NOSIGNAL);
		int r;

		if (n > 0) {
			data += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return errno == EPIPE ? -ECONNRESET : -errno;
		r = poll(&p, 1, util_remaining_ms(deadline));
		if (r == 0)
			return -ETIMEDOUT;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
	return 0;
}

static void set_error(struct qmp *q, json_t *err)
{
	const char *cls = json_string_value(json_object_get(err, "class"));
	const char *desc = json_string_value(json_object_get(err, "desc"));

	free(q->err_class);
	free(q->err_desc);
	q->err_class = strdup(cls ? cls : "");
	q->err_desc = strdup(desc ? desc : "");
}

int qmp_send(struct qmp *q, const char *command, json_t *args, unsigned long *ret_id)
{
	_cleanup_free_ char *text = NULL;
	unsigned long id;
	json_t *cmd;
	size_t l;
	char *t;

	if (q->broken) {
		json_decref(args);
		return q->broken;
	}
	/* NULL is a json_pack() that failed, never "no arguments" */
	if (!json_is_object(args)) {
		json_decref(args);
		return -ENOMEM;
	}
	id = ++q->next_id;
	cmd = json_pack("{s:s, s:I}", "execute", command, "id", (json_int_t)id);
	if (!cmd) {
		json_decref(args);
		return -ENOMEM;
	}
	if (json_object_size(args) == 0)
		json_decref(args);
	else if (json_object_set_new(cmd, "arguments", args) < 0) {
		json_decref(cmd);
		return -ENOMEM;
	}
	text = json_dumps(cmd, JSON_COMPACT);
	json_decref(cmd);
	if (!text)
		return -ENOMEM;
	/* a line ends the command */
	l = strlen(text);
	t = realloc(text, l + 2);
	if (!t)
		return -ENOMEM;
	text = t;
	memcpy(text + l, "\n", 2);
	*ret_id = id;
	return fail(q, send_all(q, text, l + 1, op_deadline(q)));
}

/* The answer to id, skipping events and answers to other ids. */
static int receive_one(struct qmp *q, unsigned long id, json_t **ret)
{
	int64_t deadline = op_deadline(q);

	for (;;) {
		json_t *msg, *rid;
		enum qmp_kind kind;
		int r;

		r = read_msg(q, deadline, &msg);
		if (r < 0)
			return r;
		kind = qmp_classify(msg);
		rid = json_object_get(msg, "id");
		if (kind == QMP_MSG_EVENT ||
		    ((kind == QMP_MSG_RETURN || kind == QMP_MSG_ERROR) &&
		     (!json_is_integer(rid) || (unsigned long)json_integer_value(rid) != id))) {
			json_decref(msg);
			continue;
		}
		if (kind == QMP_MSG_RETURN) {
			if (ret)
				*ret = json_incref(json_object_get(msg, "return"));
			json_decref(msg);
			return 0;
		}
		if (kind == QMP_MSG_ERROR) {
			set_error(q, json_object_get(msg, "error"));
			json_decref(msg);
			return -EREMOTEIO;
		}
		json_decref(msg);
		return -EPROTO;
	}
}

int qmp_receive(struct qmp *q, unsigned long id, json_t **ret)
{
	if (q->broken)
		return q->broken;
	/* qmp_capabilities went out with the first command: its answer
	 * comes first */
	if (q->caps_id) {
		unsigned long caps = q->caps_id;
		int r;

		q->caps_id = 0;
		r = receive_one(q, caps, NULL);
		if (r < 0)
			return fail(q, r == -EREMOTEIO ? -EPROTO : r);
	}
	return fail(q, receive_one(q, id, ret));
}

int qmp_broken(const struct qmp *q)
{
	return q->broken;
}

int qmp_execute(struct qmp *q, const char *command, json_t *args, json_t **ret)
{
	unsigned long id;
	int r;

	r = qmp_send(q, command, args, &id);
	if (r < 0)
		return r;
	return qmp_receive(q, id, ret);
}

/* Greeting, then capabilities negotiation. Frees q on failure. */
static int handshake(struct qmp *q, int64_t deadline, struct qmp **ret)
{
	json_t *greeting = NULL;
	int r;

	/* What QEMU still had to say to the previous client (an event that
	 * followed its last answer, say) can come first: skip messages up to
	 * the greeting. Anything that is not a QMP message is an error. */
	for (;;) {
		enum qmp_kind kind;

		r = read_msg(q, deadline, &greeting);
		if (r < 0)
			goto fail;
		kind = qmp_classify(greeting);
		json_decref(greeting);
		if (kind == QMP_MSG_GREETING)
			break;
		if (kind == QMP_MSG_UNKNOWN) {
			r = -EPROTO;
			goto fail;
		}
	}

	/* Its answer is read with the first command's, in one round trip:
	 * QEMU works through what it gets in order. */
	r = qmp_send(q, "qmp_capabilities", json_object(), &q->caps_id);
	if (r < 0)
		goto fail;
	*ret = q;
	return 0;
fail:
	qmp_close(q);
	return r;
}

int qmp_open(const char *path, int timeout_ms, int64_t run_deadline_ms, struct qmp **ret)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int64_t deadline;
	struct qmp *q;
	int r;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);

	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->timeout_ms = timeout_ms;
	q->run_deadline_ms = run_deadline_ms;
	deadline = op_deadline(q);
	q->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (q->fd < 0) {
		r = -errno;
		goto fail;
	}

	/* A non-blocking AF_UNIX connect either completes or fails with
	 * EAGAIN when the listener's backlog is full: retry until the
	 * deadline. */
	for (;;) {
		if (connect(q->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN || util_remaining_ms(deadline) == 0) {
			r = errno == EAGAIN ? -ETIMEDOUT : -errno;
			goto fail;
		}
		poll(NULL, 0, 10);
	}

	return handshake(q, deadline, ret);
fail:
	qmp_close(q);
	return r;
}

int qmp_open_fd(int fd, int timeout_ms, int64_t run_deadline_ms, struct qmp **ret)
{
	struct qmp *q = calloc(1, sizeof(*q));

	if (!q) {
		close(fd);
		return -ENOMEM;
	}
	q->fd = fd;
	q->timeout_ms = timeout_ms;
	q->run_deadline_ms = run_deadline_ms;
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
		int r = -errno;

		qmp_close(q);
		return r;
	}
	return handshake(q, op_deadline(q), ret);
}

unsigned long qmp_peer_pid(const struct qmp *q)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(q->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.pid <= 0)
		return 0;
	return (unsigned long)cred.pid;
}

const char *qmp_error_class(const struct qmp *q)
{
	return q->err_class ? q->err_class : "";
}

const char *qmp_error_desc(const struct qmp *q)
{
	return q->err_desc ? q->err_desc : "";
}

struct qmp *qmp_close(struct qmp *q)
{
	if (!q)
		return NULL;
	if (q->fd >= 0)
		close(q->fd);
	free(q->buf);
	free(q->err_class);
	free(q->err_desc);
	free(q);
	return NULL;
}
