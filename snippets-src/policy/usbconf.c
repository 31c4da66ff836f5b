#include "policy/usbconf.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* A line cut into words: bare words end at a blank or '#'; a word in
 * double quotes may hold any printable byte, with \\, \" and \xHH escapes. */
struct lexer {
	const char *p, *end;
	char *err;
	size_t err_size;
};

struct word {
	char text[USB_STRING_MAX];
	size_t len;
	bool quoted;
};

static void shown(const char *s, size_t len, char *out, size_t out_size)
{
	char raw[128];

	if (len >= sizeof(raw))
		len = sizeof(raw) - 1;
	memcpy(raw, s, len);
	raw[len] = '\0';
	log_escape(raw, out, out_size);
}

/* A raw control byte (a tab is a space) is no part of a rule: a serial
 * that has one is written as \xHH inside double quotes. */
static bool control_byte(struct lexer *lx, char c)
{
	if ((unsigned char)c >= 0x20 && (unsigned char)c != 0x7f)
		return false;
	snprintf(lx->err, lx->err_size,
		 "a control byte (0x%02x) in the line; write such a byte as \\xHH inside double quotes",
		 (unsigned char)c);
	return true;
}

/* 1 with *w filled, 0 at the end of the line (or a comment), -EINVAL. */
static int next_word(struct lexer *lx, struct word *w)
{
	const char *p = lx->p;

	while (p < lx->end && is_space(*p))
		p++;
	if (p == lx->end || *p == '#') {
		lx->p = lx->end;
		return 0;
	}
	w->len = 0;
	w->quoted = *p == '"';
	if (!w->quoted) {
		const char *s = p;

		while (p < lx->end && !is_space(*p) && *p != '#' && *p != '"') {
			if (control_byte(lx, *p))
				return -EINVAL;
			p++;
		}
		if (p < lx->end && *p == '"') {
			snprintf(lx->err, lx->err_size, "a quote inside a word; put the whole value in quotes");
			return -EINVAL;
		}
		if ((size_t)(p - s) >= sizeof(w->text)) {
			snprintf(lx->err, lx->err_size, "a word longer than %zu bytes", sizeof(w->text) - 1);
			return -EINVAL;
		}
		w->len = (size_t)(p - s);
		memcpy(w->text, s, w->len);
		w->text[w->len] = '\0';
		lx->p = p;
		return 1;
	}
	for (p++;; p++) {
		unsigned long byte;
		char c;

		if (p == lx->end) {
			snprintf(lx->err, lx->err_size, "a quoted value is not closed (missing \")");
			return -EINVAL;
		}
		c = *p;
		if (c == '"')
			break;
		if (control_byte(lx, c))
			return -EINVAL;
		if (c == '\\') {
			if (p + 1 < lx->end && (p[1] == '\\' || p[1] == '"')) {
				c = *++p;
			} else if (p + 3 < lx->end && p[1] == 'x' &&
				   util_parse_hex_n(p + 2, 2, 2, &byte) == 0) {
				c = (char)byte;
				p += 3;
			} else {
				snprintf(lx->err, lx->err_size,
					 "unknown escape in quotes (use \\\\, \\\" or \\xHH)");
				return -EINVAL;
			}
			if (c == '\0') {
				snprintf(lx->err, lx->err_size, "\\x00 cannot be part of a value");
				return -EINVAL;
			}
		}
		if (w->len + 1 >= sizeof(w->text)) {
			snprintf(lx->err, lx->err_size, "a value longer than %zu bytes", sizeof(w->text) - 1);
			return -EINVAL;
		}
		w->text[w->len++] = c;
	}
	w->text[w->len] = '\0';
	p++;
	if (p < lx->end && !is_space(*p) && *p != '#') {
		snprintf(lx->err, lx->err_size, "text right after a closing quote; leave a space");
		return -EINVAL;
	}
	lx->p = p;
	return 1;
}

static bool word_is(const struct word *w, const char *s)
{
	return !w->quoted && strcmp(w->text, s) == 0;
}

