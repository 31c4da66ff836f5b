#include "policy.h"

#include <errno.h>

int policy_pick(struct vm_rules *const *vms, size_t n, const struct usb_port *dev,
		policy_running_fn running, void *ud,
		const struct vm_rules **ret_winner, const struct vm_rules **ret_rival)
{
	const struct vm_rules *best = NULL, *rival = NULL;
	unsigned best_score = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned score = usbconf_match(vms[i], dev);

		if (score == 0 || score < best_score)
			continue;
		if (!running(vms[i]->vmid, ud))
			continue;
		if (score > best_score) {
			best = vms[i];
			best_score = score;
			rival = NULL;
		} else if (!rival) {
			rival = vms[i];
		}
	}
	if (!best)
		return 0;
	*ret_winner = best;
	if (rival) {
		*ret_rival = rival;
		return -EBUSY;
	}
	return 1;
}
