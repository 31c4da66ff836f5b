/* QMP framing and message kinds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <errno.h>
#include <string.h>

#include "guests/qmp.h"
#include "base/util.h"

static void test_frame(void **state)
{
	size_t consumed = 0;
	(void)state;

	assert_int_equal(qmp_frame_line("{}\r\n{", 5, 100, &consumed), 2);
	assert_int_equal(consumed, 4);
	assert_int_equal(qmp_frame_line("{}\n", 3, 100, &consumed), 2);
	assert_int_equal(consumed, 3);
	assert_int_equal(qmp_frame_line("\n", 1, 100, &consumed), 0);
	assert_int_equal(qmp_frame_line("{\"a\":", 5, 100, &consumed), -EAGAIN);
	assert_int_equal(qmp_frame_line("", 0, 100, &consumed), -EAGAIN);
	/* exactly max is fine, one more is not, with or without a line end yet */
	assert_int_equal(qmp_frame_line("12345\n", 6, 5, &consumed), 5);
	assert_int_equal(qmp_frame_line("12345\r\n", 7, 5, &consumed), 5);
	assert_int_equal(qmp_frame_line("123456\n", 7, 5, &consumed), -EMSGSIZE);
	assert_int_equal(qmp_frame_line("1234567", 7, 5, &consumed), -EMSGSIZE);
	assert_int_equal(qmp_frame_line("123456", 6, 5, &consumed), -EAGAIN);
}

static void test_classify(void **state)
{
	static const struct {
		const char *json;
		enum qmp_kind kind;
	} cases[] = {
		{ "{\"QMP\": {\"version\": {}, \"capabilities\": []}}", QMP_MSG_GREETING },
		{ "{\"return\": {}}", QMP_MSG_RETURN },
		{ "{\"return\": [], \"id\": 3}", QMP_MSG_RETURN },
		{ "{\"error\": {\"class\": \"GenericError\", \"desc\": \"x\"}}", QMP_MSG_ERROR },
		{ "{\"error\": \"not an object\"}", QMP_MSG_UNKNOWN },
		{ "{\"event\": \"DEVICE_DELETED\", \"data\": {}}", QMP_MSG_EVENT },
		{ "{\"event\": 5}", QMP_MSG_UNKNOWN },
		{ "[1, 2]", QMP_MSG_UNKNOWN },
		{ "\"QMP\"", QMP_MSG_UNKNOWN },
		{ "{}", QMP_MSG_UNKNOWN },
	};
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *j = json_loads(cases[i].json, JSON_DECODE_ANY, NULL);

		assert_non_null(j);
		assert_int_equal(qmp_classify(j), cases[i].kind);
		json_decref(j);
	}
	assert_int_equal(qmp_classify(NULL), QMP_MSG_UNKNOWN);
}

static void test_not_running(void **state)
{
	struct qmp *q = NULL;
	(void)state;

	assert_int_equal(qmp_open("/nonexistent/dir/100.qmp", 100, 0, &q), -ENOENT);
	assert_null(q);
	assert_null(qmp_close(NULL));
}

/* A peer that greets and then says nothing: the first command waits its
 * timeout; the connection is broken after that, so the next fails at once;
 * and a json_pack() that failed is never sent as "no arguments". */
static void test_broken_fails_fast(void **state)
{
	static const char greeting[] = "{\"QMP\": {\"version\": {}, \"capabilities\": []}}\n";
	struct qmp *q = NULL;
	int64_t t;
	char buf[4096];
	int sv[2];
	(void)state;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(write(sv[1], greeting, sizeof(greeting) - 1), (ssize_t)sizeof(greeting) - 1);
	assert_int_equal(qmp_open_fd(sv[0], 200, 0, &q), 0);

	assert_int_equal(qmp_execute(q, "device_del", NULL, NULL), -ENOMEM);
	assert_int_equal(qmp_broken(q), 0);

	t = util_now_ms();
	assert_int_equal(qmp_execute(q, "qom-list", json_object(), NULL), -ETIMEDOUT);
	assert_true(util_now_ms() - t >= 150);
	assert_int_equal(qmp_broken(q), -ETIMEDOUT);
	t = util_now_ms();
	assert_int_equal(qmp_execute(q, "qom-list", json_object(), NULL), -ETIMEDOUT);
	assert_true(util_now_ms() - t < 50);
	/* what went out: capabilities (no arguments) and one qom-list */
	ssize_t n = read(sv[1], buf, sizeof(buf) - 1);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "\"execute\":\"qmp_capabilities\""));
	assert_null(strstr(buf, "arguments"));
	assert_null(strstr(buf, "device_del"));
	assert_non_null(strstr(buf, "qom-list"));
	assert_null(strstr(strstr(buf, "qom-list") + 1, "qom-list"));
	qmp_close(q);
	close(sv[1]);

	/* the run's deadline cuts a longer timeout short */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	t = util_now_ms();
	assert_int_equal(qmp_open_fd(sv[0], 5000, t + 200, &q), -ETIMEDOUT);
	assert_true(util_now_ms() - t < 2000);
	close(sv[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frame),
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_not_running),
		cmocka_unit_test(test_broken_fails_fast),
	};
	return cmocka_run_group_tests_name("qmp", tests, NULL, NULL);
}
