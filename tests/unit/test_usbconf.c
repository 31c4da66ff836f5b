/* .usb.conf rules: what parses (and how it reads back), what the error says,
 * and how rules match devices. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "policy/usbconf.h"

#define PORT_HELP "expected a port such as 3-4 or 3-4.1, or port, path, id, serial, disk, deny"

static void test_lines(void **state)
{
	/* result 1: text is the rule as usbconf_format_rule() writes it back */
	static const struct {
		const char *line;
		int result;
		const char *text;
	} cases[] = {
		{ "3-4", 1, "port 3-4" },
		{ "  3-4.1  ", 1, "port 3-4.1" },
		{ "\t11-12\r", 1, "port 11-12" },
		{ "port 3-4", 1, "port 3-4" },
		{ "port\t3-4 # comment", 1, "port 3-4" },
		{ "3-4#comment", 1, "port 3-4" },
		{ "path pci-0000:00:14.0-usb-0:4", 1, "path pci-0000:00:14.0-usb-0:4" },
		{ "path platform-xhci-hcd.0.auto-usb-0:1.2", 1, "path platform-xhci-hcd.0.auto-usb-0:1.2" },
		{ "id 046d:c52b", 1, "id 046d:c52b" },
		{ "id 046D:C52B", 1, "id 046d:c52b" },
		{ "id 046d:*", 1, "id 046d:*" },
		{ "serial ABC123", 1, "serial ABC123" },
		{ "serial ABC123 id 0483:5740", 1, "serial ABC123 id 0483:5740" },
		{ "id 0483:5740 serial ABC123", 1, "serial ABC123 id 0483:5740" },
		{ "serial \"two words # not a comment\"", 1, "serial \"two words # not a comment\"" },
		{ "serial \"q\\\"b\\\\\\x01\\xff\"", 1, "serial \"q\\\"b\\\\\\x01\\xff\"" },
		{ "deny 3-4.4", 1, "deny port 3-4.4" },
		{ "deny port 3-4.4", 1, "deny port 3-4.4" },
		{ "deny id 0bda:*", 1, "deny id 0bda:*" },
		{ "deny serial X", 1, "deny serial X" },
		{ "deny path pci-0000:00:14.0-usb-0:4.4", 1, "deny path pci-0000:00:14.0-usb-0:4.4" },
		{ "", 0, NULL },
		{ "   ", 0, NULL },
		{ "# only a comment", 0, NULL },
		{ "3-x", -1, "'3-x' is neither a port nor a known rule (" PORT_HELP ")" },
		{ "port", -1, "'port' needs a value, e.g. 'port 3-4'" },
		{ "port 3", -1, "'3' is not a USB port (expected BUS-PORT[.PORT...] such as 3-4 or 3-4.1)" },
		{ "3-4 3-5", -1, "unexpected text after the rule; one rule a line" },
		{ "3-4\"\x01", -1, "a quote inside a word; put the whole value in quotes" },
		{ "3-4\x01", -1, "a control byte (0x01) in the line; write such a byte as \\xHH inside double quotes" },
		{ "disk \x01\x1bX", -1, "a control byte (0x01) in the line; write such a byte as \\xHH inside double quotes" },
		{ "serial \x07" "abc", -1, "a control byte (0x07) in the line; write such a byte as \\xHH inside double quotes" },
		{ "serial \"\x07" "abc\"", -1, "a control byte (0x07) in the line; write such a byte as \\xHH inside double quotes" },
		{ "serial \"ab\x7f\"", -1, "a control byte (0x7f) in the line; write such a byte as \\xHH inside double quotes" },
		{ "serial \"\\x07abc\"", 1, "serial \"\\x07abc\"" },
		{ "id", -1, "'id' needs a value, e.g. 'id 046d:c52b'" },
		{ "id 46d:c52b", -1, "'46d:c52b' is not a vendor:product id (expected four hex digits each, such as 046d:c52b, or 046d:* for any product of a vendor)" },
		{ "id 046d:c52g", -1, "'046d:c52g' is not a vendor:product id (expected four hex digits each, such as 046d:c52b, or 046d:* for any product of a vendor)" },
		{ "id 046d:c52", -1, "'046d:c52' is not a vendor:product id (expected four hex digits each, such as 046d:c52b, or 046d:* for any product of a vendor)" },
		{ "id 046d:c52b0", -1, "'046d:c52b0' is not a vendor:product id (expected four hex digits each, such as 046d:c52b, or 046d:* for any product of a vendor)" },
		{ "id 046dxc52b", -1, "'046dxc52b' is not a vendor:product id (expected four hex digits each, such as 046d:c52b, or 046d:* for any product of a vendor)" },
		{ "id +46d:c52b", -1, "'+46d:c52b' is not a vendor:product id (expected four hex digits each, such as 046d:c52b, or 046d:* for any product of a vendor)" },
		{ "id 046d:*0", -1, "'046d:*0' is not a vendor:product id (expected four hex digits each, such as 046d:c52b, or 046d:* for any product of a vendor)" },
		{ "id 046d:+c52", -1, "'046d:+c52' is not a vendor:product id (expected four hex digits each, such as 046d:c52b, or 046d:* for any product of a vendor)" },
		{ "id 046d:0x52", -1, "'046d:0x52' is not a vendor:product id (expected four hex digits each, such as 046d:c52b, or 046d:* for any product of a vendor)" },
		{ "serial \"\\xA0\\xbF\"", 1, "serial \"\\xa0\\xbf\"" },
		{ "serial \"\\x4\"", -1, "unknown escape in quotes (use \\\\, \\\" or \\xHH)" },
		{ "serial \"\\xg0\"", -1, "unknown escape in quotes (use \\\\, \\\" or \\xHH)" },
		{ "serial \"\\x+1\"", -1, "unknown escape in quotes (use \\\\, \\\" or \\xHH)" },
		{ "id *:*", -1, "'*:*' is not a vendor:product id (expected four hex digits each, such as 046d:c52b, or 046d:* for any product of a vendor)" },
		{ "id 046d:c52b id 046d:c52b", -1, "unexpected 'id'; a line is 'serial VALUE [id VID:PID]' or 'id VID:PID'" },
		{ "serial", -1, "'serial' needs a value, e.g. 'serial ABC123'" },
		{ "serial \"\"", -1, "an empty serial matches nothing; leave the line out" },
		{ "serial \"open", -1, "a quoted value is not closed (missing \")" },
		{ "serial \"a\"b", -1, "text right after a closing quote; leave a space" },
		{ "serial \"\\n\"", -1, "unknown escape in quotes (use \\\\, \\\" or \\xHH)" },
		{ "serial \"\\x00\"", -1, "\\x00 cannot be part of a value" },
		{ "serial X id 046d:*", -1, "with a serial, give the full id (VID:PID), or none" },
		{ "serial X port 3-4", -1, "unexpected 'port'; a line is 'serial VALUE [id VID:PID]' or 'id VID:PID'" },
		{ "disk WD_Elements_57584C", 1, "disk WD_Elements_57584C" },
		{ "disk \"WD Elements\" as virtio # the project disk", 1, "disk \"WD Elements\" as virtio" },
		{ "disk X as scsi", 1, "disk X as scsi" },
		{ "deny disk X", 1, "deny disk X" },
		{ "disk", -1, "'disk' needs a value, e.g. 'disk WD-WX12A3456789'" },
		{ "disk \"\"", -1, "an empty serial matches nothing; leave the line out" },
		{ "disk X as", -1, "'as' needs a value, e.g. 'as scsi'" },
		{ "disk X as ide", -1, "'as ide': a disk goes in as scsi or virtio" },
		{ "disk X as \"scsi\"", -1, "'as scsi': a disk goes in as scsi or virtio" },
		{ "disk X as scsi virtio", -1, "unexpected 'virtio'; a line is 'disk SERIAL [as scsi|virtio]' (quote a serial with spaces)" },
		{ "disk WD Elements", -1, "unexpected 'Elements'; a line is 'disk SERIAL [as scsi|virtio]' (quote a serial with spaces)" },
		{ "deny disk X as scsi", -1, "'deny disk' takes a serial alone; 'as' says how a disk is passed, and a denied one is not" },
		{ "path 3-4", -1, "'3-4' is not a USB port path (expected udev's ID_PATH such as pci-0000:00:14.0-usb-0:4; 'pve-usb-hotplug identify' prints it)" },
		{ "path pci-0000:00:14.0-usb-0:", -1, "'pci-0000:00:14.0-usb-0:' is not a USB port path (expected udev's ID_PATH such as pci-0000:00:14.0-usb-0:4; 'pve-usb-hotplug identify' prints it)" },
		{ "path pci--usb-0:4", -1, "'pci--usb-0:4' is not a USB port path (expected udev's ID_PATH such as pci-0000:00:14.0-usb-0:4; 'pve-usb-hotplug identify' prints it)" },
		{ "deny", -1, "'deny' needs a value, e.g. 'deny 3-4.4'" },
		{ "deny deny 3-4", -1, "'deny deny' makes no sense; one 'deny' a rule" },
		{ "deny x", -1, "'x' is not a USB port (expected BUS-PORT[.PORT...] such as 3-4 or 3-4.1)" },
		{ "\"3-4\"", -1, "'3-4' is neither a port nor a known rule (" PORT_HELP ")" },
	};
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct usb_rule rule;
		char err[512] = "", text[2048];
		int r = usbconf_parse_line(cases[i].line, strlen(cases[i].line), &rule, err, sizeof(err));

		if ((r > 0) != (cases[i].result > 0) || (r < 0) != (cases[i].result < 0))
			print_error("line %zu: '%s' gave %d (%s)\n", i, cases[i].line, r, err);
		if (cases[i].result > 0) {
			assert_int_equal(r, 1);
			usbconf_format_rule(&rule, text, sizeof(text));
			assert_string_equal(text, cases[i].text);
			/* what is written back parses to the same rule */
			struct usb_rule again;
			assert_int_equal(usbconf_parse_line(text, strlen(text), &again, err, sizeof(err)), 1);
			again.line = rule.line;
			assert_memory_equal(&again, &rule, sizeof(rule));
		} else if (cases[i].result == 0) {
			assert_int_equal(r, 0);
		} else {
			assert_true(r < 0);
			assert_string_equal(err, cases[i].text);
		}
	}
}