/* "046d:c52b", "046d:*": four hex digits each, as lsusb shows them. */
static int parse_id(const struct word *w, struct usb_rule *rule, char *err, size_t err_size)
{
	const char *t = w->text;
	unsigned long vid, pid = 0;
	bool any = w->len == 6 && t[5] == '*';
	char s[160];

	if ((w->len != 9 && !any) || t[4] != ':' || util_parse_hex_n(t, 4, 4, &vid) < 0 ||
	    (!any && util_parse_hex_n(t + 5, 4, 4, &pid) < 0)) {
		shown(t, w->len, s, sizeof(s));
		snprintf(err, err_size,
			 "'%s' is not a vendor:product id (expected four hex digits each, such as 046d:c52b, or 046d:* for any product of a vendor)",
			 s);
		return -EINVAL;
	}
	rule->have_id = true;
	rule->vid = (unsigned)vid;
	rule->pid = any ? -1 : (int)pid;
	return 0;
}

/* "pci-0000:00:14.0-usb-0:4.1" */
static int parse_path(const struct word *w, struct usb_rule *rule, char *err, size_t err_size)
{
	static const char sep[] = "-usb-0:";
	const char *t = w->text, *at = NULL;
	size_t ctrl_len;
	char s[160];

	for (const char *c = t; (c = strstr(c, sep)); c++)
		at = c;
	if (!at || (!util_startswith(t, "pci-") && !util_startswith(t, "platform-")))
		goto bad;
	ctrl_len = (size_t)(at - t);
	if (ctrl_len >= sizeof(rule->controller) || ctrl_len <= 4)
		goto bad;
	for (size_t i = 0; i < ctrl_len; i++)
		if (t[i] <= ' ' || t[i] >= 0x7f || t[i] == '/')
			goto bad;
	if (port_parse_hostport_n(at + sizeof(sep) - 1, strlen(at + sizeof(sep) - 1), &rule->port) < 0)
		goto bad;
	memcpy(rule->controller, t, ctrl_len);
	rule->controller[ctrl_len] = '\0';
	return 0;
bad:
	shown(t, w->len, s, sizeof(s));
	snprintf(err, err_size,
		 "'%s' is not a USB port path (expected udev's ID_PATH such as pci-0000:00:14.0-usb-0:4; 'pve-usb-hotplug identify' prints it)",
		 s);
	return -EINVAL;
}

static int parse_port_word(const struct word *w, bool bare, struct usb_rule *rule, char *err,
			   size_t err_size)
{
	char s[160];

	if (!w->quoted && port_parse_n(w->text, w->len, &rule->port) == 0)
		return 0;
	shown(w->text, w->len, s, sizeof(s));
	if (bare)
		snprintf(err, err_size,
			 "'%s' is neither a port nor a known rule (expected a port such as 3-4 or 3-4.1, or port, path, id, serial, disk, deny)",
			 s);
	else
		snprintf(err, err_size,
			 "'%s' is not a USB port (expected BUS-PORT[.PORT...] such as 3-4 or 3-4.1)", s);
	return -EINVAL;
}

static int need_value(struct lexer *lx, const char *kw, const char *example, struct word *w)
{
	int k = next_word(lx, w);

	if (k == 0)
		snprintf(lx->err, lx->err_size, "'%s' needs a value, e.g. '%s'", kw, example);
	return k > 0 ? 0 : -EINVAL;
}

/* A serial value: anything but empty. */
static int take_serial(struct lexer *lx, const struct word *w, struct usb_rule *rule)
{
	if (w->len == 0) {
		snprintf(lx->err, lx->err_size, "an empty serial matches nothing; leave the line out");
		return -EINVAL;
	}
	memcpy(rule->serial, w->text, w->len + 1);
	return 0;
}

