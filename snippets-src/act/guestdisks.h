/* USB disks in one open guest: what post-start, sync and release do with
 * disks, and the steps a disk's own event shares with them. */
#pragma once

#include <stdbool.h>

#include "base/settings.h"
#include "guests/guest.h"
#include "guests/vdisk.h"
#include "host/disk.h"
#include "policy/vms.h"

/* Attach what mine's disk rules give it (post-start), also detach what it
 * should not have (sync), detach every disk of the tool's (release); on g,
 * the guest's open connection. */
int guestdisks_attach(struct vms *v, struct vm *mine, struct guest *g);
int guestdisks_sync(struct vms *v, struct vm *vm, struct guest *g);
int guestdisks_release(struct guest *g);

/* Whether vm's disks are worth a look: it has disk rules, or the tool has
 * put disks into it. */
bool guestdisks_concern(const struct settings *s, const struct vm *vm);

/* Whether the tool has put a disk into vm (<key>.disks in the state
 * directory). */
bool guestdisks_had_disks(const struct settings *s, const struct vm *vm);

/* Checks d (its by-id node is the disk, it has a medium, the host does not
 * use it) and attaches it to g as rule says. Nothing to attach (no medium)
 * is 0; failures are logged. */
int guestdisks_attach_one(struct guest *g, const struct settings *s, const struct target *t,
			  const struct usb_disk *d, const struct usb_rule *rule);

/* The tool's disks in g (malloc()ed), or NULL with the error (logged) in
 * *ret. */
struct vdisk_set *guestdisks_fetch(struct guest *g, int *ret);

/* Whether QEMU's node no longer opens a block device (its by-id link goes
 * with the disk). */
bool guestdisks_file_gone(const struct vdisk *e);
