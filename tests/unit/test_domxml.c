/* A libvirt domain's XML: the tool's hostdevs, and the next free xHCI port. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "guests/domxml.h"
#include "guests/vdisk.h"

/* as libvirt 9 prints a live domain (trimmed) */
static const char live[] =
	"<domain type='qemu' id='1'>\n"
	"  <name>lab</name>\n"
	"  <devices>\n"
	"    <controller type='usb' index='0' model='piix3-uhci'>\n"
	"      <alias name='usb'/>\n"
	"    </controller>\n"
	"    <controller type='usb' index='1' model='qemu-xhci' ports='8'>\n"
	"      <alias name='usb1'/>\n"
	"      <address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x0'/>\n"
	"    </controller>\n"
	"    <input type='tablet' bus='usb'>\n"
	"      <alias name='input0'/>\n"
	"      <address type='usb' bus='1' port='8'/>\n"
	"    </input>\n"
	"    <hostdev mode='subsystem' type='usb' managed='no'>\n"
	"      <source>\n"
	"        <vendor id='0x046d'/>\n"
	"        <product id='0xc52b'/>\n"
	"        <address bus='3' device='5'/>\n"
	"      </source>\n"
	"      <alias name='ua-usbhost3-4_1'/>\n"
	"      <address type='usb' bus='1' port='7'/>\n"
	"    </hostdev>\n"
	"    <hostdev mode='subsystem' type='usb' managed='no'>\n"
	"      <source>\n"
	"        <vendor id='0x0781'/>\n"
	"        <product id='0x5581'/>\n"
	"      </source>\n"
	"      <alias name='hostdev0'/>\n"
	"      <address type='usb' bus='1' port='6.2'/>\n"
	"    </hostdev>\n"
	"    <hostdev mode='subsystem' type='pci' managed='yes'>\n"
	"      <source><address domain='0x0000' bus='0x05' slot='0x00' function='0x0'/></source>\n"
	"      <alias name='ua-usbhost9-9'/>\n"
	"    </hostdev>\n"
	"  </devices>\n"
	"</domain>\n";

static void test_held(void **state)
{
	struct xhci_set set;
	struct usb_port p;
	const struct xhci_dev *d;

	(void)state;
	assert_int_equal(domxml_held(live, &set), 0);
	/* the domain's own hostdev and a PCI one are not the tool's */
	assert_int_equal(set.n_devs, 1);
	assert_int_equal(port_parse("3-4.1", &p), 0);
	d = xhci_find(&set, &p);
	assert_non_null(d);
	assert_int_equal(d->vid, 0x046d);
	assert_int_equal(d->pid, 0xc52b);
	assert_int_equal(domxml_held("<domain/>", &set), 0);
	assert_int_equal(set.n_devs, 0);
	/* cut short, or an alias that is no port: nothing, no crash */
	assert_int_equal(domxml_held("<hostdev type='usb'><alias name='ua-usbhost3-4", &set), 0);
	assert_int_equal(set.n_devs, 0);
	assert_int_equal(domxml_held("<hostdev type='usb'><alias name='ua-usbhostx'/></hostdev>", &set), 0);
	assert_int_equal(set.n_devs, 0);
	/* an id out of range is no id (found by the fuzzer: it was kept) */
	assert_int_equal(domxml_held("<hostdev type='usb'><source><vendor id='0x078fffffffffffffffffffff1'/>"
				       "<product id='0x1ffff'/></source><alias name='ua-usbhost3-4'/></hostdev>",
				       &set),
			 0);
	assert_int_equal(set.n_devs, 1);
	assert_int_equal(set.devs[0].vid, 0);
	assert_int_equal(set.devs[0].pid, 0);
}

/* How an id in the XML reads (util_parse_hex_n behind "0x"): what it is,
 * or 0 when it is none. */
