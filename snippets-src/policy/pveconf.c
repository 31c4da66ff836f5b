#include "policy/pveconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"

/* "046d", "0x046d": four hex digits */
static bool parse_hex4(const char *s, size_t len, unsigned *ret)
{
	unsigned long v;

	if (len == 6 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		s += 2;
		len -= 2;
	}
	if (len != 4 || util_parse_hex_n(s, len, 4, &v) < 0)
		return false;
	*ret = (unsigned)v;
	return true;
}

/* "046d:c52b" */
static bool parse_id(const char *s, size_t len, unsigned *vid, unsigned *pid)
{
	const char *colon = memchr(s, ':', len);

	return colon && parse_hex4(s, (size_t)(colon - s), vid) &&
	       parse_hex4(colon + 1, len - (size_t)(colon - s) - 1, pid);
}

/* The value of a usbN line: "host=046d:c52b,usb3=1", "046d:c52b",
 * "spice", "mapping=name". */
static void parse_value(const char *v, size_t len, struct pve_usb *u)
{
	const char *end = v + len, *host = NULL;
	size_t host_len = 0;

	u->kind = PVE_USB_OTHER;
	for (const char *p = v; p < end;) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *stop = comma ? comma : end;
		const char *eq = memchr(p, '=', (size_t)(stop - p));

		if (!eq && p == v) { /* the default key is host */
			host = p;
			host_len = (size_t)(stop - p);
		} else if (eq && (size_t)(eq - p) == 4 && memcmp(p, "host", 4) == 0) {
			host = eq + 1;
			host_len = (size_t)(stop - eq - 1);
		}
		p = comma ? comma + 1 : end;
	}
	if (len > 8 && memcmp(v, "mapping=", 8) == 0) {
		const char *name = v + 8, *stop = memchr(name, ',', (size_t)(end - name));
		size_t l = stop ? (size_t)(stop - name) : (size_t)(end - name);

		if (l > 0 && l < sizeof(u->mapping)) {
			memcpy(u->mapping, name, l);
			u->mapping[l] = '\0';
			u->kind = PVE_USB_MAPPING;
		}
		return;
	}
	if (!host)
		return;
	if (parse_id(host, host_len, &u->vid, &u->pid))
		u->kind = PVE_USB_ID;
	else if (port_parse_n(host, host_len, &u->port) == 0)
		u->kind = PVE_USB_PORT;
}

void pveconf_parse_text(const char *text, size_t len, struct pve_vm *ret)
{
	const char *end = text + len;

	ret->n = 0;
	for (const char *p = text; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl ? nl : end, *colon, *v;
		unsigned long index;

		if (*p == '[') /* a snapshot or pending section: not the running config */
			break;
		colon = memchr(p, ':', (size_t)(eol - p));
		if (colon && eol - p > 3 && memcmp(p, "usb", 3) == 0 &&
		    util_parse_uint_n(p + 3, (size_t)(colon - p - 3), PVE_USB_MAX - 1, &index) == 0 &&
		    ret->n < PVE_USB_MAX) {
			struct pve_usb *u = &ret->usb[ret->n++];

			memset(u, 0, sizeof(*u));
			u->index = (unsigned)index;
			for (v = colon + 1; v < eol && (*v == ' ' || *v == '\t'); v++)
				;
			size_t vlen = (size_t)(eol - v);

			while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\r' || v[vlen - 1] == '\t'))
				vlen--;
			parse_value(v, vlen, u);
		}
		p = eol + 1;
	}
}

