/* Proxmox's own usbN lines, and the controller part of a device's ID_PATH. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "base/log.h"
#include "policy/pveconf.h"

static struct usb_device_info dev(const char *port, unsigned vid, unsigned pid)
{
	struct usb_device_info d = { .have_ids = true, .vid = vid, .pid = pid };

	assert_int_equal(port_parse(port, &d.port), 0);
	return d;
}

static void test_parse(void **state)
{
	static const char conf[] =
		"boot: order=scsi0\n"
		"usb0: host=046d:c52b,usb3=1\n"
		"usb1: host=3-4.1\n"
		"usb2: spice\n"
		"usb3: 0x0951:0x1666\n"
		"usb4: mapping=desk\n"
		"usb13: host=11-2\r\n"
		"usbx: host=1-1\n"
		"usb99: host=1-1\n"
		"hookscript: local:snippets/pve-usb-hotplug\n"
		"[snap1]\n"
		"usb5: host=5-5\n";
	struct pve_vm vm;
	(void)state;

	pveconf_parse_text(conf, sizeof(conf) - 1, &vm);
	assert_int_equal(vm.n, 6);
	assert_int_equal(vm.usb[0].index, 0);
	assert_int_equal(vm.usb[0].kind, PVE_USB_ID);
	assert_int_equal(vm.usb[0].vid, 0x046d);
	assert_int_equal(vm.usb[0].pid, 0xc52b);
	assert_int_equal(vm.usb[1].kind, PVE_USB_PORT);
	assert_int_equal(vm.usb[2].kind, PVE_USB_OTHER);
	assert_int_equal(vm.usb[3].kind, PVE_USB_ID);
	assert_int_equal(vm.usb[3].vid, 0x0951);
	assert_int_equal(vm.usb[4].kind, PVE_USB_MAPPING);
	assert_string_equal(vm.usb[4].mapping, "desk");
	assert_int_equal(vm.usb[5].index, 13);
	assert_int_equal(vm.usb[5].kind, PVE_USB_PORT);

	/* QEMU compares ports exactly, ids as a pair */
	struct usb_device_info d = dev("3-4.1", 1, 1);
	assert_ptr_equal(pveconf_passes(&vm, &d), &vm.usb[1]);
	d = dev("3-4.1.1", 1, 1);
	assert_null(pveconf_passes(&vm, &d));
	d = dev("3-4", 0x046d, 0xc52b);
	assert_ptr_equal(pveconf_passes(&vm, &d), &vm.usb[0]);
	d = dev("3-4", 0x046d, 0xc52c);
	assert_null(pveconf_passes(&vm, &d));
	d = dev("5-5", 1, 1); /* only in a snapshot */
	assert_null(pveconf_passes(&vm, &d));
}

/* The host= forms QEMU takes for an id: four hex digits each, a "0x" optional. */
static void test_host_ids(void **state)
{
	static const struct {
		const char *line;
		enum pve_usb_kind kind;
		unsigned vid, pid;
	} cases[] = {
		{ "usb0: host=046d:c52b", PVE_USB_ID, 0x046d, 0xc52b },
		{ "usb0: host=0X046D:0xC52B", PVE_USB_ID, 0x046d, 0xc52b },
		{ "usb0: 0x046d:c52b", PVE_USB_ID, 0x046d, 0xc52b },
		{ "usb0: host=46d:c52b", PVE_USB_OTHER, 0, 0 },
		{ "usb0: host=0x46d:c52b", PVE_USB_OTHER, 0, 0 },
		{ "usb0: host=046d:c52b0", PVE_USB_OTHER, 0, 0 },
		{ "usb0: host=046d:+c52", PVE_USB_OTHER, 0, 0 },
		{ "usb0: host=046d:0x0x", PVE_USB_OTHER, 0, 0 },
		{ "usb0: host=046g:c52b", PVE_USB_OTHER, 0, 0 },
		{ "usb0: host=046d:", PVE_USB_OTHER, 0, 0 },
	};
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct pve_vm vm;

		pveconf_parse_text(cases[i].line, strlen(cases[i].line), &vm);
		assert_int_equal(vm.n, 1);
		if (vm.usb[0].kind != cases[i].kind)
			fail_msg("case %zu: '%s' gave kind %d", i, cases[i].line, (int)vm.usb[0].kind);
		if (cases[i].kind == PVE_USB_ID) {
			assert_int_equal(vm.usb[0].vid, cases[i].vid);
			assert_int_equal(vm.usb[0].pid, cases[i].pid);
		}
	}
}

