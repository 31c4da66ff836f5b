/* libFuzzer: a udev event's environment as any bytes: NUL- or
 * newline-separated KEY=VALUE pairs. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "host/disk.h"
#include "host/port.h"
#include "host/uevent.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct env {
	char *keys[32], *values[32];
	size_t n;
};

static const char *lookup(const char *key, void *ud)
{
	struct env *e = ud;

	for (size_t i = 0; i < e->n; i++)
		if (strcmp(e->keys[i], key) == 0)
			return e->values[i];
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), *save = NULL, *line;
	struct env e = { .n = 0 };
	struct uevent ev;
	const char *reason;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	/* a NUL in the data ends the text, as it would end an env string */
	for (line = strtok_r(text, "\n", &save); line && e.n < 32; line = strtok_r(NULL, "\n", &save)) {
		char *eq = strchr(line, '=');

		if (!eq)
			continue;
		*eq = '\0';
		e.keys[e.n] = line;
		e.values[e.n++] = eq + 1;
	}
	if (uevent_parse(lookup, &e, &ev, &reason) == 1) {
		char ctrl[PORT_CONTROLLER_MAX], port[PORT_STRLEN];

		(void)port_controller(ev.devpath, ctrl, sizeof(ctrl));
		port_format(&ev.port, port, sizeof(port));
		if (strlen(ev.devpath) >= UEVENT_DEVPATH_MAX)
			abort();
	}
	/* the same environment as a disk's event */
	enum uevent_action action;
	struct usb_disk d;
	char id[DISK_ID_MAX], desc[256];

	if (disk_from_event(lookup, &e, &action, &d, &reason) == 1) {
		if (strchr(d.link, '/') || strlen(d.devpath) >= UEVENT_DEVPATH_MAX)
			abort();
		disk_qemu_id(disk_key(&d), id, sizeof(id));
		disk_describe(&d, desc, sizeof(desc));
		if (strlen(id) != strlen(DISK_ID_PREFIX) + 16)
			abort();
	}
	free(text);
	return 0;
}
