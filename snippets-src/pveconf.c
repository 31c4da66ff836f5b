#include "pveconf.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "util.h"

/* "046d", "0x046d": four hex digits */
static bool parse_hex4(const char *s, size_t len, unsigned *ret)
{
	unsigned v = 0;

	if (len == 6 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		s += 2;
		len -= 2;
	}
	if (len != 4)
		return false;
	for (size_t i = 0; i < 4; i++) {
		char c = s[i];
		unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
			     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
			     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
						    : 16;
		if (d == 16)
			return false;
		v = v * 16 + d;
	}
	*ret = v;
	return true;
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
	if (!host)
		return;
	const char *colon = memchr(host, ':', host_len);

	if (colon && parse_hex4(host, (size_t)(colon - host), &u->vid) &&
	    parse_hex4(colon + 1, host_len - (size_t)(colon - host) - 1, &u->pid))
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

const struct pve_usb *pveconf_passes(const struct pve_vm *vm, const struct usb_device_info *dev)
{
	for (size_t i = 0; i < vm->n; i++) {
		const struct pve_usb *u = &vm->usb[i];

		if (u->kind == PVE_USB_ID && dev->have_ids && u->vid == dev->vid && u->pid == dev->pid)
			return u;
		/* QEMU compares host ports exactly: 3-4 is not 3-4.1 */
		if (u->kind == PVE_USB_PORT && port_equal(&u->port, &dev->port))
			return u;
	}
	return NULL;
}
