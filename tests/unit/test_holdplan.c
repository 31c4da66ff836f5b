/* Which ports to hold: the pure plan (policy/holdplan.h), one row a case
 * of README's "Held ports". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/holdplan.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define MAX_ITEMS 6

static struct usb_port port(const char *s)
{
	struct usb_port p;

	assert_int_equal(port_parse(s, &p), 0);
	return p;
}

/* "a 1-1" (guest a's port rule), "a !1-1.2" (its deny) */
static struct holdplan_rule rule(const char *spec)
{
	struct holdplan_rule r = { .guest = (size_t)(spec[0] - 'a') };
	const char *p = spec + 2;

	r.deny = *p == '!';
	r.port = port(p + r.deny);
	snprintf(r.label, sizeof(r.label), "VM %c", spec[0]);
	return r;
}

static void test_parent(void **state)
{
	static const struct {
		const char *port, *hub;
	} cases[] = {
		{ "3-4", "usb3" },
		{ "11-2", "usb11" },
		{ "3-4.1", "3-4" },
		{ "1-1.3.1", "1-1.3" },
		{ "1-1.2.3.4.5.6", "1-1.2.3.4.5" },
	};
	(void)state;
	for (size_t i = 0; i < N(cases); i++) {
		struct usb_port p = port(cases[i].port);
		char buf[PORT_STRLEN], back[PORT_STRLEN];

		holdplan_parent_name(&p, buf, sizeof(buf));
		assert_string_equal(buf, cases[i].hub);
		/* and back: the port's name from its hub and number */
		holdplan_port_name(buf, p.num[p.depth - 1], back, sizeof(back));
		assert_string_equal(back, cases[i].port);
	}
}

static void test_wanted(void **state)
{
	/* VM a: 1-1 but not 1-1.2 (but 1-1.2.3 again); VM b: 1-1.2.4; VM c:
	 * 2-3 and deny 2-3 */
	struct holdplan_rule rules[] = {
		rule("a 1-1"), rule("a !1-1.2"), rule("a 1-1.2.3"),
		rule("b 1-1.2.4"), rule("c 2-3"), rule("c !2-3"),
	};
	static const struct {
		const char *port;
		bool held;
	} cases[] = {
		{ "1-1", true },       { "1-1.1", true },      { "1-1.2", false },
		{ "1-1.2.1", false },  { "1-1.2.3", true },    { "1-1.2.3.1", true },
		{ "1-1.2.4", true },   { "1-2", false },       { "2-3", false },
		{ "2-3.1", false },    { "3-1", false },
	};
	(void)state;
	for (size_t i = 0; i < N(cases); i++) {
		struct usb_port p = port(cases[i].port);

		if (holdplan_wanted(rules, N(rules), &p) != cases[i].held)
			fail_msg("%s: held %d, expected %d", cases[i].port, !cases[i].held, cases[i].held);
	}
}

/* The plan as text: "HUB:P,P HUB:" in its order. */
static void plan_text(const struct holdplan_want *want, size_t n, char *buf, size_t size)
{
	size_t len = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		len += (size_t)snprintf(buf + len, size - len, "%s%s:", i ? " " : "", want[i].name);
		for (unsigned p = 1, first = 1; p <= HOLDPLAN_MAX_PORT; p++)
			if (holdplan_ports_has(&want[i].held, p)) {
				len += (size_t)snprintf(buf + len, size - len, "%s%u", first ? "" : ",", p);
				first = 0;
			}
	}
}

static const struct {
	const char *what;
	const char *rules[MAX_ITEMS]; /* "a 1-1", "a !1-1.2" */
	const char *hubs[MAX_ITEMS];  /* present: "1-1 4" (its maxchild) */
	const char *plan;
} plans[] = {
	{ "no rules: nothing held", { NULL }, { "1-1 4" }, "" },
	{ "a rule's own port, on its root hub", { "a 1-1" }, { NULL }, "usb1:1" },
	{ "every port of a hub below a rule's port", { "a 1-1" }, { "1-1 4" }, "usb1:1 1-1:1,2,3,4" },
	{ "and of hubs below that one", { "a 1-1" }, { "1-1 2", "1-1.2 3" },
	  "usb1:1 1-1:1,2 1-1.2:1,2,3" },
	{ "not a port a more specific deny of the guest keeps out", { "a 1-1", "a !1-1.2" },
	  { "1-1 4", "1-1.2 2" }, "usb1:1 1-1:1,3,4 1-1.2:" },
	{ "a port rule below the deny holds again", { "a 1-1", "a !1-1.2", "a 1-1.2.2" },
	  { "1-1 2", "1-1.2 3" }, "usb1:1 1-1.2:2 1-1:1" },
	{ "a deny as specific as the port rule wins", { "a 2-3", "a !2-3" }, { NULL }, "" },
	{ "another guest's deny keeps nothing out", { "a 1-1", "b !1-1.2" }, { "1-1 2" },
	  "usb1:1 1-1:1,2" },
	{ "a hub not below a rule's port: not held", { "a 1-1" }, { "1-2 4", "2-1 4" }, "usb1:1" },
	{ "a rule below a hub: that port of the hub only", { "a 1-1.3" }, { "1-1 4" }, "1-1:3" },
	{ "a hub without ports", { "a 1-1" }, { "1-1 0" }, "usb1:1" },
	{ "a hub as deep as ports go has no ports to hold", { "a 1-1" },
	  { "1-1.1.1.1.1.1.1 4" }, "usb1:1" },
	{ "two guests' rules on one hub", { "a 1-1", "b 1-2" }, { NULL }, "usb1:1,2" },
	{ "the highest port number", { "a 1-255" }, { NULL }, "usb1:255" },
};

