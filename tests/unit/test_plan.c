/* Plan, then act: what an add, a remove, post-start and sync change, decided
 * from a snapshot; and the look again before an attach. One row a situation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "policy/place.h"
#include "policy/plan.h"

#define MAX_GUESTS 4
#define NONE ((size_t)-1)

static struct vm guests[MAX_GUESTS];

static void setup_guests(void)
{
	memset(guests, 0, sizeof(guests));
	for (size_t i = 0; i < MAX_GUESTS; i++) {
		guests[i].t.kind = TARGET_PVE;
		guests[i].t.vmid = 100 + i;
		snprintf(guests[i].t.label, sizeof(guests[i].t.label), "VM %zu", 100 + i);
	}
}

/* The placement vms_place() makes of decision d. */
static struct placement placed(const struct place_decision *d)
{
	struct placement p = { .kind = d->kind, .held = d->held };

	if (d->kind != PLACE_NOBODY)
		p.vm = &guests[d->who];
	if (d->kind == PLACE_CONFLICT)
		p.rival = &guests[d->rival];
	return p;
}

/* An add, from the snapshot to the plan: a guest's flags R running, S
 * starting, H holds the port now, P Proxmox passes it there; its best
 * claim's score. lose: the guests that lose the port, "" for none, e.g.
 * "02"; to: the guest that gets it (NONE: none). */
static const struct {
	const char *what;
	const char *flags[MAX_GUESTS];
	unsigned score[MAX_GUESTS];
	size_t n;
	size_t to;
	const char *lose;
	enum plan_why why; /* of the guests that lose it */
} adds[] = {
	{ "nobody claims it, nobody holds it", { "R", "R" }, { 0, 0 }, 2, NONE, "", PLAN_KEEP },
	{ "nobody claims it: its holder lets it go", { "R", "RH" }, { 0, 0 }, 2, NONE, "1",
	  PLAN_NO_RULE_NOW },
	{ "the one claim: attached, nobody loses it", { "R", "R" }, { 0, 3 }, 2, 1, "", PLAN_KEEP },
	{ "it goes to the claim: the old holder without a claim loses it", { "RH", "R" }, { 0, 3 }, 2, 1,
	  "0", PLAN_MOVES },
	{ "the claiming holder keeps it: nobody loses it", { "R", "RH" }, { 5, 1 }, 2, 1, "",
	  PLAN_KEEP },
	{ "the most specific rule wins; a stopped guest's hold is no hold", { "H", "R", "R" },
	  { 9, 2, 4 }, 3, 2, "", PLAN_KEEP },
	{ "two equal claims: neither, and a third holder lets it go", { "R", "R", "RH" }, { 4, 4, 0 },
	  3, NONE, "2", PLAN_NO_RULE_NOW },
	{ "Proxmox passes it: every holder lets it go", { "RH", "RP" }, { 2, 0 }, 2, NONE, "0",
	  PLAN_OWNER },
};