static void test_long_values(void **state)
{
	char line[2 * USB_STRING_MAX], err[512];
	struct usb_rule rule;
	(void)state;

	/* the longest serial a device can have fits; one byte more does not */
	memset(line, 0, sizeof(line));
	strcpy(line, "serial ");
	memset(line + 7, 'A', USB_STRING_MAX - 1);
	assert_int_equal(usbconf_parse_line(line, strlen(line), &rule, err, sizeof(err)), 1);
	assert_int_equal(strlen(rule.serial), USB_STRING_MAX - 1);
	line[7 + USB_STRING_MAX - 1] = 'A';
	assert_true(usbconf_parse_line(line, strlen(line), &rule, err, sizeof(err)) < 0);
	assert_string_equal(err, "a word longer than 383 bytes");
}

static void test_nul_byte(void **state)
{
	struct usb_rule rule;
	char err[256];
	(void)state;

	assert_true(usbconf_parse_line("3-4\0x", 5, &rule, err, sizeof(err)) < 0);
	assert_string_equal(err, "the line contains a NUL byte");
	assert_true(usbconf_parse_line("3-4#\0", 5, &rule, err, sizeof(err)) < 0);
}

static void test_text(void **state)
{
	static const char text[] = "3-4\nnonsense\n\nid 1234:5678\n# c\n7-1";
	struct vm_rules *r;
	(void)state;

	assert_int_equal(usbconf_parse_text(text, sizeof(text) - 1, "x.usb.conf", 100, LOG_LVL_WARNING, &r), 0);
	assert_int_equal(r->n_rules, 3);
	assert_int_equal(r->n_errors, 1);
	assert_int_equal(r->rules[1].line, 4);
	assert_int_equal(r->rules[2].line, 6);
	usbconf_free(r);
}

