/* Per-VM rules: <dir>/<vmid>.usb.conf, one rule a line. A rule is a host
 * port prefix ("3-4" or "port 3-4"); '#' starts a comment. A bad line is
 * reported with file and line and skipped; the others still work. */
#pragma once

#include <stddef.h>

#include "port.h"

#define VMID_MIN 100
#define VMID_MAX 999999999UL
/* Larger .usb.conf files are refused: nobody writes a megabyte of ports. */
#define USBCONF_MAX_SIZE (1024 * 1024)

struct usb_rule {
	unsigned line;
	struct usb_port port;
};

struct vm_rules {
	unsigned long vmid;
	char *path;
	unsigned n_errors; /* malformed lines seen (and reported) */
	size_t n_rules;
	struct usb_rule *rules;
};

/* One line (without its newline). Returns 1 with *ret filled, 0 for a blank
 * or comment line, -EINVAL with a reason in err (including the offending
 * text, escaped). */
int usbconf_parse_line(const char *line, size_t len, struct usb_rule *ret,
		       char *err, size_t err_size);

/* Parses a whole file's text; reports each bad line as "NAME:LINE: ..." at
 * warning level. Never fails on content, only on memory. */
int usbconf_parse_text(const char *text, size_t len, const char *name,
		       unsigned long vmid, struct vm_rules **ret);

/* Reads <dir>/<vmid>.usb.conf. -ENOENT when the VM has none (not logged);
 * other errors are logged with the file name. A symlink, a directory or a
 * file over USBCONF_MAX_SIZE is refused. */
int usbconf_load(const char *dir, unsigned long vmid, struct vm_rules **ret);

/* Every <vmid>.usb.conf in dir, sorted by vmid. Files that cannot be read
 * are logged and left out. */
int usbconf_load_all(const char *dir, struct vm_rules ***ret, size_t *ret_n);

/* How specifically rules claims the device at dev: 0 not at all, else the
 * depth of the longest matching prefix (deeper beats shallower). */
unsigned usbconf_match(const struct vm_rules *rules, const struct usb_port *dev);

/* "100" -> 100 when it is a Proxmox VM id (100..999999999). 0 or -EINVAL. */
int usbconf_parse_vmid(const char *s, unsigned long *ret);

struct vm_rules *usbconf_free(struct vm_rules *r);
void usbconf_free_all(struct vm_rules **list, size_t n);