static void test_add(void **state)
{
	(void)state;
	for (size_t r = 0; r < sizeof(adds) / sizeof(adds[0]); r++) {
		struct place_view v[MAX_GUESTS];
		struct place_decision d;
		struct placement p;
		char lose[MAX_GUESTS + 1] = "";

		setup_guests();
		memset(v, 0, sizeof(v));
		for (size_t i = 0; i < adds[r].n; i++) {
			v[i].score = adds[r].score[i];
			v[i].running = strchr(adds[r].flags[i], 'R') != NULL;
			v[i].starting = strchr(adds[r].flags[i], 'S') != NULL;
			v[i].proxmox_passes = strchr(adds[r].flags[i], 'P') != NULL;
		}
		/* as vms_place() gathers it: a hold only with rivals */
		for (size_t i = 0; i < adds[r].n; i++)
			v[i].holds = strchr(adds[r].flags[i], 'H') != NULL &&
				     place_claims(v, adds[r].n) > 1;
		d = place_decide(v, adds[r].n);
		p = placed(&d);
		for (size_t i = 0; i < adds[r].n; i++) {
			bool holds = v[i].running && strchr(adds[r].flags[i], 'H') != NULL;
			enum plan_why why = holds ? plan_add_holder(&p, &guests[i]) : PLAN_KEEP;

			if (why == PLAN_KEEP)
				continue;
			if (why != adds[r].why)
				fail_msg("%s: guest %zu loses it for %d, not %d", adds[r].what, i, (int)why,
					 (int)adds[r].why);
			lose[strlen(lose)] = (char)('0' + i);
		}
		if (strcmp(lose, adds[r].lose) != 0)
			fail_msg("%s: '%s' lose it, not '%s'", adds[r].what, lose, adds[r].lose);
		for (size_t i = 0; i < adds[r].n; i++)
			if (plan_takes(&p, &guests[i]) != (i == adds[r].to))
				fail_msg("%s: guest %zu %s it", adds[r].what, i,
					 plan_takes(&p, &guests[i]) ? "takes" : "does not take");
	}
}

static void test_add_holder_reasons(void **state)
{
	struct placement p = { .kind = PLACE_DISK };

	(void)state;
	setup_guests();
	p.vm = &guests[0];
	assert_int_equal(plan_add_holder(&p, &guests[1]), PLAN_DISK);
	p.kind = PLACE_VM;
	assert_int_equal(plan_add_holder(&p, &guests[0]), PLAN_KEEP);
	assert_int_equal(plan_add_holder(&p, &guests[1]), PLAN_MOVES);
	p = (struct placement){ .kind = PLACE_NOBODY };
	assert_int_equal(plan_add_holder(&p, &guests[1]), PLAN_NO_RULE_NOW);
}

/* Post-start: what the starting guest (0) takes, one device a row. */
static const struct {
	const char *what;
	const char *flags[MAX_GUESTS];
	unsigned score[MAX_GUESTS];
	size_t n;
	bool takes;
} starts[] = {
	{ "its claim alone", { "RS", "R" }, { 2, 0 }, 2, true },
	{ "another guest holds it and claims it too: it stays there", { "RS", "RH" }, { 9, 1 }, 2,
	  false },
	{ "another claims it more specifically", { "RS", "R" }, { 1, 4 }, 2, false },
	{ "its rule is more specific than a guest that does not hold it", { "RS", "R" }, { 4, 1 }, 2,
	  true },
	{ "an equal claim: neither", { "RS", "R" }, { 3, 3 }, 2, false },
	{ "Proxmox passes it to another VM", { "RS", "RP" }, { 3, 0 }, 2, false },
};

static void test_post_start(void **state)
{
	(void)state;
	for (size_t r = 0; r < sizeof(starts) / sizeof(starts[0]); r++) {
		struct place_view v[MAX_GUESTS];
		struct place_decision d;
		struct placement p;

		setup_guests();
		memset(v, 0, sizeof(v));
		for (size_t i = 0; i < starts[r].n; i++) {
			v[i].score = starts[r].score[i];
			v[i].running = strchr(starts[r].flags[i], 'R') != NULL;
			v[i].starting = strchr(starts[r].flags[i], 'S') != NULL;
			v[i].holds = strchr(starts[r].flags[i], 'H') != NULL;
			v[i].proxmox_passes = strchr(starts[r].flags[i], 'P') != NULL;
		}
		d = place_decide(v, starts[r].n);
		p = placed(&d);
		if (plan_takes(&p, &guests[0]) != starts[r].takes)
			fail_msg("%s: it %s it", starts[r].what, starts[r].takes ? "does not take" : "takes");
	}
}

static void test_remove(void **state)
{
	(void)state;
	/* running, claims, holds */
	assert_false(plan_remove_detaches(false, true, true));
	assert_false(plan_remove_detaches(true, false, false));
	assert_true(plan_remove_detaches(true, true, false));
	assert_true(plan_remove_detaches(true, false, true));
	assert_true(plan_remove_detaches(true, true, true));
}