static void test_controller(void **state)
{
	static const struct {
		const char *devpath, *controller;
	} cases[] = {
		{ "/devices/pci0000:00/0000:00:14.0/usb3/3-4/3-4.1", "pci-0000:00:14.0" },
		{ "/devices/pci0000:00/0000:00:1c.0/0000:03:00.0/usb11/11-2", "pci-0000:03:00.0" },
		{ "/devices/platform/soc/xhci-hcd.0.auto/usb1/1-1", "platform-xhci-hcd.0.auto" },
		{ "/devices/usb1/1-1", NULL },
		{ "/devices/pci0000:00/0000:00:14.0/3-4", NULL },
		{ "/devices/x/usbfoo/1-1", NULL },
	};
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char buf[PORT_CONTROLLER_MAX];
		int r = port_controller(cases[i].devpath, buf, sizeof(buf));

		if (cases[i].controller) {
			assert_int_equal(r, 0);
			assert_string_equal(buf, cases[i].controller);
		} else {
			assert_true(r < 0);
		}
	}
}

static void test_mappings(void **state)
{
	static const char cfg[] = "# comment\n"
				  "desk\n"
				  "\tmap node=other,id=1111:2222\n"
				  "\tmap node=pve,id=046d:c52b\n"
				  "\tdescription the keyboard\n"
				  "\n"
				  "board\n"
				  "\tmap id=0483:5740,node=pve,path=3-4.3\n"
				  "bad name\n"
				  "\tmap node=pve,id=zz\n";
	struct pve_mappings maps;
	struct pve_vm vm;
	struct usb_device_info d;
	(void)state;

	log_setup(LOG_LVL_ERROR, NULL, 0);
	assert_int_equal(pveconf_mappings_parse(cfg, sizeof(cfg) - 1, "usb.cfg", "pve", LOG_LVL_DEBUG, &maps), 0);
	assert_int_equal(maps.n, 2);
	assert_int_equal(maps.n_errors, 1); /* "bad name"; its map line belongs to no mapping */
	assert_string_equal(maps.m[0].name, "desk");
	assert_int_equal(maps.m[0].vid, 0x046d);
	assert_false(maps.m[0].have_port);
	assert_string_equal(maps.m[1].name, "board");
	assert_true(maps.m[1].have_port);

	pveconf_parse_text("usb0: mapping=desk\nusb1: mapping=board\nusb2: mapping=none\n", 58, &vm);
	pveconf_resolve(&vm, &maps);
	assert_true(vm.usb[0].resolved && vm.usb[1].resolved && !vm.usb[2].resolved);
	d = dev("1-1", 0x046d, 0xc52b);
	assert_ptr_equal(pveconf_passes(&vm, &d), &vm.usb[0]);
	d = dev("3-4.2", 0x0483, 0x5740); /* board's id, another port */
	assert_null(pveconf_passes(&vm, &d));
	d = dev("3-4.3", 0x0483, 0x5740);
	assert_ptr_equal(pveconf_passes(&vm, &d), &vm.usb[1]);
	pveconf_mappings_free(&maps);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_host_ids),
		cmocka_unit_test(test_mappings),
		cmocka_unit_test(test_controller),
	};
	log_setup(LOG_LVL_ERROR, NULL, 0);
	return cmocka_run_group_tests_name("pveconf", tests, NULL, NULL);
}
