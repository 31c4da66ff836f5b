/* libFuzzer: the configuration files as any bytes: a .usb.conf (every rule
 * that parses must read back, through usbconf_format_rule, to a line that
 * parses to the same rule), a Proxmox VM config, the tool's INI file. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "policy/pveconf.h"
#include "base/settings.h"
#include "policy/usbconf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pve_mappings maps;
	struct usb_device_info dev = { .have_ids = true, .vid = 0x046d, .pid = 0xc52b,
				       .serial_known = true, .serial = "ABC" };
	struct vm_rules *r;
	struct pve_vm pve;
	struct settings s;
	char *text;

	log_setup(LOG_LVL_ERROR, NULL, 0);
	/* as /etc/pve/mapping/usb.cfg */
	if (pveconf_mappings_parse((const char *)data, size, "fuzz", "pve", LOG_LVL_DEBUG, &maps) == 0)
		pveconf_mappings_free(&maps);
	if (usbconf_parse_text((const char *)data, size, "fuzz", 100, LOG_LVL_DEBUG, &r) < 0)
		return 0;
	port_parse("3-4.1", &dev.port);
	strcpy(dev.controller, "pci-0000:00:14.0");
	(void)usbconf_match(r, &dev, NULL);
	for (size_t i = 0; i < r->n_rules; i++) {
		char text[USB_STRING_MAX * 4 + 64], err[512];
		struct usb_rule again;

		usbconf_format_rule(&r->rules[i], text, sizeof(text));
		if (usbconf_parse_line(text, strlen(text), &again, err, sizeof(err)) != 1)
			abort();
		again.line = r->rules[i].line;
		if (memcmp(&again, &r->rules[i], sizeof(again)) != 0)
			abort();
	}
	usbconf_free(r);
	/* the same bytes as a Proxmox VM config */
	pveconf_parse_text((const char *)data, size, &pve);
	(void)pveconf_passes(&pve, &dev);
	text = malloc(size + 1);
	if (text) {
		memcpy(text, data, size);
		text[size] = '\0';
		(void)settings_load_string(&s, text, "fuzz.conf");
		free(text);
	}
	return 0;
}