static struct usb_device_info device(const char *port, unsigned devnum, unsigned vid, unsigned pid)
{
	struct usb_device_info d;

	memset(&d, 0, sizeof(d));
	assert_int_equal(port_parse(port, &d.port), 0);
	d.devnum = devnum;
	d.have_ids = vid || pid;
	d.vid = vid;
	d.pid = pid;
	return d;
}

/* Sync: why a guest (0) gives up a port it holds. */
static void test_sync_holder(void **state)
{
	struct usb_device_info dev = device("3-4", 5, 0x1234, 0x5678);
	struct usb_device_info hub = device("3-4", 5, 0x05e3, 0x0610);
	struct placement p = { .kind = PLACE_VM };
	static const struct {
		enum place_kind kind;
		size_t to;
		enum plan_why why;
	} rows[] = {
		{ PLACE_VM, 0, PLAN_KEEP },	   { PLACE_VM, 1, PLAN_STAYS },
		{ PLACE_NOBODY, NONE, PLAN_NO_RULE }, { PLACE_PROXMOX, 1, PLAN_OWNER },
		{ PLACE_DISK, 1, PLAN_DISK },	   { PLACE_CONFLICT, 0, PLAN_KEEP },
	};

	(void)state;
	setup_guests();
	hub.dev_class = USB_CLASS_HUB;
	assert_int_equal(plan_sync_holder(&guests[0], NULL, false, NULL), PLAN_GONE);
	assert_int_equal(plan_sync_holder(&guests[0], &hub, false, NULL), PLAN_HUB);
	assert_int_equal(plan_sync_holder(&guests[0], &dev, false, NULL), PLAN_UNCLAIMED);
	for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
		p.kind = rows[r].kind;
		p.vm = rows[r].to == NONE ? NULL : &guests[rows[r].to];
		if (plan_sync_holder(&guests[0], &dev, true, &p) != rows[r].why)
			fail_msg("row %zu: %d", r, (int)plan_sync_holder(&guests[0], &dev, true, &p));
	}
}

static void test_sync_attaches(void **state)
{
	struct usb_device_info dev = device("3-4", 5, 0x1234, 0x5678);
	struct usb_device_info unknown = device("3-4", 5, 0, 0);
	struct xhci_dev same = { .vid = 0x1234, .pid = 0x5678 };
	struct xhci_dev other = { .vid = 0x1234, .pid = 0x9999 };

	(void)state;
	assert_true(plan_sync_attaches(&dev, NULL));
	assert_false(plan_sync_attaches(&dev, &same));
	assert_true(plan_sync_attaches(&dev, &other));
	assert_false(plan_sync_attaches(&unknown, &other));
}

/* The look again right before an attach: a remove (and a plug) between the
 * plan and the act. */
static void test_same_device(void **state)
{
	struct usb_device_info planned = device("3-4.1", 7, 0x1234, 0x5678);
	static const struct {
		const char *what;
		const char *port; /* NULL: gone */
		unsigned devnum, vid, pid;
		bool same;
	} rows[] = {
		{ "still there", "3-4.1", 7, 0x1234, 0x5678, true },
		{ "removed before the lock was ours", NULL, 0, 0, 0, false },
		{ "removed and plugged in again: a new device number", "3-4.1", 8, 0x1234, 0x5678,
		  false },
		{ "another device there now", "3-4.1", 9, 0x046d, 0xc52b, false },
		{ "the same number, another model", "3-4.1", 7, 0x046d, 0xc52b, false },
		{ "the same number, ids unreadable now", "3-4.1", 7, 0, 0, true },
		{ "another port", "3-4.2", 7, 0x1234, 0x5678, false },
		{ "another bus", "4-4.1", 7, 0x1234, 0x5678, false },
	};

	(void)state;
	for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
		struct usb_device_info now;

		if (rows[r].port)
			now = device(rows[r].port, rows[r].devnum, rows[r].vid, rows[r].pid);
		if (plan_same_device(&planned, rows[r].port ? &now : NULL) != rows[r].same)
			fail_msg("%s: %s", rows[r].what, rows[r].same ? "not the same" : "the same");
	}
}