static struct usb_device_info dev(const char *port, unsigned vid, unsigned pid, const char *serial)
{
	struct usb_device_info d = { .dev_class = 0, .have_ids = true, .vid = vid, .pid = pid };

	assert_int_equal(port_parse(port, &d.port), 0);
	strcpy(d.controller, "pci-0000:00:14.0");
	d.serial_known = serial != NULL;
	if (serial)
		strcpy(d.serial, serial);
	return d;
}

static unsigned score(const char *text, struct usb_device_info d)
{
	struct vm_rules *r;
	unsigned s;

	assert_int_equal(usbconf_parse_text(text, strlen(text), "x", 100, LOG_LVL_WARNING, &r), 0);
	assert_int_equal(r->n_errors, 0);
	s = usbconf_match(r, &d, NULL);
	usbconf_free(r);
	return s;
}

static void test_match(void **state)
{
	static const struct {
		const char *rules;
		const char *port;
		unsigned vid, pid;
		const char *serial; /* NULL: not known (a remove event) */
		unsigned score;
	} cases[] = {
		/* ports: whole numbers, deepest prefix */
		{ "3-4\n3-4.2\n", "3-4.2.1", 1, 1, "", 2 },
		{ "3-4\n3-4.2\n", "3-4.1", 1, 1, "", 1 },
		{ "3-4\n", "3-40", 1, 1, "", 0 },
		{ "3-4\n", "13-4", 1, 1, "", 0 },
		{ "3-4.1\n", "3-4", 1, 1, "", 0 },
		/* path: the same port on either bus of the controller */
		{ "path pci-0000:00:14.0-usb-0:4\n", "3-4.1", 1, 1, "", 1 },
		{ "path pci-0000:00:14.0-usb-0:4\n", "4-4", 1, 1, "", 1 },
		{ "path pci-0000:00:14.0-usb-0:4\n", "3-5", 1, 1, "", 0 },
		{ "path pci-0000:00:1d.0-usb-0:4\n", "3-4", 1, 1, "", 0 },
		/* ids */
		{ "id 046d:c52b\n", "1-1", 0x046d, 0xc52b, "", SCORE_ID },
		{ "id 046d:*\n", "1-1", 0x046d, 0xc52c, "", SCORE_ID_VENDOR },
		{ "id 046d:c52b\n", "1-1", 0x046d, 0xc52c, "", 0 },
		/* serials: exact, with and without an id */
		{ "serial ABC\n", "1-1", 1, 2, "ABC", SCORE_SERIAL },
		{ "serial ABC\n", "1-1", 1, 2, "abc", 0 },
		{ "serial ABC\n", "1-1", 1, 2, "ABC ", 0 },
		{ "serial ABC\n", "1-1", 1, 2, "", 0 },
		{ "serial ABC id 0001:0002\n", "1-1", 1, 2, "ABC", SCORE_SERIAL_ID },
		{ "serial ABC id 0001:0003\n", "1-1", 1, 2, "ABC", 0 },
		{ "serial \"a\\\"b\\x0a\"\n", "1-1", 1, 2, "a\"b\n", SCORE_SERIAL },
		/* specificity: serial > id > any port */
		{ "3-4.1.2.3.4\nid 0001:0002\n", "3-4.1.2.3.4", 1, 2, "S", SCORE_ID },
		{ "id 0001:0002\nserial S\n", "3-4", 1, 2, "S", SCORE_SERIAL },
		/* deny wins inside a file */
		{ "3-4\ndeny 3-4.4\n", "3-4.4.1", 1, 2, "", 0 },
		{ "3-4\ndeny 3-4.4\n", "3-4.3", 1, 2, "", 1 },
		{ "serial S\ndeny 3-4\n", "3-4.3", 1, 2, "S", 0 },
		{ "3-4\ndeny id 0001:*\n", "3-4.3", 1, 2, "", 0 },
		{ "id 0001:*\ndeny serial S\n", "3-4", 1, 2, "S", 0 },
		{ "id 0001:*\ndeny serial S\n", "3-4", 1, 2, "T", SCORE_ID_VENDOR },
		/* serial not known: a serial rule may claim it, a serial deny does not apply */
		{ "serial S\n", "1-1", 1, 2, NULL, SCORE_SERIAL },
		{ "3-4\ndeny serial S\n", "3-4", 1, 2, NULL, 1 },
	};
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		unsigned got = score(cases[i].rules,
				     dev(cases[i].port, cases[i].vid, cases[i].pid, cases[i].serial));

		if (got != cases[i].score)
			print_error("case %zu: %s on %s\n", i, cases[i].rules, cases[i].port);
		assert_int_equal(got, cases[i].score);
	}
}