/* The value after 'as': scsi or virtio. */
static int parse_disk_as(struct lexer *lx, struct usb_rule *rule)
{
	struct word w;
	char sh[160];

	if (rule->deny) {
		snprintf(lx->err, lx->err_size,
			 "'deny disk' takes a serial alone; 'as' says how a disk is passed, and a denied one is not");
		return -EINVAL;
	}
	if (need_value(lx, "as", "as scsi", &w) < 0)
		return -EINVAL;
	if (word_is(&w, "scsi")) {
		rule->disk_as = DISK_AS_SCSI;
		return 0;
	}
	if (word_is(&w, "virtio")) {
		rule->disk_as = DISK_AS_VIRTIO;
		return 0;
	}
	shown(w.text, w.len, sh, sizeof(sh));
	snprintf(lx->err, lx->err_size, "'as %s': a disk goes in as scsi or virtio", sh);
	return -EINVAL;
}

/* After the keyword: "disk SERIAL [as scsi|virtio]". */
static int parse_disk_rule(struct lexer *lx, struct usb_rule *rule)
{
	struct word w;
	char sh[160];
	int k;

	rule->kind = RULE_DISK;
	if (need_value(lx, "disk", "disk WD-WX12A3456789", &w) < 0 || take_serial(lx, &w, rule) < 0)
		return -EINVAL;
	k = next_word(lx, &w);
	if (k > 0 && word_is(&w, "as")) {
		if (parse_disk_as(lx, rule) < 0)
			return -EINVAL;
		k = next_word(lx, &w);
	}
	if (k <= 0)
		return k;
	shown(w.text, w.len, sh, sizeof(sh));
	snprintf(lx->err, lx->err_size,
		 "unexpected '%s'; a line is 'disk SERIAL [as scsi|virtio]' (quote a serial with spaces)",
		 sh);
	return -EINVAL;
}

/* From the first keyword w on: id and serial, each at most once, in
 * either order. */
static int parse_id_serial_rule(struct lexer *lx, struct word *w, struct usb_rule *rule)
{
	bool seen_id = false, seen_serial = false;
	int k;

	do {
		if (word_is(w, "id") && !seen_id) {
			seen_id = true;
			if (need_value(lx, "id", "id 046d:c52b", w) < 0 ||
			    parse_id(w, rule, lx->err, lx->err_size) < 0)
				return -EINVAL;
		} else if (word_is(w, "serial") && !seen_serial) {
			seen_serial = true;
			if (need_value(lx, "serial", "serial ABC123", w) < 0 ||
			    take_serial(lx, w, rule) < 0)
				return -EINVAL;
		} else {
			char s[160];

			shown(w->text, w->len, s, sizeof(s));
			snprintf(lx->err, lx->err_size,
				 "unexpected '%s'; a line is 'serial VALUE [id VID:PID]' or 'id VID:PID'",
				 s);
			return -EINVAL;
		}
		k = next_word(lx, w);
		if (k < 0)
			return k;
	} while (k > 0);
	rule->kind = seen_serial ? RULE_SERIAL : RULE_ID;
	if (seen_serial && rule->have_id && rule->pid < 0) {
		snprintf(lx->err, lx->err_size, "with a serial, give the full id (VID:PID), or none");
		return -EINVAL;
	}
	return 0;
}

/* A rule of one value (port, path, or a bare port), then the end of the
 * line. */
static int parse_port_rule(struct lexer *lx, struct word *w, struct usb_rule *rule)
{
	int k;

	if (word_is(w, "port")) {
		rule->kind = RULE_PORT;
		if (need_value(lx, "port", "port 3-4", w) < 0 ||
		    parse_port_word(w, false, rule, lx->err, lx->err_size) < 0)
			return -EINVAL;
	} else if (word_is(w, "path")) {
		rule->kind = RULE_PATH;
		if (need_value(lx, "path", "path pci-0000:00:14.0-usb-0:4", w) < 0 ||
		    parse_path(w, rule, lx->err, lx->err_size) < 0)
			return -EINVAL;
	} else {
		rule->kind = RULE_PORT;
		if (parse_port_word(w, !rule->deny, rule, lx->err, lx->err_size) < 0)
			return -EINVAL;
	}
	k = next_word(lx, w);
	if (k < 0)
		return k;
	if (k > 0) {
		snprintf(lx->err, lx->err_size, "unexpected text after the rule; one rule a line");
		return -EINVAL;
	}
	return 0;
}