int pveconf_load(const char *dir, unsigned long vmid, struct pve_vm *ret)
{
	_cleanup_free_ char *buf = NULL;
	char path[4096];
	size_t len;
	int r;

	memset(ret, 0, sizeof(*ret));
	ret->vmid = vmid;
	if (snprintf(path, sizeof(path), "%s/%lu.conf", dir, vmid) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	r = util_read_file(path, false, PVECONF_MAX_SIZE, &buf, &len);
	if (r == -ENOENT)
		return r;
	if (r < 0)
		return log_read_error(r, path, "VM config", PVECONF_MAX_SIZE);
	pveconf_parse_text(buf, len, ret);
	return 0;
}

/* "node=pve1,id=046d:c52b,path=1-2": 1 for a map line of node, 0 for
 * another node's, -EINVAL with a reason. */
static int parse_map(const char *p, size_t len, const char *node, struct pve_mapping *m,
		     const char **why)
{
	const char *end = p + len;
	bool have_id = false, ours = false, have_node = false;

	for (const char *c = p; c < end;) {
		const char *comma = memchr(c, ',', (size_t)(end - c));
		const char *stop = comma ? comma : end, *eq = memchr(c, '=', (size_t)(stop - c));
		size_t klen = eq ? (size_t)(eq - c) : 0, vlen = eq ? (size_t)(stop - eq - 1) : 0;

		if (!eq) {
			*why = "expected key=value pairs";
			return -EINVAL;
		}
		if (klen == 4 && memcmp(c, "node", 4) == 0) {
			have_node = true;
			ours = vlen == strlen(node) && memcmp(eq + 1, node, vlen) == 0;
		} else if (klen == 2 && memcmp(c, "id", 2) == 0) {
			if (!parse_id(eq + 1, vlen, &m->vid, &m->pid)) {
				*why = "id must be VENDOR:PRODUCT, four hex digits each";
				return -EINVAL;
			}
			have_id = true;
		} else if (klen == 4 && memcmp(c, "path", 4) == 0) {
			if (port_parse_n(eq + 1, vlen, &m->port) < 0) {
				*why = "path must be a port such as 1-2 or 1-2.3";
				return -EINVAL;
			}
			m->have_port = true;
		}
		c = comma ? comma + 1 : end;
	}
	if (!have_node || !have_id) {
		*why = "a map line needs node= and id=";
		return -EINVAL;
	}
	return ours ? 1 : 0;
}

static bool mapping_name_ok(const char *s, size_t len)
{
	if (len == 0 || len >= PVE_MAPPING_NAME_MAX ||
	    !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_' || s[i] == '.'))
			return false;
	return true;
}

int pveconf_mappings_parse(const char *text, size_t len, const char *name, const char *node,
			   enum log_level line_level, struct pve_mappings *ret)
{
	struct pve_mappings out = { 0 };
	char section[PVE_MAPPING_NAME_MAX] = "", shown[160];
	const char *end = text + len;
	unsigned line = 0;
	size_t cap = 0;

	for (const char *p = text; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl ? nl : end, *c = p;
		size_t l;

		line++;
		while (c < eol && (*c == ' ' || *c == '\t'))
			c++;
		l = (size_t)(eol - c);
		while (l && (c[l - 1] == ' ' || c[l - 1] == '\r' || c[l - 1] == '\t'))
			l--;
		if (l == 0 || *c == '#') {
			p = eol + 1;
			continue;
		}
		if (c == p) { /* a section: the mapping's name */
			if (!mapping_name_ok(c, l)) {
				log_msg(line_level, "%s:%u: '%s' is not a mapping name", name, line,
					log_escape_n(c, l, shown, sizeof(shown)));
				out.n_errors++;
				section[0] = '\0';
			} else {
				memcpy(section, c, l);
				section[l] = '\0';
			}
		} else if (l > 4 && memcmp(c, "map ", 4) == 0 && section[0]) {
			struct pve_mapping m = { 0 };
			const char *why = "";
			int r = parse_map(c + 4, l - 4, node, &m, &why);

			if (r < 0) {
				log_msg(line_level, "%s:%u: mapping '%s': %s", name, line, section, why);
				out.n_errors++;
			} else if (r > 0) {
				if (out.n == cap) {
					size_t ncap = cap ? 2 * cap : 8;
					struct pve_mapping *nm = realloc(out.m, ncap * sizeof(*nm));

					if (!nm) {
						free(out.m);
						return -ENOMEM;
					}
					out.m = nm;
					cap = ncap;
				}
				snprintf(m.name, sizeof(m.name), "%s", section);
				out.m[out.n++] = m;
			}
		}
		p = eol + 1;
	}
	*ret = out;
	return 0;
}

int pveconf_mappings_load(const char *path, const char *node, enum log_level line_level,
			  struct pve_mappings *ret)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	int r;

	memset(ret, 0, sizeof(*ret));
	r = util_read_file(path, false, PVECONF_MAX_SIZE, &buf, &len);
	if (r == -ENOENT)
		return r;
	if (r < 0) {
		log_msg(line_level, "%s: cannot read the USB mappings: %s", path,
			r == -EINVAL ? "not a regular file" : r == -EFBIG ? "too large" : strerror(-r));
		return r;
	}
	return pveconf_mappings_parse(buf, len, path, node, line_level, ret);
}

void pveconf_mappings_free(struct pve_mappings *m)
{
	free(m->m);
	m->m = NULL;
	m->n = 0;
}

void pveconf_resolve(struct pve_vm *vm, const struct pve_mappings *maps)
{
	for (size_t i = 0; i < vm->n; i++) {
		struct pve_usb *u = &vm->usb[i];

		if (u->kind != PVE_USB_MAPPING)
			continue;
		for (size_t k = 0; maps && k < maps->n; k++)
			if (strcmp(maps->m[k].name, u->mapping) == 0) {
				u->resolved = true;
				u->vid = maps->m[k].vid;
				u->pid = maps->m[k].pid;
				u->have_port = maps->m[k].have_port;
				u->port = maps->m[k].port;
				break;
			}
	}
}

void pveconf_node_name(char *buf, size_t n)
{
	if (gethostname(buf, n) < 0)
		buf[0] = '\0';
	buf[n - 1] = '\0';
	buf[strcspn(buf, ".")] = '\0';
}

const struct pve_usb *pveconf_passes(const struct pve_vm *vm, const struct usb_device_info *dev)
{
	for (size_t i = 0; i < vm->n; i++) {
		const struct pve_usb *u = &vm->usb[i];

		/* a mapping with a path is the device at that port; without,
		 * any device of that vendor and product */
		if (u->kind == PVE_USB_MAPPING && u->resolved &&
		    (u->have_port ? port_equal(&u->port, &dev->port)
				  : dev->have_ids && u->vid == dev->vid && u->pid == dev->pid))
			return u;

		if (u->kind == PVE_USB_ID && dev->have_ids && u->vid == dev->vid && u->pid == dev->pid)
			return u;
		/* QEMU compares host ports exactly: 3-4 is not 3-4.1 */
		if (u->kind == PVE_USB_PORT && port_equal(&u->port, &dev->port))
			return u;
	}
	return NULL;
}
