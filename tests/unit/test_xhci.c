/* Which controller and port a device gets (xhci_pick is pure). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "guests/xhci.h"

static struct xhci_ctrl ctrl(const char *id, unsigned p2, unsigned p3, uint32_t taken)
{
	struct xhci_ctrl c = { .p2 = p2, .p3 = p3, .taken = taken };

	strcpy(c.id, id);
	c.ours = strncmp(id, XHCI_OWN_PREFIX, strlen(XHCI_OWN_PREFIX)) == 0;
	c.whole = c.ours;
	return c;
}

#define PORTS(...) (ports_mask((const unsigned[]){ __VA_ARGS__, 0 }))
static uint32_t ports_mask(const unsigned *p)
{
	uint32_t m = 0;

	for (; *p; p++)
		m |= 1u << *p;
	return m;
}

static void test_pick(void **state)
{
	struct xhci_set set = { 0 };
	size_t ci;
	unsigned port;
	(void)state;

	/* nothing at all */
	assert_int_equal(xhci_pick(&set, false, &ci, &port), -ENOSPC);

	/* Proxmox's qemu-xhci with 15 ports: port 15 alone, for any speed */
	set.n = 1;
	set.c[0] = ctrl("xhci", 15, 15, 0);
	assert_int_equal(xhci_pick(&set, false, &ci, &port), 0);
	assert_int_equal(port, 15);
	assert_int_equal(xhci_pick(&set, true, &ci, &port), 0);
	assert_int_equal(port, 15);
	set.c[0].taken = PORTS(15);
	assert_int_equal(xhci_pick(&set, false, &ci, &port), -ENOSPC);
	/* ports 1-14 are Proxmox's usbN, even when free */
	set.c[0].taken = 0;
	set.c[0] = ctrl("xhci", 15, 4, 0);
	assert_int_equal(xhci_pick(&set, true, &ci, &port), -ENOSPC);
	assert_int_equal(xhci_pick(&set, false, &ci, &port), 0);
	set.c[0] = ctrl("xhci", 4, 4, 0); /* the default 4/4 */
	assert_int_equal(xhci_pick(&set, false, &ci, &port), -ENOSPC);

	/* the tool's own come first, top down */
	set.n = 2;
	set.c[0] = ctrl("xhci", 15, 15, 0);
	set.c[1] = ctrl("usbhotplug-xhci0", 15, 15, PORTS(15));
	assert_int_equal(xhci_pick(&set, false, &ci, &port), 0);
	assert_int_equal(ci, 1);
	assert_int_equal(port, 14);
	set.c[1].taken = 0xfffe;
	assert_int_equal(xhci_pick(&set, true, &ci, &port), 0);
	assert_int_equal(ci, 0);
	assert_int_equal(port, 15);
}