int usbconf_parse_line(const char *line, size_t len, struct usb_rule *ret, char *err,
		       size_t err_size)
{
	struct lexer lx = { .p = line, .end = line + len, .err = err, .err_size = err_size };
	struct usb_rule rule = { .pid = -1 };
	struct word w;
	int k;

	/* a NUL byte in the text means a binary file, or a trick */
	if (memchr(line, '\0', len)) {
		snprintf(err, err_size, "the line contains a NUL byte");
		return -EINVAL;
	}

	k = next_word(&lx, &w);
	if (k <= 0)
		return k;
	if (word_is(&w, "deny")) {
		rule.deny = true;
		if (need_value(&lx, "deny", "deny 3-4.4", &w) < 0)
			return -EINVAL;
		if (word_is(&w, "deny")) {
			snprintf(err, err_size, "'deny deny' makes no sense; one 'deny' a rule");
			return -EINVAL;
		}
	}

	if (word_is(&w, "disk"))
		k = parse_disk_rule(&lx, &rule);
	else if (word_is(&w, "id") || word_is(&w, "serial"))
		k = parse_id_serial_rule(&lx, &w, &rule);
	else
		k = parse_port_rule(&lx, &w, &rule);
	if (k < 0)
		return k;
	*ret = rule;
	return 1;
}

/* Whether the USB device with serial usb carries the disk a disk rule
 * names: udev's ID_SERIAL_SHORT of a USB disk is the device's serial, and
 * its ID_SERIAL is "<vendor>_<model>_", that serial and "-0:0". (A bridge that
 * passes ATA through reports the drive's own serial on the disk, which the
 * USB device does not tell: such a disk is found when it appears.) */
void usbconf_strip_lun(char *serial)
{
	char *dash = strrchr(serial, '-');
	size_t colon;

	/* "-0:0": digits, a colon, digits */
	if (!dash || !dash[1] || (colon = strspn(dash + 1, "0123456789")) == 0 || dash[1 + colon] != ':' ||
	    !dash[2 + colon] || strspn(dash + 2 + colon, "0123456789") != strlen(dash + 2 + colon))
		return;
	*dash = '\0';
}

static bool carries_disk(const char *usb, const char *rule_serial)
{
	char rule[USB_STRING_MAX];
	size_t lu = strlen(usb), lr;

	if (lu == 0 || util_strlcpy(rule, rule_serial, sizeof(rule)) < 0)
		return false;
	usbconf_strip_lun(rule);
	lr = strlen(rule);
	if (strcmp(usb, rule) == 0)
		return true;
	return lr > lu && rule[lr - lu - 1] == '_' && strcmp(rule + lr - lu, usb) == 0;
}

unsigned usbconf_rule_match(const struct usb_rule *r, const struct usb_device_info *dev)
{
	bool id_ok = !r->have_id ||
		     (dev->have_ids && dev->vid == r->vid && (r->pid < 0 || dev->pid == (unsigned)r->pid));

	switch (r->kind) {
	case RULE_PORT:
		return port_is_under(&dev->port, &r->port) ? r->port.depth : 0;
	case RULE_PATH: {
		struct usb_port p = dev->port;

		p.bus = 0;
		return dev->controller[0] && strcmp(dev->controller, r->controller) == 0 &&
				       port_is_under(&p, &r->port)
			       ? r->port.depth
			       : 0;
	}
	case RULE_ID:
		return id_ok ? (r->pid < 0 ? SCORE_ID_VENDOR : SCORE_ID) : 0;
	case RULE_SERIAL:
		if (!id_ok || (dev->serial_known && strcmp(dev->serial, r->serial) != 0))
			return 0;
		return r->have_id ? SCORE_SERIAL_ID : SCORE_SERIAL;
	case RULE_DISK:
		return dev->mass_storage && dev->serial_known && carries_disk(dev->serial, r->serial)
			       ? SCORE_DISK
			       : 0;
	}
	return 0;
}

