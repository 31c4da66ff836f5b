#include "guests/vdisk.h"

#include <stdio.h>
#include <string.h>

#include "base/log.h"

struct vdisk *vdisk_add(struct vdisk_set *set, const char *id)
{
	struct vdisk *e = NULL;

	for (size_t i = 0; i < set->n && !e; i++)
		if (strcmp(set->d[i].id, id) == 0)
			e = &set->d[i];
	if (e || set->n == VDISK_MAX || strlen(id) >= sizeof(e->id))
		return e;
	e = &set->d[set->n++];
	memset(e, 0, sizeof(*e));
	memcpy(e->id, id, strlen(id) + 1);
	return e;
}

const struct vdisk *vdisk_find(const struct vdisk_set *set, const char *id)
{
	for (size_t i = 0; i < set->n; i++)
		if (strcmp(set->d[i].id, id) == 0)
			return &set->d[i];
	return NULL;
}

void vdisk_describe(const struct vdisk *e, char *buf, size_t n)
{
	const char *slash = strrchr(e->file, '/');
	char name[DISK_LINK_MAX * 4];

	log_escape(slash ? slash + 1 : e->id, name, sizeof(name));
	snprintf(buf, n, "disk %s", name);
}

const char *vdisk_serial(const struct usb_disk *d)
{
	const char *s = d->serial_short;
	size_t len = strlen(s);

	if (len == 0 || len > 20)
		return NULL;
	for (const char *c = s; *c; c++)
		if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
		      *c == '-' || *c == '_' || *c == '.'))
			return NULL;
	return s;
}
