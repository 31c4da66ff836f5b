/* sync [NAME]: makes running guests hold what their rules give them now. */
#pragma once

#include "base/settings.h"

/* name: a VMID or a declared guest's name; NULL: every guest. */
int sync_run(const struct settings *s, const char *name);