static bool disk_rule_matches(const struct usb_rule *r, const struct disk_serials *d)
{
	for (size_t i = 0; i < DISK_SERIALS; i++)
		if (d->s[i] && d->s[i][0] && strcmp(d->s[i], r->serial) == 0)
			return true;
	return false;
}

const struct usb_rule *usbconf_disk_denied(const struct vm_rules *rules,
					   const struct disk_serials *d)
{
	for (size_t i = 0; i < rules->n_rules; i++)
		if (rules->rules[i].deny && rules->rules[i].kind == RULE_DISK &&
		    disk_rule_matches(&rules->rules[i], d))
			return &rules->rules[i];
	return NULL;
}

unsigned usbconf_disk_match(const struct vm_rules *rules, const struct disk_serials *d,
			    const struct usb_rule **ret_rule)
{
	if (usbconf_disk_denied(rules, d))
		return 0;
	for (size_t i = 0; i < rules->n_rules; i++) {
		const struct usb_rule *r = &rules->rules[i];

		if (!r->deny && r->kind == RULE_DISK && disk_rule_matches(r, d)) {
			if (ret_rule)
				*ret_rule = r;
			return SCORE_DISK;
		}
	}
	return 0;
}

bool usbconf_has_disk_rules(const struct vm_rules *rules, bool deny_too)
{
	for (size_t i = 0; i < rules->n_rules; i++)
		if (rules->rules[i].kind == RULE_DISK && (deny_too || !rules->rules[i].deny))
			return true;
	return false;
}

/* A deny on a serial applies only when the serial is known: on a remove
 * event a device must never be kept in a VM for want of it. */
static bool deny_applies(const struct usb_rule *r, const struct usb_device_info *dev)
{
	return r->deny && (r->kind != RULE_SERIAL || dev->serial_known) &&
	       usbconf_rule_match(r, dev) > 0;
}

const struct usb_rule *usbconf_denied(const struct vm_rules *rules,
				      const struct usb_device_info *dev)
{
	for (size_t i = 0; i < rules->n_rules; i++)
		if (deny_applies(&rules->rules[i], dev))
			return &rules->rules[i];
	return NULL;
}

const struct usb_rule *usbconf_kept_out(const struct vm_rules *rules,
					const struct usb_device_info *dev)
{
	for (size_t i = 0; i < rules->n_rules; i++)
		if (!rules->rules[i].deny && usbconf_rule_match(&rules->rules[i], dev))
			return usbconf_denied(rules, dev);
	return NULL;
}

unsigned usbconf_match(const struct vm_rules *rules, const struct usb_device_info *dev,
		       const struct usb_rule **ret_rule)
{
	const struct usb_rule *best = NULL;
	unsigned best_score = 0;

	if (usbconf_denied(rules, dev))
		return 0;
	for (size_t i = 0; i < rules->n_rules; i++) {
		const struct usb_rule *r = &rules->rules[i];
		unsigned score = r->deny ? 0 : usbconf_rule_match(r, dev);

		if (score > best_score) {
			best = r;
			best_score = score;
		}
	}
	if (ret_rule)
		*ret_rule = best;
	return best_score;
}

void usbconf_quote(const char *v, char *buf, size_t n)
{
	bool plain = v[0] != '\0';
	size_t o = 0;

	for (const char *c = v; *c && plain; c++)
		plain = *c > ' ' && *c < 0x7f && *c != '"' && *c != '#' && *c != '\\';
	if (plain) {
		snprintf(buf, n, "%s", v);
		return;
	}
	if (n < 3) {
		if (n)
			buf[0] = '\0';
		return;
	}
	buf[o++] = '"';
	for (const unsigned char *c = (const unsigned char *)v; *c; c++) {
		char piece[5];
		size_t l;

		if (*c == '"' || *c == '\\')
			l = (size_t)snprintf(piece, sizeof(piece), "\\%c", *c);
		else if (*c < ' ' || *c >= 0x7f)
			l = (size_t)snprintf(piece, sizeof(piece), "\\x%02x", *c);
		else
			l = (size_t)snprintf(piece, sizeof(piece), "%c", *c);
		if (o + l + 2 > n)
			break;
		memcpy(buf + o, piece, l);
		o += l;
	}
	buf[o++] = '"';
	buf[o] = '\0';
}