static void test_hint(void **state)
{
	static const struct {
		const char *text;
		int r;
		size_t n, n_devs;
	} table[] = {
		{ "stamp 1:2\n", 0, 0, 0 },
		{ "stamp 1:2\nctrl xhci 15 15 8000\nctrl usbhotplug-xhci0 15 15 4000\n"
		  "dev 3-4.1 1 14 046d c52b\ndev 3-4.2 0 15 0001 0002\ndev 3-9 - 0 0000 0000\n",
		  0, 2, 3 },
		{ "stamp 9:9\nctrl xhci 15 15 0\n", -EINVAL, 0, 0 },	/* another QEMU */
		{ "ctrl xhci 15 15 0\n", -EINVAL, 0, 0 },		/* no stamp */
		{ "stamp 1:2\nctrl uhci 15 15 0\n", -EINVAL, 0, 0 },	/* not ours, not xhci */
		{ "stamp 1:2\nctrl usbhotplug-xhcix 15 15 0\n", -EINVAL, 0, 0 },
		{ "stamp 1:2\nctrl xhci 16 15 0\n", -EINVAL, 0, 0 },
		{ "stamp 1:2\nctrl xhci 15 15 1\n", -EINVAL, 0, 0 },	/* port 0 */
		{ "stamp 1:2\nctrl xhci 15 15 10000\n", -EINVAL, 0, 0 }, /* port 16 */
		{ "stamp 1:2\nctrl xhci 15 15 0\ndev 3-4 1 15 0 0\n", -EINVAL, 0, 0 }, /* no ctrl 1 */
		{ "stamp 1:2\nctrl xhci 15 15 0\ndev 3-4 0 0 0 0\n", -EINVAL, 0, 0 },
		{ "stamp 1:2\nctrl xhci 15 15 0\ndev 3-x 0 1 0 0\n", -EINVAL, 0, 0 },
		{ "stamp 1:2\nctrl xhci 15 15 0\ndev 3-4 0 1 10000 0\n", -EINVAL, 0, 0 },
		{ "stamp 1:2\nctrl xhci 15 15 0 extra\n", -EINVAL, 0, 0 },
		{ "stamp 1:2\nbogus\n", -EINVAL, 0, 0 },
	};
	(void)state;

	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		struct xhci_set set = { .n = 99 };
		int r = xhci_hint_parse(table[i].text, strlen(table[i].text), "1:2", false, &set);

		if (r != table[i].r)
			fail_msg("case %zu: %d, not %d", i, r, table[i].r);
		if (r == 0 && (set.n != table[i].n || set.n_devs != table[i].n_devs))
			fail_msg("case %zu: %zu/%zu", i, set.n, set.n_devs);
		if (r < 0 && set.n != 99)
			fail_msg("case %zu: output touched on failure", i);
	}
	/* the ports the devices hold count as taken */
	{
		const char *t = "stamp 1:2\nctrl usbhotplug-xhci0 15 15 0\ndev 3-4 0 7 1 2\n";
		struct xhci_set set;
		struct usb_port p;

		assert_int_equal(xhci_hint_parse(t, strlen(t), "1:2", false, &set), 0);
		assert_true(set.c[0].taken & (1u << 7));
		assert_int_equal(port_parse("3-4", &p), 0);
		assert_non_null(xhci_find(&set, &p));
		assert_int_equal(xhci_find(&set, &p)->vid, 1);
		xhci_note_detached(&set, &p);
		assert_false(set.c[0].taken & (1u << 7));
		assert_null(xhci_find(&set, &p));
	}
	/* an empty stamp (QEMU's process unknown) never matches */
	assert_int_equal(xhci_hint_parse("stamp \n", 7, "", false, &(struct xhci_set){ 0 }), -EINVAL);
}

/* A reload that fails half way leaves what the caller had (issue: a
 * half-filled list was used after a failed reload). */
static void test_failed_load_keeps_the_old_set(void **state)
{
	static const char peer[] = "{\"QMP\": {\"version\": {}, \"capabilities\": []}}\n"
				   "{\"return\": {}, \"id\": 1}\n"
				   "{\"return\": [{\"name\": \"usbhotplug-xhci0\", \"type\": \"child<qemu-xhci>\"},"
				   " {\"name\": \"xhci\", \"type\": \"child<qemu-xhci>\"}], \"id\": 2}\n"
				   "{\"return\": 15, \"id\": 3}\n"; /* then QEMU goes away */
	struct xhci_set set = { 0 };
	struct qmp *q = NULL;
	int sv[2];
	(void)state;

	set.n = 1;
	set.c[0] = ctrl("xhci", 15, 15, PORTS(3));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(write(sv[1], peer, sizeof(peer) - 1), (ssize_t)sizeof(peer) - 1);
	shutdown(sv[1], SHUT_WR);
	assert_int_equal(qmp_open_fd(sv[0], 500, 0, &q), 0);
	assert_int_equal(xhci_load(q, false, &set), -ECONNRESET);
	assert_int_equal(set.n, 1);
	assert_string_equal(set.c[0].id, "xhci");
	assert_int_equal(set.c[0].taken, PORTS(3));
	qmp_close(q);
	close(sv[1]);
}

static void test_speed(void **state)
{
	(void)state;
	assert_false(xhci_is_superspeed("1.5"));
	assert_false(xhci_is_superspeed("12"));
	assert_false(xhci_is_superspeed("480"));
	assert_false(xhci_is_superspeed(""));
	assert_false(xhci_is_superspeed("5000x"));
	assert_true(xhci_is_superspeed("5000"));
	assert_true(xhci_is_superspeed("10000"));
	assert_true(xhci_is_superspeed("20000"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pick),
		cmocka_unit_test(test_hint),
		cmocka_unit_test(test_failed_load_keeps_the_old_set),
		cmocka_unit_test(test_speed),
	};
	return cmocka_run_group_tests_name("xhci", tests, NULL, NULL);
}
