/* check [NAME]: every problem of the rules files with file and line. */
#pragma once

#include <stdbool.h>

#include "base/settings.h"

/* name: a VMID or a declared guest's name; NULL: every guest. pre_start:
 * a VM without a file is fine. -EINVAL if there was any problem. */
int check_run(const struct settings *s, const char *name, bool pre_start);
