/* Per-VM rules: <dir>/<vmid>.usb.conf, one rule a line, '#' starts a
 * comment:
 *   3-4 | port 3-4                    a host port and everything below it
 *   path pci-0000:00:14.0-usb-0:4     the same, by udev's stable ID_PATH
 *   id 046d:c52b | id 046d:*          a device by vendor (and product)
 *   serial ABC123 [id 046d:c52b]      one device by its serial number
 *   disk SERIAL [as scsi|virtio]      a USB disk, by udev's ID_SERIAL or
 *                                     ID_SERIAL_SHORT, as a virtual disk
 *   deny RULE                         never pass what RULE matches
 * A value with spaces, '#' or odd bytes is written in double quotes with
 * \\, \" and \xHH escapes. A bad line is reported with file and line and
 * skipped; the others still work. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "base/log.h"
#include "host/port.h"
#include "host/usbtree.h"

#define VMID_MIN 100
#define VMID_MAX 999999999UL
/* Larger .usb.conf files are refused: nobody writes a megabyte of rules. */
#define USBCONF_MAX_SIZE (1024 * 1024)

enum rule_kind {
	RULE_PORT,
	RULE_PATH,
	RULE_ID,
	RULE_SERIAL,
	RULE_DISK,
};

/* How a disk rule's disk reaches the guest: on its SCSI controller when it
 * has one (else virtio), or as asked. */
enum disk_as {
	DISK_AS_AUTO,
	DISK_AS_SCSI,
	DISK_AS_VIRTIO,
};

/* How specific a match is: a serial beats an id, an id beats any port, a
 * deeper port beats a shallower one. */
#define SCORE_ID_VENDOR 20
#define SCORE_ID 21
#define SCORE_SERIAL 30
#define SCORE_SERIAL_ID 31
/* A disk rule beats every other rule for the USB device that carries the
 * disk: that device is then not passed as a usb-host. */
#define SCORE_DISK 40

struct usb_rule {
	unsigned line;
	bool deny;
	enum rule_kind kind;
	struct usb_port port;		      /* PORT; PATH (bus 0) */
	char controller[PORT_CONTROLLER_MAX]; /* PATH: "pci-0000:00:14.0" */
	bool have_id;			      /* ID; SERIAL with an id */
	unsigned vid;
	int pid; /* -1: any product of vid */
	char serial[USB_STRING_MAX];	      /* SERIAL; DISK */
	enum disk_as disk_as;		      /* DISK */
};

struct vm_rules {
	unsigned long vmid;
	char *path;
	unsigned n_errors; /* malformed lines seen (and reported) */
	size_t n_rules;
	struct usb_rule *rules;
};

/* One line (without its newline). Returns 1 with *ret filled, 0 for a blank
 * or comment line, -EINVAL with a reason and a hint in err (the offending
 * text escaped). */
int usbconf_parse_line(const char *line, size_t len, struct usb_rule *ret,
		       char *err, size_t err_size);

/* Parses a whole file's text; reports each bad line as "NAME:LINE: ..." at
 * level line_level (warning for the operator, debug on udev events, where
 * every VM's file is read on every plug). Never fails on content, only on
 * memory. */
int usbconf_parse_text(const char *text, size_t len, const char *name, unsigned long vmid,
		       enum log_level line_level, struct vm_rules **ret);

/* Reads <dir>/<vmid>.usb.conf. -ENOENT when the VM has none (not logged);
 * other errors are logged with the file name. A symlink, a directory or a
 * file over USBCONF_MAX_SIZE is refused. */
int usbconf_load(const char *dir, unsigned long vmid, enum log_level line_level, struct vm_rules **ret);
/* The same for a rules file at path (a declared guest's: vmid 0). */
int usbconf_load_file(const char *path, unsigned long vmid, enum log_level line_level,
		      struct vm_rules **ret);

/* Every <vmid>.usb.conf in dir, sorted by vmid. Files that cannot be read
 * are logged and left out. A dir that cannot be read is logged, except
 * that a missing one gives a quiet -ENOENT when missing_ok. */
int usbconf_load_all(const char *dir, enum log_level line_level, bool missing_ok,
		     struct vm_rules ***ret, size_t *ret_n);

/* Whether a single rule matches dev (deny ignored); its score, 0 if not.
 * A serial rule matches a device whose serial is not known (a remove
 * event): the caller then only detaches, which is harmless. */
unsigned usbconf_rule_match(const struct usb_rule *rule, const struct usb_device_info *dev);

/* How specifically the VM's rules claim dev: 0 not at all (also when a deny
 * rule matches it; a deny on a serial applies only when the serial is
 * known), else the best score. *ret_rule (may be NULL): the rule. */
unsigned usbconf_match(const struct vm_rules *rules, const struct usb_device_info *dev,
		       const struct usb_rule **ret_rule);

/* A USB disk as a disk rule sees it: the serials udev gives it (ID_SERIAL,
 * ID_SERIAL_SHORT, and their ID_USB_ twins when the bridge passes ATA
 * through; ID_SERIAL without its "-0:0"; "" or NULL for one it lacks). */
#define DISK_SERIALS 5
struct disk_serials {
	const char *s[DISK_SERIALS];
};

/* Cuts udev's LUN ("-0:0") off the end of a disk's ID_SERIAL, if there. */
void usbconf_strip_lun(char *serial);

/* How the VM's rules claim the disk: 0 not at all (or a 'deny disk' rule
 * matches it), SCORE_DISK with *ret_rule (may be NULL) set. */
unsigned usbconf_disk_match(const struct vm_rules *rules, const struct disk_serials *d,
			    const struct usb_rule **ret_rule);
/* The 'deny disk' rule of the VM's that matches d, or NULL. */
const struct usb_rule *usbconf_disk_denied(const struct vm_rules *rules,
					   const struct disk_serials *d);
/* Whether the VM has a disk rule that gives it a disk (with deny_too, a
 * 'deny disk' counts too). */
bool usbconf_has_disk_rules(const struct vm_rules *rules, bool deny_too);

/* The deny rule of the VM's that matches dev, or NULL. */
const struct usb_rule *usbconf_denied(const struct vm_rules *rules,
				      const struct usb_device_info *dev);

/* The deny rule that keeps dev out although an allow rule of the same
 * file selects it, or NULL. */
const struct usb_rule *usbconf_kept_out(const struct vm_rules *rules,
					const struct usb_device_info *dev);

/* The rule as it would be written in a .usb.conf: "deny id 046d:*". */
void usbconf_format_rule(const struct usb_rule *rule, char *buf, size_t n);

/* A value quoted for a .usb.conf when it needs it (spaces, '#', quotes,
 * bytes outside printable ASCII), else as it is. */
void usbconf_quote(const char *value, char *buf, size_t n);

/* "100" -> 100 when it is a Proxmox VM id (100..999999999). 0 or -EINVAL. */
int usbconf_parse_vmid(const char *s, unsigned long *ret);

/* "100.usb.conf" with suffix ".usb.conf" -> 100. 0 or -EINVAL. */
int usbconf_vmid_of_file(const char *name, const char *suffix, unsigned long *ret);

struct vm_rules *usbconf_free(struct vm_rules *r);
void usbconf_free_all(struct vm_rules **list, size_t n);
