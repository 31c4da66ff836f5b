#include "usbconf.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* Next whitespace-separated token in [*p, end); NULL at the end. */
static const char *next_token(const char **p, const char *end, size_t *ret_len)
{
	const char *s = *p, *e;

	while (s < end && is_space(*s))
		s++;
	if (s == end)
		return NULL;
	for (e = s; e < end && !is_space(*e); e++)
		;
	*ret_len = (size_t)(e - s);
	*p = e;
	return s;
}

static void describe(const char *tok, size_t len, char *out, size_t out_size)
{
	char raw[128];

	if (len >= sizeof(raw))
		len = sizeof(raw) - 1;
	memcpy(raw, tok, len);
	raw[len] = '\0';
	log_escape(raw, out, out_size);
}

int usbconf_parse_line(const char *line, size_t len, struct usb_rule *ret,
		       char *err, size_t err_size)
{
	const char *end, *p = line, *tok, *arg;
	size_t tok_len, arg_len, extra_len;
	char shown[160];

	end = memchr(line, '#', len);
	if (!end)
		end = line + len;
	if (memchr(line, '\0', (size_t)(end - line))) {
		snprintf(err, err_size, "the line contains a NUL byte");
		return -EINVAL;
	}

	tok = next_token(&p, end, &tok_len);
	if (!tok)
		return 0;

	if (tok_len == 4 && memcmp(tok, "port", 4) == 0) {
		arg = next_token(&p, end, &arg_len);
		if (!arg) {
			snprintf(err, err_size, "'port' needs a port, e.g. 'port 3-4'");
			return -EINVAL;
		}
	} else {
		arg = tok;
		arg_len = tok_len;
	}

	if (port_parse_n(arg, arg_len, &ret->port) < 0) {
		describe(arg, arg_len, shown, sizeof(shown));
		if (arg == tok)
			snprintf(err, err_size,
				 "'%s' is neither a port nor a known rule (expected BUS-PORT[.PORT...] such as 3-4 or 3-4.1)",
				 shown);
		else
			snprintf(err, err_size,
				 "'%s' is not a USB port (expected BUS-PORT[.PORT...] such as 3-4 or 3-4.1)",
				 shown);
		return -EINVAL;
	}

	if (next_token(&p, end, &extra_len)) {
		snprintf(err, err_size, "unexpected text after the port; one rule a line");
		return -EINVAL;
	}
	return 1;
}

int usbconf_parse_text(const char *text, size_t len, const char *name,
		       unsigned long vmid, struct vm_rules **ret)
{
	struct vm_rules *r;
	size_t cap = 0;
	unsigned lineno = 0;

	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->vmid = vmid;
	r->path = strdup(name);
	if (!r->path) {
		usbconf_free(r);
		return -ENOMEM;
	}

	for (const char *p = text, *end = text + len; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
		struct usb_rule rule;
		char err[256];
		int k;

		lineno++;
		k = usbconf_parse_line(p, l, &rule, err, sizeof(err));
		if (k < 0) {
			log_warning("%s:%u: %s; line ignored", name, lineno, err);
			r->n_errors++;
		} else if (k > 0) {
			if (r->n_rules == cap) {
				size_t ncap = cap ? cap * 2 : 8;
				struct usb_rule *n = realloc(r->rules, ncap * sizeof(*n));
				if (!n) {
					usbconf_free(r);
					return -ENOMEM;
				}
				r->rules = n;
				cap = ncap;
			}
			rule.line = lineno;
			r->rules[r->n_rules++] = rule;
		}
		p += l + 1;
	}
	*ret = r;
	return 0;
}

int usbconf_load(const char *dir, unsigned long vmid, struct vm_rules **ret)
{
	_cleanup_free_ char *buf = NULL;
	char path[4096];
	size_t len;
	int r;

	if (snprintf(path, sizeof(path), "%s/%lu.usb.conf", dir, vmid) >= (int)sizeof(path))
		return log_err(-ENAMETOOLONG, "%s/%lu.usb.conf: path too long", dir, vmid);

	r = util_read_file(path, true, USBCONF_MAX_SIZE, &buf, &len);
	switch (r) {
	case 0:
		return usbconf_parse_text(buf, len, path, vmid, ret);
	case -ENOENT:
		return r;
	case -ELOOP:
		return log_err(r, "%s: is a symbolic link; write the rules into the file itself", path);
	default:
		return log_read_error(r, path, "rules file", USBCONF_MAX_SIZE);
	}
}

int usbconf_parse_vmid(const char *s, unsigned long *ret)
{
	unsigned long v;

	if (util_parse_uint(s, VMID_MAX, &v) < 0 || v < VMID_MIN)
		return -EINVAL;
	*ret = v;
	return 0;
}

static int cmp_vmid(const void *a, const void *b)
{
	const struct vm_rules *x = *(struct vm_rules *const *)a;
	const struct vm_rules *y = *(struct vm_rules *const *)b;

	return (x->vmid > y->vmid) - (x->vmid < y->vmid);
}

int usbconf_load_all(const char *dir, struct vm_rules ***ret, size_t *ret_n)
{
	struct vm_rules **list = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *d;

	d = opendir(dir);
	if (!d)
		return log_err(-errno, "%s: cannot read the VM config directory: %s", dir, strerror(errno));

	while ((de = readdir(d))) {
		const char *suffix = strstr(de->d_name, ".usb.conf");
		struct vm_rules *r;
		unsigned long vmid;
		char id[16];

		if (!suffix || strcmp(suffix, ".usb.conf") != 0)
			continue;
		if ((size_t)(suffix - de->d_name) >= sizeof(id))
			continue;
		memcpy(id, de->d_name, (size_t)(suffix - de->d_name));
		id[suffix - de->d_name] = '\0';
		if (usbconf_parse_vmid(id, &vmid) < 0)
			continue;
		if (usbconf_load(dir, vmid, &r) < 0)
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 8;
			struct vm_rules **nl = realloc(list, ncap * sizeof(*nl));
			if (!nl) {
				usbconf_free(r);
				usbconf_free_all(list, n);
				closedir(d);
				return -ENOMEM;
			}
			list = nl;
			cap = ncap;
		}
		list[n++] = r;
	}
	closedir(d);
	if (n > 1)
		qsort(list, n, sizeof(*list), cmp_vmid);
	*ret = list;
	*ret_n = n;
	return 0;
}

unsigned usbconf_match(const struct vm_rules *r, const struct usb_port *dev)
{
	unsigned best = 0;

	for (size_t i = 0; i < r->n_rules; i++)
		if (port_is_under(dev, &r->rules[i].port) && r->rules[i].port.depth > best)
			best = r->rules[i].port.depth;
	return best;
}

struct vm_rules *usbconf_free(struct vm_rules *r)
{
	if (r) {
		free(r->path);
		free(r->rules);
		free(r);
	}
	return NULL;
}

void usbconf_free_all(struct vm_rules **list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		usbconf_free(list[i]);
	free(list);
}
