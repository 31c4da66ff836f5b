/* status [NAME] [--json]: the host's USB tree and who has what. */
#pragma once

#include <stdbool.h>

#include "base/settings.h"

int status_run(const struct settings *s, const char *name, bool json);