/* The look again before a detach: sync planned from what was at the port. */
static void test_port_unchanged(void **state)
{
	struct usb_device_info seen = device("3-4", 5, 0x1234, 0x5678);
	struct usb_device_info replugged = device("3-4", 6, 0x1234, 0x5678);

	(void)state;
	assert_true(plan_port_unchanged(NULL, NULL));		/* empty, and still empty */
	assert_false(plan_port_unchanged(NULL, &seen));	/* a device plugged in since */
	assert_false(plan_port_unchanged(&seen, NULL));	/* unplugged since */
	assert_false(plan_port_unchanged(&seen, &replugged)); /* unplugged and plugged in again */
	assert_true(plan_port_unchanged(&seen, &seen));
}

/* The decision from a gathered snapshot, mapped onto the guests. */
static void test_decide(void **state)
{
	struct vm *list[3] = { &guests[0], &guests[1], &guests[2] };
	struct vms v = { .list = list, .n = 3 };
	struct place_view views[3] = { { .score = 2, .running = true },
				       { .score = 5, .running = true },
				       { .running = true } };
	struct usb_rule port_rule = { .line = 1, .kind = RULE_PORT };
	struct usb_rule disk_rule = { .line = 2, .kind = RULE_DISK };
	const struct usb_rule *rules[3] = { &port_rule, &port_rule, NULL };
	const struct pve_usb usb0 = { .index = 0 };
	const struct pve_usb *pves[3] = { NULL, NULL, NULL };
	struct vms_snapshot snap = { .n = 3, .views = views, .rules = rules, .pves = pves };
	struct placement p;

	(void)state;
	setup_guests();
	vms_decide(&v, &snap, &p);
	assert_int_equal(p.kind, PLACE_VM);
	assert_ptr_equal(p.vm, &guests[1]);
	assert_int_equal(p.score, 5);
	assert_ptr_equal(p.rule, &port_rule);

	/* the winning claim is a disk rule: the disk goes, the device not */
	rules[1] = &disk_rule;
	vms_decide(&v, &snap, &p);
	assert_int_equal(p.kind, PLACE_DISK);
	assert_ptr_equal(p.vm, &guests[1]);

	/* Proxmox passes it to the third: left to Proxmox, with its usbN */
	views[2].proxmox_passes = true;
	pves[2] = &usb0;
	vms_decide(&v, &snap, &p);
	assert_int_equal(p.kind, PLACE_PROXMOX);
	assert_ptr_equal(p.vm, &guests[2]);
	assert_ptr_equal(p.pve, &usb0);

	/* an equal claim: a conflict naming both */
	views[2].proxmox_passes = false;
	views[0].score = 5;
	rules[1] = &port_rule;
	vms_decide(&v, &snap, &p);
	assert_int_equal(p.kind, PLACE_CONFLICT);
	assert_ptr_equal(p.vm, &guests[0]);
	assert_ptr_equal(p.rival, &guests[1]);

	/* nothing gathered (a hub, or no running claim) */
	snap = (struct vms_snapshot){ 0 };
	vms_decide(&v, &snap, &p);
	assert_int_equal(p.kind, PLACE_NOBODY);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_add),	    cmocka_unit_test(test_add_holder_reasons),
		cmocka_unit_test(test_post_start),  cmocka_unit_test(test_remove),
		cmocka_unit_test(test_sync_holder), cmocka_unit_test(test_sync_attaches),
		cmocka_unit_test(test_same_device), cmocka_unit_test(test_decide),
		cmocka_unit_test(test_port_unchanged),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
