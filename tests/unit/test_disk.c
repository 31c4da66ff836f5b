/* disk.c's pure parts: a disk's udev event, its USB port, QEMU names. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "host/disk.h"

#define DEVPATH "/devices/pci0000:00/0000:00:14.0/usb3/3-4/3-4.1/3-4.1:1.0/host6/target6:0:0/6:0:0:0/block/sdb"

struct env {
	const char *kv[24][2];
};

static const char *lookup(const char *key, void *ud)
{
	const struct env *e = ud;

	for (size_t i = 0; i < 24 && e->kv[i][0]; i++)
		if (strcmp(e->kv[i][0], key) == 0)
			return e->kv[i][1];
	return NULL;
}

static struct env base(void)
{
	struct env e = { {
		{ "ACTION", "add" },
		{ "SUBSYSTEM", "block" },
		{ "DEVTYPE", "disk" },
		{ "DEVPATH", DEVPATH },
		{ "MAJOR", "8" },
		{ "MINOR", "16" },
		{ "ID_SERIAL", "WD_Elements_57584C-0:0" },
		{ "ID_SERIAL_SHORT", "57584C" },
		{ "ID_USB_SERIAL", "WD_Elements_57584C-0:0" },
		{ "ID_USB_SERIAL_SHORT", "57584C" },
		{ "DEVLINKS", "/dev/disk/by-path/pci-0000:00:14.0-usb-0:4.1:1.0-scsi-0:0:0:0 /dev/disk/by-id/wwn-0x50014 /dev/disk/by-id/ata-WDC_WX12 /dev/disk/by-id/usb-WD_Elements_57584C-0:0" },
	} };
	return e;
}

static void set(struct env *e, const char *key, const char *value)
{
	size_t i;

	for (i = 0; i < 24 && e->kv[i][0]; i++)
		if (strcmp(e->kv[i][0], key) == 0)
			break;
	e->kv[i][0] = key;
	e->kv[i][1] = value;
}

static void test_event(void **state)
{
	struct env e = base();
	enum uevent_action action;
	struct usb_disk d;
	const char *why = NULL;
	char port[PORT_STRLEN];
	(void)state;

	assert_int_equal(disk_from_event(lookup, &e, &action, &d, &why), 1);
	assert_int_equal(action, UEVENT_ADD);
	assert_string_equal(d.name, "sdb");
	assert_int_equal(d.major, 8);
	assert_int_equal(d.minor, 16);
	port_format(&d.port, port, sizeof(port));
	assert_string_equal(port, "3-4.1");
	assert_string_equal(d.link, "usb-WD_Elements_57584C-0:0"); /* usb- first */
	assert_string_equal(disk_key(&d), "WD_Elements_57584C-0:0");
	assert_string_equal(d.serial_bare, "WD_Elements_57584C");
	assert_int_equal(d.size, 0);

	static const struct {
		const char *key, *value, *why;
	} bad[] = {
		{ "ACTION", "change", "action is neither add nor remove (nor a change of medium)" },
		{ "SUBSYSTEM", "usb", "not a block device" },
		{ "DEVTYPE", "partition", "not a whole disk (a partition?)" },
		{ "DEVPATH", "/devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda", "a disk on no USB device" },
		{ "DEVPATH", "/devices/../block/sdb", "DEVPATH missing or malformed" },
		{ "DEVPATH", NULL, "DEVPATH missing or malformed" },
		{ "MAJOR", "x", "MAJOR missing or malformed" },
		{ "MAJOR", "4096", "MAJOR missing or malformed" },
		{ "MINOR", "", "MINOR missing or malformed" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		e = base();
		set(&e, bad[i].key, bad[i].value);
		assert_int_equal(disk_from_event(lookup, &e, &action, &d, &why), 0);
		assert_string_equal(why, bad[i].why);
	}

	/* a card reader's change of medium is looked at as an add */
	e = base();
	set(&e, "ACTION", "change");
	set(&e, "DISK_MEDIA_CHANGE", "1");
	assert_int_equal(disk_from_event(lookup, &e, &action, &d, &why), 1);
	assert_int_equal(action, UEVENT_ADD);
	set(&e, "DISK_MEDIA_CHANGE", "0");
	assert_int_equal(disk_from_event(lookup, &e, &action, &d, &why), 0);

	/* a remove without udev's database: named by what is left */
	e = base();
	set(&e, "ACTION", "remove");
	set(&e, "ID_SERIAL", NULL);
	set(&e, "ID_SERIAL_SHORT", "");
	set(&e, "DEVLINKS", "/dev/disk/by-id/../../sda /dev/disk/by-id/ata-X");
	assert_int_equal(disk_from_event(lookup, &e, &action, &d, &why), 1);
	assert_int_equal(action, UEVENT_REMOVE);
	assert_string_equal(d.link, "ata-X"); /* never a link with a slash */
	assert_string_equal(disk_key(&d), "ata-X");
	set(&e, "DEVLINKS", NULL);
	assert_int_equal(disk_from_event(lookup, &e, &action, &d, &why), 1);
	assert_string_equal(disk_key(&d), "sdb");
}

static void test_port_of(void **state)
{
	struct usb_port p;
	char port[PORT_STRLEN];
	(void)state;

	assert_int_equal(disk_port_of(DEVPATH, &p), 0);
	port_format(&p, port, sizeof(port));
	assert_string_equal(port, "3-4.1");
	assert_int_equal(disk_port_of("/devices/platform/x/usb1/1-1/1-1:1.0/host0/target0:0:0/0:0:0:0/block/sda", &p), 0);
	port_format(&p, port, sizeof(port));
	assert_string_equal(port, "1-1");
	assert_int_equal(disk_port_of("/devices/virtual/block/loop0", &p), -EINVAL);
	assert_int_equal(disk_port_of("/devices/pci0000:00/0000:00:1f.2/ata1/host0/block/sda", &p), -EINVAL);
}

static void test_names(void **state)
{
	char a[DISK_ID_MAX], b[DISK_ID_MAX], size[32];
	(void)state;

	disk_qemu_id("WD_Elements_57584C", a, sizeof(a));
	disk_qemu_id("WD_Elements_57584D", b, sizeof(b));
	assert_string_not_equal(a, b);
	/* stable across runs (a later remove finds it), a valid QEMU id, and
	 * with "-file" within a node name's 31 characters */
	assert_string_equal(a, "usbdisk-afc2ff934c03e5bf");
	assert_true(strlen(a) + strlen("-file") <= 31);
	disk_format_size(0, size, sizeof(size));
	assert_string_equal(size, "0 B");
	disk_format_size(64ULL << 20, size, sizeof(size));
	assert_string_equal(size, "67.1 MB");
	disk_format_size(2000398934016ULL, size, sizeof(size));
	assert_string_equal(size, "2.0 TB");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_event),
		cmocka_unit_test(test_port_of),
		cmocka_unit_test(test_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
