/* Which guest gets a device: the pure decision, one row a situation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "policy/place.h"

#define MAX_GUESTS 4
#define NONE ((size_t)-1)

/* A guest of a row: R running, S starting (its post-start), H holds it, P
 * Proxmox passes it there; the score of its best claim (0: none). */
struct g {
	const char *flags;
	unsigned score;
};

static const struct {
	const char *what;
	struct g guests[MAX_GUESTS];
	size_t n;
	enum place_kind kind;
	size_t who, rival;
	bool held;
} rows[] = {
	{ "nobody claims it", { { "R", 0 }, { "R", 0 } }, 2, PLACE_NOBODY, NONE, NONE, false },
	{ "no guest at all", { { "", 0 } }, 0, PLACE_NOBODY, NONE, NONE, false },
	{ "the one claim of a running guest", { { "R", 0 }, { "R", 3 } }, 2, PLACE_VM, 1, NONE, false },
	{ "a stopped guest's claim counts for nothing", { { "", 9 }, { "R", 2 } }, 2, PLACE_VM, 1, NONE,
	  false },
	{ "only stopped guests claim it", { { "", 9 }, { "H", 9 } }, 2, PLACE_NOBODY, NONE, NONE,
	  false },
	{ "the most specific rule wins", { { "R", 2 }, { "R", 5 }, { "R", 3 } }, 3, PLACE_VM, 1, NONE,
	  false },
	{ "two equal best claims: neither", { { "R", 4 }, { "R", 4 }, { "R", 1 } }, 3, PLACE_CONFLICT,
	  0, 1, false },
	{ "a tie below the best is no conflict", { { "R", 1 }, { "R", 1 }, { "R", 6 } }, 3, PLACE_VM, 2,
	  NONE, false },
	{ "with rivals, the holder keeps it", { { "R", 9 }, { "RH", 1 } }, 2, PLACE_VM, 1, NONE, true },
	{ "the holder keeps it even against a tie", { { "R", 4 }, { "R", 4 }, { "RH", 4 } }, 3,
	  PLACE_VM, 2, NONE, true },
	{ "a starting guest never keeps, it takes by its rule", { { "RSH", 1 }, { "R", 5 } }, 2,
	  PLACE_VM, 1, NONE, false },
	{ "a starting guest with the best rule takes it from a non-holder", { { "RS", 5 }, { "R", 1 } },
	  2, PLACE_VM, 0, NONE, false },
	{ "a held device of a stopped guest is no hold", { { "H", 3 }, { "R", 1 } }, 2, PLACE_VM, 1,
	  NONE, false },
	{ "Proxmox passes it to a running VM: left to Proxmox", { { "R", 9 }, { "RP", 0 } }, 2,
	  PLACE_PROXMOX, 1, NONE, false },
	{ "Proxmox's passthrough beats a holder", { { "RH", 2 }, { "R", 2 }, { "RP", 0 } }, 3,
	  PLACE_PROXMOX, 2, NONE, false },
	{ "a stopped VM's passthrough is nothing", { { "R", 1 }, { "P", 0 } }, 2, PLACE_VM, 0, NONE,
	  false },
	{ "Proxmox's passthrough matters only when a rule claims it", { { "R", 0 }, { "RP", 0 } }, 2,
	  PLACE_NOBODY, NONE, NONE, false },
};

static void test_table(void **state)
{
	(void)state;
	for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
		struct place_view v[MAX_GUESTS];
		struct place_decision d;

		memset(v, 0, sizeof(v));
		for (size_t i = 0; i < rows[r].n; i++) {
			const char *f = rows[r].guests[i].flags;

			v[i].score = rows[r].guests[i].score;
			v[i].running = strchr(f, 'R') != NULL;
			v[i].starting = strchr(f, 'S') != NULL;
			v[i].holds = strchr(f, 'H') != NULL;
			v[i].proxmox_passes = strchr(f, 'P') != NULL;
		}
		d = place_decide(v, rows[r].n);
		if (d.kind != rows[r].kind || (rows[r].who != NONE && d.who != rows[r].who) ||
		    (rows[r].rival != NONE && d.rival != rows[r].rival) || d.held != rows[r].held)
			fail_msg("%s: got kind %d, guest %zu, rival %zu, held %d", rows[r].what,
				 (int)d.kind, d.who, d.rival, (int)d.held);
	}
}

static void test_claims(void **state)
{
	struct place_view v[3] = { { .score = 2, .running = true },
				   { .score = 3 },
				   { .score = 1, .running = true } };

	(void)state;
	assert_int_equal(place_claims(v, 3), 2);
	assert_int_equal(place_claims(v, 0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_claims),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