/* The USB device that carries a disk: a disk rule takes it over (it is
 * then passed as no USB device), a deny disk keeps it on the host. */
static void test_disk_carrier(void **state)
{
	static const struct {
		const char *rules;
		bool mass_storage;
		const char *serial;
		unsigned score;
	} cases[] = {
		{ "disk 57584C\n", true, "57584C", SCORE_DISK },
		{ "disk WD_Elements_57584C\n", true, "57584C", SCORE_DISK },
		{ "disk WD_Elements_57584C-0:0\n", true, "57584C", SCORE_DISK },
		{ "disk WD_Elements_57584C-0:\n", true, "57584C", 0 },
		{ "disk Elements_57584C\n", true, "57584C", SCORE_DISK },
		{ "disk X57584C\n", true, "57584C", 0 },
		{ "disk 57584C\n", true, "57584", 0 },
		{ "disk 57584C\n", false, "57584C", 0 },
		{ "disk 57584C\n", true, NULL, 0 },
		{ "disk _\n", true, "", 0 },
		/* more specific than any other rule for that device */
		{ "3-4\nserial 57584C\ndisk 57584C\n", true, "57584C", SCORE_DISK },
		{ "3-4\ndisk OTHER\n", true, "57584C", 1 },
		{ "3-4\ndeny disk 57584C\n", true, "57584C", 0 },
		{ "3-4\ndeny disk 57584C\n", false, "57584C", 1 },
	};
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct usb_device_info d = dev("3-4", 0x1058, 0x25a2, cases[i].serial);
		unsigned got;

		d.mass_storage = cases[i].mass_storage;
		got = score(cases[i].rules, d);
		if (got != cases[i].score)
			print_error("case %zu: %s\n", i, cases[i].rules);
		assert_int_equal(got, cases[i].score);
	}
}

