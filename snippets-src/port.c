#include "port.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

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

void port_format_hostport(const struct usb_port *p, char *buf, size_t n)
{
	size_t o = 0;

	if (n == 0)
		return;
	buf[0] = '\0';
	for (unsigned i = 0; i < p->depth && o < n; i++) {
		int w = snprintf(buf + o, n - o, i ? ".%u" : "%u", p->num[i]);
		if (w < 0)
			return;
		o += (size_t)w;
	}
}

void port_format(const struct usb_port *p, char *buf, size_t n)
{
	int w = snprintf(buf, n, "%u-", p->bus);

	if (w > 0 && (size_t)w < n)
		port_format_hostport(p, buf + w, n - (size_t)w);
}