static void test_hubs(void **state)
{
	(void)state;
	for (size_t i = 0; i < N(plans); i++) {
		struct holdplan_rule rules[MAX_ITEMS];
		struct holdplan_hub hubs[MAX_ITEMS];
		struct holdplan_want *want = NULL;
		size_t n_rules = 0, n_hubs = 0, n_want = 0;
		char text[512];

		for (; n_rules < MAX_ITEMS && plans[i].rules[n_rules]; n_rules++)
			rules[n_rules] = rule(plans[i].rules[n_rules]);
		for (; n_hubs < MAX_ITEMS && plans[i].hubs[n_hubs]; n_hubs++) {
			const char *h = plans[i].hubs[n_hubs];
			char name[PORT_STRLEN];

			snprintf(name, sizeof(name), "%.*s", (int)strcspn(h, " "), h);
			hubs[n_hubs] = (struct holdplan_hub){ .port = port(name),
							      .maxchild = (unsigned)atoi(strchr(h, ' ') + 1) };
		}
		assert_int_equal(holdplan_hubs(rules, n_rules, hubs, n_hubs, &want, &n_want), 0);
		plan_text(want, n_want, text, sizeof(text));
		if (strcmp(text, plans[i].plan) != 0)
			fail_msg("%s: \"%s\", expected \"%s\"", plans[i].what, text, plans[i].plan);
		free(want);
	}
}

static void test_step(void **state)
{
	static const struct {
		const char *what;
		bool want, held, occupied;
		enum holdplan_step step;
	} cases[] = {
		{ "wanted and empty: held", true, false, false, HOLDPLAN_CLAIM },
		{ "wanted, a device there: held only once empty", true, false, true, HOLDPLAN_KEEP },
		{ "wanted and held", true, true, false, HOLDPLAN_KEEP },
		{ "wanted, held, a device there (passed)", true, true, true, HOLDPLAN_KEEP },
		{ "no longer wanted: let go", false, true, false, HOLDPLAN_RELEASE },
		{ "no longer wanted, a device there: let go", false, true, true, HOLDPLAN_RELEASE },
		{ "neither", false, false, true, HOLDPLAN_KEEP },
	};
	(void)state;
	for (size_t i = 0; i < N(cases); i++)
		if (holdplan_step(cases[i].want, cases[i].held, cases[i].occupied) != cases[i].step)
			fail_msg("%s", cases[i].what);
}

static struct usb_rule port_rule(const char *s, bool deny)
{
	return (struct usb_rule){ .kind = RULE_PORT, .port = port(s), .deny = deny };
}

static void test_takes(void **state)
{
	struct usb_rule ports[] = { port_rule("1-1", false), port_rule("1-1.2", true) };
	struct usb_rule ids[] = { { .kind = RULE_ID, .have_id = true, .vid = 0x46d, .pid = -1 },
				  { .kind = RULE_SERIAL, .serial = "ABC" } };
	struct usb_rule denies[] = { port_rule("1-1", true), { .kind = RULE_ID, .vid = 1 } };
	struct usb_rule mixed[] = { { .kind = RULE_ID, .vid = 1 }, port_rule("2-1", false) };
	static const struct {
		const char *what;
		size_t set, n;
		bool cheap, takes;
	} cases[] = {
		{ "a port rule", 0, 2, true, true },
		{ "a libvirt domain's port rule: not held", 0, 2, false, false },
		{ "id and serial rules only: no port to hold", 1, 2, true, false },
		{ "deny port rules only", 2, 2, true, false },
		{ "an id rule and a port rule", 3, 2, true, true },
		{ "no rules", 0, 0, true, false },
	};
	struct usb_rule *sets[] = { ports, ids, denies, mixed };

	(void)state;
	assert_false(holdplan_takes(NULL, true));
	for (size_t i = 0; i < N(cases); i++) {
		struct vm_rules vr = { .n_rules = cases[i].n, .rules = sets[cases[i].set] };

		if (holdplan_takes(&vr, cases[i].cheap) != cases[i].takes)
			fail_msg("%s", cases[i].what);
	}
}

static void test_add_rules(void **state)
{
	struct usb_rule list[] = { port_rule("1-1", false), { .kind = RULE_ID, .vid = 1 },
				   port_rule("1-1.2", true) };
	struct vm_rules vr = { .n_rules = N(list), .rules = list };
	struct holdplan_rule *rules = NULL;
	size_t n = 0;

	(void)state;
	assert_int_equal(holdplan_add_rules(&vr, 0, "VM 100", &rules, &n), 0);
	assert_int_equal(holdplan_add_rules(&vr, 1, "QEMU guest lab", &rules, &n), 0);
	assert_int_equal(n, 4); /* the port rules, deny ones too */
	assert_false(rules[0].deny);
	assert_true(rules[1].deny);
	assert_true(port_equal(&rules[1].port, &list[2].port));
	assert_int_equal(rules[2].guest, 1);
	assert_string_equal(rules[0].label, "VM 100");
	assert_string_equal(rules[3].label, "QEMU guest lab");
	free(rules);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parent), cmocka_unit_test(test_wanted),
		cmocka_unit_test(test_hubs),   cmocka_unit_test(test_step),
		cmocka_unit_test(test_takes),  cmocka_unit_test(test_add_rules),
	};
	return cmocka_run_group_tests_name("holdplan", tests, NULL, NULL);
}
