#include "host/port.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/util.h"

int port_parse_n(const char *s, size_t len, struct usb_port *ret)
{
	struct usb_port p = { 0 };
	const char *end = s + len, *dash, *c;
	unsigned long v;

	dash = memchr(s, '-', len);
	if (!dash || util_parse_uint_n(s, (size_t)(dash - s), PORT_MAX_BUS, &v) < 0 || v == 0)
		return -EINVAL;
	p.bus = (unsigned)v;

	for (c = dash + 1;; ) {
		const char *dot = memchr(c, '.', (size_t)(end - c));
		const char *stop = dot ? dot : end;

		if (p.depth == PORT_MAX_DEPTH)
			return -EINVAL;
		if (util_parse_uint_n(c, (size_t)(stop - c), PORT_MAX_NUMBER, &v) < 0 || v == 0)
			return -EINVAL;
		p.num[p.depth++] = (unsigned char)v;
		if (!dot)
			break;
		c = dot + 1;
	}
	*ret = p;
	return 0;
}

int port_parse_hostport_n(const char *s, size_t len, struct usb_port *ret)
{
	char buf[PORT_STRLEN + 2];

	if (len + 3 > sizeof(buf))
		return -EINVAL;
	buf[0] = '1';
	buf[1] = '-';
	memcpy(buf + 2, s, len);
	if (port_parse_n(buf, len + 2, ret) < 0)
		return -EINVAL;
	ret->bus = 0;
	return 0;
}

int port_parse(const char *s, struct usb_port *ret)
{
	return port_parse_n(s, strlen(s), ret);
}

bool port_is_under(const struct usb_port *dev, const struct usb_port *prefix)
{
	if (dev->bus != prefix->bus || dev->depth < prefix->depth)
		return false;
	return memcmp(dev->num, prefix->num, prefix->depth) == 0;
}

bool port_equal(const struct usb_port *a, const struct usb_port *b)
{
	return a->depth == b->depth && port_is_under(a, b);
}

int port_compare(const void *a, const void *b)
{
	const struct usb_port *x = a, *y = b;

	if (x->bus != y->bus)
		return x->bus < y->bus ? -1 : 1;
	for (unsigned i = 0; i < x->depth && i < y->depth; i++)
		if (x->num[i] != y->num[i])
			return x->num[i] < y->num[i] ? -1 : 1;
	return (x->depth > y->depth) - (x->depth < y->depth);
}

/* Appends c, or v in decimal, at *o of buf (n bytes), cut as snprintf()
 * would cut, buf always terminated: ports are formatted on every event,
 * many times, and snprintf() costs ten times more. */
static void put_char(char *buf, size_t n, size_t *o, char c)
{
	if (*o + 1 < n)
		buf[(*o)++] = c;
	buf[*o] = '\0';
}

static void put_uint(char *buf, size_t n, size_t *o, unsigned v)
{
	char digits[12];
	size_t k = 0;

	do
		digits[k++] = (char)('0' + v % 10);
	while ((v /= 10));
	while (k)
		put_char(buf, n, o, digits[--k]);
}

void port_format_hostport(const struct usb_port *p, char *buf, size_t n)
{
	size_t o = 0;

	if (n == 0)
		return;
	buf[0] = '\0';
	for (unsigned i = 0; i < p->depth; i++) {
		if (i)
			put_char(buf, n, &o, '.');
		put_uint(buf, n, &o, p->num[i]);
	}
}

void port_format(const struct usb_port *p, char *buf, size_t n)
{
	size_t o = 0;

	if (n == 0)
		return;
	put_uint(buf, n, &o, p->bus);
	put_char(buf, n, &o, '-');
	port_format_hostport(p, buf + o, n - o);
}

/* "0000:00:14.0": a PCI function's sysfs name */
static bool is_pci_name(const char *s, size_t len)
{
	static const char shape[] = "xxxx:xx:xx.x";

	if (len != sizeof(shape) - 1)
		return false;
	for (size_t i = 0; i < len; i++) {
		bool hex = (s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f');

		if (shape[i] == 'x' ? !hex : s[i] != shape[i])
			return false;
	}
	return true;
}

int port_controller(const char *devpath, char *buf, size_t n)
{
	const char *c, *prev = NULL, *ctrl = NULL;
	size_t ctrl_len = 0;

	/* the component before the root hub "usbN" names the controller (and
	 * is not "/devices" itself) */
	if (!util_startswith(devpath, "/devices/"))
		return -EINVAL;
	for (c = devpath + 8; (c = strchr(c, '/')); c++) {
		const char *next = strchr(c + 1, '/');
		size_t len = next ? (size_t)(next - c - 1) : strlen(c + 1);
		unsigned long v;

		if (prev && len > 3 && memcmp(c + 1, "usb", 3) == 0 &&
		    util_parse_uint_n(c + 4, len - 3, PORT_MAX_BUS, &v) == 0) {
			ctrl = prev + 1;
			ctrl_len = (size_t)(c - prev - 1);
		}
		prev = c;
	}
	if (!ctrl || ctrl_len == 0)
		return -EINVAL;
	if (snprintf(buf, n, "%s-%.*s", is_pci_name(ctrl, ctrl_len) ? "pci" : "platform",
		     (int)ctrl_len, ctrl) >= (int)n)
		return -EINVAL;
	return 0;
}

void port_format_path(const char *controller, const struct usb_port *p, char *buf, size_t n)
{
	char hostport[PORT_STRLEN];

	port_format_hostport(p, hostport, sizeof(hostport));
	snprintf(buf, n, "%s-usb-0:%s", controller, hostport);
}
