/* check [NAME]: every problem of the rules files with file and line. */
#pragma once

#include <stdbool.h>

#include "base/settings.h"

/* name: a VMID or a declared guest's name; NULL: every guest. pre_start:
 * a VM without a file is fine. -EINVAL if there was any problem. */
int check_run(const struct settings *s, const char *name, bool pre_start);

/* The command 'check [NAME]': says whether the settings file s->path
 * loaded (settings_r: what settings_load returned), then checks the rules
 * as check_run. 0, or -EINVAL if either had a problem. */
int check_command(const struct settings *s, int settings_r, const char *name);