static void test_strip_lun(void **state)
{
	static const char *const cases[][2] = {
		{ "WD_Elements_57584C-0:0", "WD_Elements_57584C" },
		{ "X-12:3", "X" },
		{ "X-0:", "X-0:" },
		{ "X-:0", "X-:0" },
		{ "X-0:0a", "X-0:0a" },
		{ "X-a:0", "X-a:0" },
		{ "WD-WX12", "WD-WX12" },
		{ "-0:0", "" },
		{ "", "" },
	};
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char s[64];

		strcpy(s, cases[i][0]);
		usbconf_strip_lun(s);
		assert_string_equal(s, cases[i][1]);
	}
}

static void test_disk_match(void **state)
{
	struct disk_serials d = { { "WD_Elements_57584C-0:0", "57584C", "WD_Elements_57584C-0:0", "57584C",
				    "WD_Elements_57584C" } };
	struct disk_serials ata = { { "WDC_WD20_WD-WX12", "WD-WX12", "WD_Elements_57584C-0:0", "57584C",
				      "WDC_WD20_WD-WX12" } };
	struct disk_serials none = { { "", "", NULL, NULL, NULL } };
	static const char text[] = "3-4\ndisk 57584C\ndisk WD-WX12 as virtio\ndeny disk KEEP\n";
	static const char bare[] = "disk WD_Elements_57584C\n";
	const struct usb_rule *rule = NULL;
	struct vm_rules *r;
	(void)state;

	assert_int_equal(usbconf_parse_text(text, strlen(text), "x", 100, LOG_LVL_WARNING, &r), 0);
	assert_true(usbconf_has_disk_rules(r, false));
	assert_int_equal(usbconf_disk_match(r, &d, &rule), SCORE_DISK);
	assert_int_equal(rule->line, 2);
	assert_int_equal(usbconf_disk_match(r, &ata, &rule), SCORE_DISK);
	assert_int_equal(rule->line, 2); /* its USB serial comes first in the file */
	ata.s[2] = ata.s[3] = NULL;
	assert_int_equal(usbconf_disk_match(r, &ata, &rule), SCORE_DISK);
	assert_int_equal(rule->disk_as, DISK_AS_VIRTIO);
	assert_int_equal(usbconf_disk_match(r, &none, NULL), 0);
	d.s[1] = "KEEP";
	assert_int_equal(usbconf_disk_match(r, &d, NULL), 0);
	assert_int_equal(usbconf_disk_denied(r, &d)->line, 4);
	usbconf_free(r);

	/* ID_SERIAL with or without udev's LUN */
	assert_int_equal(usbconf_parse_text(bare, strlen(bare), "x", 100, LOG_LVL_WARNING, &r), 0);
	d.s[1] = "57584C";
	assert_int_equal(usbconf_disk_match(r, &d, NULL), SCORE_DISK);
	usbconf_free(r);

	assert_int_equal(usbconf_parse_text("deny disk X\n3-4\n", 16, "x", 100, LOG_LVL_WARNING, &r), 0);
	assert_false(usbconf_has_disk_rules(r, false));
	assert_true(usbconf_has_disk_rules(r, true)); /* a deny disk is a disk rule too */
	usbconf_free(r);
}

