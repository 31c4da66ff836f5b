"""End-to-end tests, area hookscript (`make check-e2e AREA=hookscript` runs it alone): Proxmox's
hookscript phases: post-start attaches, pre-start checks."""

from .harness import Case


class Hookscript(Case):
    def test_post_start_attaches_through_two_hub_levels_on_xhci(self):
        g = self.guest(100)
        self.tool.usb_conf(100, "3-4\n")
        self.host.hub("3-4")
        self.host.plug("3-4.1", 0x046D, 0xC52B, product="Receiver")
        self.host.hub("3-4.2")
        self.host.plug("3-4.2.3", 0x0951, 0x1666)
        self.host.hub("3-4.2.4")
        self.host.plug("3-4.2.4.1", 0x1A86, 0x7523)
        self.host.plug("3-5", 0x0781, 0x5581)         # not configured
        r = self.ok(self.tool.run(["100", "post-start"], host=self.host))
        self.assertEqual(g.ports(), ["3-4.1", "3-4.2.3", "3-4.2.4.1"])
        hosts = g.usb_hosts()
        # port 15 of Proxmox's xhci, then the tool's own controller
        self.assertEqual(hosts["usbhost3-4.1"], {"hostbus": 3, "hostport": "4.1", "bus": "xhci.0"})
        self.assertEqual(hosts["usbhost3-4.2.4.1"], {"hostbus": 3, "hostport": "4.2.4.1", "bus": "usbhotplug-xhci0.0"})
        self.assertIn("VM 100: added 3-4.1 (046d:c52b \"Receiver\") as usbhost3-4.1 on xhci.0 port 15", r.stdout)
        self.assertEqual(r.stdout.count(" as usbhost"), 3, r.stdout)

    def test_two_digit_bus_and_ports(self):
        g = self.guest(100)
        self.tool.usb_conf(100, "11-12\n")
        self.host.hub("11-12")
        self.host.plug("11-12.10", 0x1111, 0x2222)
        self.host.plug("11-1", 0x1111, 0x3333)
        self.host.plug("1-12", 0x1111, 0x4444)
        self.ok(self.tool.run(["100", "post-start"], host=self.host))
        self.assertEqual(g.usb_hosts(), {"usbhost11-12.10": {"hostbus": 11, "hostport": "12.10", "bus": "xhci.0"}})

    def test_prefix_matches_whole_port_numbers_only(self):
        g = self.guest(100)
        self.tool.usb_conf(100, "3-4\n3-1\n")
        self.host.plug("3-40", 0x1, 0x1)
        self.host.hub("3-41")
        self.host.plug("3-41.2", 0x1, 0x2)
        self.host.plug("3-14", 0x1, 0x3)
        self.host.plug("3-4", 0x1, 0x4)
        self.ok(self.tool.run(["100", "post-start"], host=self.host))
        self.assertEqual(g.ports(), ["3-4"])

    def test_post_start_twice_attaches_once(self):
        g = self.guest(100)
        self.tool.usb_conf(100, "3-4\n")
        self.host.hub("3-4")
        self.host.plug("3-4.1")
        self.host.plug("3-4.2")
        self.ok(self.tool.run(["100", "post-start"], host=self.host))
        r = self.ok(self.tool.run(["100", "post-start"], host=self.host))
        self.assertIn("already attached as usbhost3-4.1", r.stdout)
        self.assertEqual(g.ports(), ["3-4.1", "3-4.2"])

    def test_malformed_line_is_named_and_the_rest_works(self):
        g = self.guest(100)
        conf = self.tool.usb_conf(100, "# desk hub\n\n3-4   # keyboard\n3-x\nport 5-1\n5-2 5-3\n")
        self.host.plug("3-4")
        self.host.plug("5-1")
        self.host.plug("5-2")
        r = self.ok(self.tool.run(["100", "post-start"], host=self.host))
        self.assertIn("%s:4: '3-x' is neither a port nor a known rule (expected a port such as 3-4 or 3-4.1, or port, path, id, serial, disk, deny); line ignored" % conf, r.stderr)
        self.assertIn("%s:6: unexpected text after the rule; one rule a line; line ignored" % conf, r.stderr)
        self.assertEqual(g.ports(), ["3-4", "5-1"])

    def test_pre_start_warns_but_never_fails(self):
        conf = self.tool.usb_conf(100, "3-4\nbogus\n")
        r = self.ok(self.tool.run(["100", "pre-start"]))
        self.assertIn("%s:2: 'bogus' is neither a port" % conf, r.stderr)
        self.assertIn("%s: 1 bad line(s), 1 good rule(s); fix the lines named above" % conf, r.stderr)
        with open(self.tool.config, "a") as f:
            f.write("bogus = 1\n")
        r = self.ok(self.tool.run(["100", "pre-start"]))
        self.assertIn("USB hot-plug will not work until then", r.stderr)

    def test_other_phases_and_vm_without_conf_do_nothing(self):
        g = self.guest(100)
        self.host.plug("3-4")
        for phase in ("pre-stop", "post-stop", "post-start"):
            r = self.ok(self.tool.run(["100", phase], host=self.host))
            self.assertEqual(r.stdout + r.stderr, "")
        self.assertEqual(g.ports(), [])

    def test_post_start_of_a_stopped_vm_fails_with_a_message(self):
        self.tool.usb_conf(100, "3-4\n")
        self.host.plug("3-4")
        r = self.failed(self.tool.run(["100", "post-start"], host=self.host))
        self.assertIn("VM 100 is not running (no QMP socket at %s/100.qmp)" % self.tool.qmp_dir, r.stderr)