static void test_ids(void **state)
{
	static const struct {
		const char *id;
		unsigned want;
	} cases[] = {
		{ "0x046d", 0x046d },  { "0x046D", 0x046d }, { "0xC52B", 0xc52b }, { "0x1", 1 },
		{ "0x0000046d", 0x046d }, { "1133", 1133 },  { "0xffff", 0xffff }, { "0x10000", 0 },
		{ "0x", 0 },	       { "0x-1", 0 },	     { "0x+1", 0 },	    { "0x 46d", 0 },
		{ "0x46g", 0 },	       { "046d", 0 },	     { "", 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char xml[200];
		struct xhci_set set;

		snprintf(xml, sizeof(xml),
			 "<hostdev type='usb'><source><vendor id='%s'/></source>"
			 "<alias name='ua-usbhost3-4'/></hostdev>",
			 cases[i].id);
		assert_int_equal(domxml_held(xml, &set), 0);
		assert_int_equal(set.n_devs, 1);
		if (set.devs[0].vid != cases[i].want)
			fail_msg("id '%s': %#x, not %#x", cases[i].id, set.devs[0].vid, cases[i].want);
	}
}

static void test_pick(void **state)
{
	unsigned bus = 0, port = 0;

	(void)state;
	/* 8 is the tablet's, 7 the tool's, 6 a hub's: 5 is free */
	assert_int_equal(domxml_pick_port(live, false, &bus, &port), 0);
	assert_int_equal(bus, 1);
	assert_int_equal(port, 5);
	/* QEMU's default of 4 ports */
	assert_int_equal(domxml_pick_port("<controller type='usb' index='2' model='nec-xhci'/>", true, &bus,
				      &port),
			 0);
	assert_int_equal(bus, 2);
	assert_int_equal(port, 4);
	assert_int_equal(domxml_pick_port("<controller type='usb' index='0' model='qemu-xhci' ports='1'/>"
				      "<address type='usb' bus='0' port='1'/>",
				      false, &bus, &port),
			 -ENOSPC);
	assert_int_equal(domxml_pick_port("<controller type='usb' index='0' model='piix3-uhci'/>", false,
				      &bus, &port),
			 -ENOENT);
}

static void test_passes(void **state)
{
	struct usb_device_info dev = { .have_ids = true, .vid = 0x0781, .pid = 0x5581, .devnum = 9 };
	static const char by_address[] = "<hostdev mode='subsystem' type='usb'><source>"
					 "<address bus='3' device='9'/></source></hostdev>";

	(void)state;
	assert_int_equal(port_parse("3-2", &dev.port), 0);
	/* the domain's own hostdev, by ids */
	assert_true(domxml_passes(live, &dev));
	/* the tool's own is no "own XML" */
	dev.vid = 0x046d;
	dev.pid = 0xc52b;
	assert_false(domxml_passes(live, &dev));
	/* by bus and device number: this very device, not its model */
	assert_true(domxml_passes(by_address, &dev));
	dev.devnum = 10;
	assert_false(domxml_passes(by_address, &dev));
	assert_false(domxml_passes("<hostdev type='usb'><source/>", &dev));
}

static void test_disks(void **state)
{
	static const char xml[] =
		"<domain><devices>"
		"<disk type='file' device='disk'><source file='/var/lib/root.img'/><target dev='vda' bus='virtio'/><alias name='virtio-disk0'/></disk>"
		"<disk type='block' device='disk'><driver name='qemu' type='raw'/>"
		"<source dev='/dev/disk/by-id/usb-WD_Elements_57584C-0:0' index='2'/>"
		"<target dev='sda' bus='scsi'/><alias name='ua-usbdisk-afc2ff934c03e5bf'/></disk>"
		"<disk type='block' device='disk'><source dev='/dev/sdz'/><target dev='sdb' bus='scsi'/>"
		"<alias name='ua-mine'/></disk>"
		"<disk type='block' device='disk'><source dev='/x'/><target dev='vdb' bus='virtio'/>"
		"<alias name='ua-usbdisk-0123456789abcdef0123456789abcdef'/></disk>"
		"<controller type='scsi' index='0' model='virtio-scsi'/>"
		"</devices></domain>";
	struct vdisk_set set;
	bool scsi;
	char name[8];
	(void)state;

	assert_int_equal(domxml_disks(xml, &set, &scsi), 0);
	assert_true(scsi);
	/* the tool's only: not the domain's own, not an alias too long to be one */
	assert_int_equal(set.n, 1);
	assert_string_equal(set.d[0].id, "usbdisk-afc2ff934c03e5bf");
	assert_string_equal(set.d[0].driver, "scsi-hd");
	assert_string_equal(set.d[0].file, "/dev/disk/by-id/usb-WD_Elements_57584C-0:0");
	assert_false(set.d[0].nodes);
	assert_int_equal(domxml_disks("<domain><controller type='scsi' model='lsilogic'/></domain>", &set, &scsi), 0);
	assert_false(scsi);
	assert_int_equal(set.n, 0);

	assert_int_equal(domxml_pick_target(xml, "sd", name, sizeof(name)), 0);
	assert_string_equal(name, "sdc");
	assert_int_equal(domxml_pick_target(xml, "vd", name, sizeof(name)), 0);
	assert_string_equal(name, "vdc");
	assert_int_equal(domxml_pick_target("", "vd", name, sizeof(name)), 0);
	assert_string_equal(name, "vda");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_held),
		cmocka_unit_test(test_ids),
		cmocka_unit_test(test_pick),
		cmocka_unit_test(test_passes),
		cmocka_unit_test(test_disks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