static void test_quote(void **state)
{
	char buf[64];
	(void)state;

	usbconf_quote("ABC123", buf, sizeof(buf));
	assert_string_equal(buf, "ABC123");
	usbconf_quote("a b", buf, sizeof(buf));
	assert_string_equal(buf, "\"a b\"");
	usbconf_quote("#\"\\\n\xc3", buf, sizeof(buf));
	assert_string_equal(buf, "\"#\\\"\\\\\\x0a\\xc3\"");
	usbconf_quote("", buf, sizeof(buf));
	assert_string_equal(buf, "\"\"");
	usbconf_quote("a b c d e f g h", buf, 8); /* cut, still closed */
	assert_string_equal(buf, "\"a b c\"");
}

static void test_vmid(void **state)
{
	unsigned long v;
	(void)state;

	assert_int_equal(usbconf_parse_vmid("100", &v), 0);
	assert_int_equal(v, 100);
	assert_int_equal(usbconf_parse_vmid("999999999", &v), 0);
	assert_true(usbconf_parse_vmid("99", &v) < 0);
	assert_true(usbconf_parse_vmid("1000000000", &v) < 0);
	assert_true(usbconf_parse_vmid("0100", &v) < 0);
	assert_true(usbconf_parse_vmid("100a", &v) < 0);
	assert_true(usbconf_parse_vmid("../100", &v) < 0);
	assert_true(usbconf_parse_vmid("", &v) < 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lines),
		cmocka_unit_test(test_long_values),
		cmocka_unit_test(test_nul_byte),
		cmocka_unit_test(test_text),
		cmocka_unit_test(test_match),
		cmocka_unit_test(test_disk_carrier),
		cmocka_unit_test(test_strip_lun),
		cmocka_unit_test(test_disk_match),
		cmocka_unit_test(test_quote),
		cmocka_unit_test(test_vmid),
	};
	log_setup(LOG_LVL_ERROR, NULL, 0);
	return cmocka_run_group_tests_name("usbconf", tests, NULL, NULL);
}
