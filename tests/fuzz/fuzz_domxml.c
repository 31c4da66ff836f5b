/* libFuzzer: a libvirt domain's XML as any bytes (libvirtd writes it, but a
 * parser never trusts its input): the tool's hostdevs found in it, whether
 * its own XML passes a device, the xHCI port picked for the next one, the
 * tool's disks and the next disk name, each within bounds. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "guests/domxml.h"
#include "guests/vdisk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct usb_device_info dev = { .have_ids = true, .vid = 0x046d, .pid = 0xc52b, .devnum = 5 };
	struct xhci_set set;
	unsigned bus, port;
	char *xml = malloc(size + 1);

	if (!xml)
		return 0;
	memcpy(xml, data, size);
	xml[size] = '\0';
	assert(domxml_held(xml, &set) == 0);
	assert(set.n == 0 && set.n_devs <= XHCI_MAX_DEVS);
	for (size_t i = 0; i < set.n_devs; i++)
		assert(set.devs[i].ctrl == XHCI_NO_CTRL && set.devs[i].vid <= 0xffff);
	if (port_parse("3-4.1", &dev.port) == 0)
		(void)domxml_passes(xml, &dev);
	for (int ss = 0; ss < 2; ss++)
		if (domxml_pick_port(xml, ss, &bus, &port) == 0)
			assert(bus <= 255 && port >= 1 && port <= XHCI_MAX_PORTS);

	static struct vdisk_set disks;
	char name[8];
	bool scsi;

	assert(domxml_disks(xml, &disks, &scsi) == 0 && disks.n <= VDISK_MAX);
	for (size_t i = 0; i < disks.n; i++)
		assert(strlen(disks.d[i].id) < sizeof(disks.d[i].id) && strncmp(disks.d[i].id, "usbdisk-", 8) == 0);
	if (domxml_pick_target(xml, "sd", name, sizeof(name)) == 0)
		assert(strlen(name) == 3 || strlen(name) == 4);
	free(xml);
	return 0;
}
