/* release NAME: everything the tool added to the guest goes (devices, its
 * own controllers), and USB events leave it alone until sync NAME or its
 * next start: for a migration, a snapshot with RAM, hibernation. */
#pragma once

#include "base/settings.h"

int release_run(const struct settings *s, const char *name);