void usbconf_format_rule(const struct usb_rule *r, char *buf, size_t n)
{
	const char *deny = r->deny ? "deny " : "";
	char a[PORT_STRLEN], serial[USB_STRING_MAX * 4 + 3], id[16] = "";

	if (r->have_id) {
		if (r->pid < 0)
			snprintf(id, sizeof(id), "%04x:*", r->vid);
		else
			snprintf(id, sizeof(id), "%04x:%04x", r->vid, (unsigned)r->pid);
	}
	switch (r->kind) {
	case RULE_PORT:
		port_format(&r->port, a, sizeof(a));
		snprintf(buf, n, "%sport %s", deny, a);
		break;
	case RULE_PATH:
		port_format_hostport(&r->port, a, sizeof(a));
		snprintf(buf, n, "%spath %s-usb-0:%s", deny, r->controller, a);
		break;
	case RULE_ID:
		snprintf(buf, n, "%sid %s", deny, id);
		break;
	case RULE_SERIAL:
		usbconf_quote(r->serial, serial, sizeof(serial));
		snprintf(buf, n, "%sserial %s%s%s", deny, serial, r->have_id ? " id " : "", id);
		break;
	case RULE_DISK:
		usbconf_quote(r->serial, serial, sizeof(serial));
		snprintf(buf, n, "%sdisk %s%s", deny, serial,
			 r->disk_as == DISK_AS_SCSI	? " as scsi"
			 : r->disk_as == DISK_AS_VIRTIO ? " as virtio"
							: "");
		break;
	}
}

int usbconf_parse_text(const char *text, size_t len, const char *name, unsigned long vmid,
		       enum log_level line_level, struct vm_rules **ret)
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
			log_msg(line_level, "%s:%u: %s; line ignored", name, lineno, err);
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

int usbconf_load(const char *dir, unsigned long vmid, enum log_level line_level,
		 struct vm_rules **ret)
{
	char path[4096];

	if (snprintf(path, sizeof(path), "%s/%lu.usb.conf", dir, vmid) >= (int)sizeof(path))
		return log_err(-ENAMETOOLONG, "%s/%lu.usb.conf: path too long", dir, vmid);
	return usbconf_load_file(path, vmid, line_level, ret);
}

int usbconf_load_file(const char *path, unsigned long vmid, enum log_level line_level,
		      struct vm_rules **ret)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	int r;

	r = util_read_file(path, true, USBCONF_MAX_SIZE, &buf, &len);
	switch (r) {
	case 0:
		return usbconf_parse_text(buf, len, path, vmid, line_level, ret);
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

int usbconf_load_all(const char *dir, enum log_level line_level, bool missing_ok,
		     struct vm_rules ***ret, size_t *ret_n)
{
	struct vm_rules **list = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *d;

	d = opendir(dir);
	if (!d && errno == ENOENT && missing_ok)
		return -ENOENT;
	if (!d)
		return log_err(-errno, "%s: cannot read the VM config directory: %s", dir, strerror(errno));

	while ((de = readdir(d))) {
		struct vm_rules *r;
		unsigned long vmid;

		if (usbconf_vmid_of_file(de->d_name, ".usb.conf", &vmid) < 0)
			continue;
		if (usbconf_load(dir, vmid, line_level, &r) < 0)
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

int usbconf_vmid_of_file(const char *name, const char *suffix, unsigned long *ret)
{
	size_t len = strlen(name), slen = strlen(suffix);
	char id[16];

	if (len <= slen || len - slen >= sizeof(id) || strcmp(name + len - slen, suffix) != 0)
		return -EINVAL;
	memcpy(id, name, len - slen);
	id[len - slen] = '\0';
	return usbconf_parse_vmid(id, ret);
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
