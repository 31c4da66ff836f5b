#include "policy/place.h"

size_t place_claims(const struct place_view *g, size_t n)
{
	size_t claims = 0;

	for (size_t i = 0; i < n; i++)
		claims += g[i].running && g[i].score > 0;
	return claims;
}

struct place_decision place_decide(const struct place_view *g, size_t n)
{
	struct place_decision d = { .kind = PLACE_NOBODY };
	size_t claims = place_claims(g, n);
	unsigned best = 0;
	bool tie = false;

	if (claims == 0)
		return d;
	for (size_t i = 0; i < n; i++)
		if (g[i].running && g[i].proxmox_passes)
			return (struct place_decision){ .kind = PLACE_PROXMOX, .who = i };
	for (size_t i = 0; claims > 1 && i < n; i++)
		if (g[i].running && g[i].score > 0 && g[i].holds && !g[i].starting)
			return (struct place_decision){ .kind = PLACE_VM, .who = i, .held = true };
	for (size_t i = 0; i < n; i++) {
		if (!g[i].running || g[i].score == 0)
			continue;
		if (g[i].score > best) {
			best = g[i].score;
			d = (struct place_decision){ .kind = PLACE_VM, .who = i };
			tie = false;
		} else if (g[i].score == best && !tie) {
			d.rival = i;
			tie = true;
		}
	}
	if (tie)
		d.kind = PLACE_CONFLICT;
	return d;
}
