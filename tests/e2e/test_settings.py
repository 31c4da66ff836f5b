"""End-to-end tests, area settings (`make check-e2e AREA=settings` runs it alone): the settings file,
the command line, and `check` of the rules files."""
import os
import re
import shutil

from .harness import Case


class Settings(Case):
    def test_bad_settings_name_file_and_line(self):
        self.tool.write_settings(extra="[qmp]\ntimeout_ms = soon\n[paths]\ncolour = blue\n")
        self.tool.usb_conf(100, "3-4\n")
        r = self.failed(self.tool.run(["100", "post-start"]))
        self.assertEqual(r.returncode, 2)
        self.assertIn("%s:13: timeout_ms must be a whole number of milliseconds from 10 to 600000 (got 'soon')" % self.tool.config, r.stderr)
        self.assertIn("%s:15: unknown key 'colour' in section [paths]" % self.tool.config, r.stderr)

    def test_help_and_version_and_usage(self):
        r = self.ok(self.tool.run(["--help"]))
        self.assertIn("pve-usb-hotplug VMID PHASE", r.stdout)
        r = self.ok(self.tool.run(["--version"]))
        self.assertRegex(r.stdout, r"^pve-usb-hotplug \d+\.\d+")
        r = self.tool.run(["1", "post-start"])
        self.assertEqual(r.returncode, 2)
        self.assertIn("'1' is not a VM id", r.stderr)
        self.assertEqual(self.tool.run(["a"]).returncode, 2)


class Check(Case):
    def test_check_reports_every_bad_line_and_fails(self):
        a = self.tool.usb_conf(100, "3-4\n")
        b = self.tool.usb_conf(101, "3-4\nport\n3-4.x\n")
        r = self.failed(self.tool.run(["check"]))
        self.assertIn("%s: 1 rule(s), all valid" % a, r.stdout)
        self.assertIn("%s:2: 'port' needs a value, e.g. 'port 3-4'; line ignored" % b, r.stderr)
        self.assertIn("%s:3: '3-4.x' is neither a port" % b, r.stderr)
        self.assertIn("%s: 2 bad line(s), 1 good rule(s)" % b, r.stderr)
        self.ok(self.tool.run(["check", "100"]))
        r = self.failed(self.tool.run(["check", "102"]))
        self.assertIn("VM 102 has no %s/102.usb.conf" % self.tool.vm_dir, r.stderr)

    def test_files_that_are_not_plain_text_files_are_refused(self):
        g = self.guest(100)
        self.host.plug("3-4")
        elsewhere = os.path.join(self.dir, "elsewhere.conf")
        with open(elsewhere, "w") as f:
            f.write("3-4\n")
        link = os.path.join(self.tool.vm_dir, "100.usb.conf")
        os.symlink(elsewhere, link)
        r = self.failed(self.tool.run(["check", "100"]))
        self.assertIn("%s: is a symbolic link; write the rules into the file itself" % link, r.stderr)
        self.ok(self.tool.run(["100", "post-start"], host=self.host))
        self.assertEqual(g.ports(), [])      # nothing from a linked file
        os.unlink(link)
        with open(link, "w") as f:
            f.write("#" * (1024 * 1024 + 1))
        r = self.failed(self.tool.run(["check", "100"]))
        self.assertIn("%s: larger than the 1048576 bytes a rules file may have" % link, r.stderr)
        os.unlink(link)
        os.mkdir(link)
        r = self.failed(self.tool.run(["check", "100"]))
        self.assertIn("%s: not a regular file" % link, r.stderr)
        os.unlink(self.tool.config)
        os.mkdir(self.tool.config)
        r = self.tool.run(["100", "post-start"])
        self.assertEqual(r.returncode, 2)
        self.assertIn("%s: not a regular file" % self.tool.config, r.stderr)

    def test_shipped_examples_are_valid(self):
        examples = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "pve-conf-examples")
        shutil.copy(os.path.join(examples, "100.usb.conf"), self.tool.vm_dir)
        shutil.copy(os.path.join(examples, "100.conf"), self.tool.vm_dir)
        # the shipped settings file as it is, then only the paths pointed here
        with open(os.path.join(examples, "pve-usb-hotplug.conf")) as f:
            shipped = f.read()
        with open(self.tool.config) as f:
            ours = f.read()
        with open(self.tool.config, "w") as f:
            f.write(shipped + "\n" + ours)
        r = self.ok(self.tool.run(["check"]))
        self.assertIn("%s: valid" % self.tool.config, r.stdout)
        self.assertIn("100.usb.conf: 8 rule(s), all valid", r.stdout)
        self.assertEqual(r.stderr, "")
        with open(os.path.join(examples, "100.conf")) as f:
            self.assertIn("\nhookscript: local:snippets/pve-usb-hotplug\n", f.read())

    def test_control_bytes_and_unknown_keyless_sections_are_named(self):
        a = self.tool.usb_conf(100, "disk \x01\x1bX\nserial \x07abc\nserial \"\\x07abc\"\n")
        r = self.failed(self.tool.run(["check", "100"]))
        for line, byte in ((1, "01"), (2, "07")):
            self.assertIn("%s:%d: a control byte (0x%s) in the line; write such a byte as \\xHH inside double quotes; line ignored"
                          % (a, line, byte), r.stderr)
        self.assertIn("%s: 2 bad line(s), 1 good rule(s)" % a, r.stderr)
        # a typo of the keyless [xen NAME]: the guest would never get a device
        self.tool.usb_conf(100, "3-4\n")
        self.tool.write_settings(extra="[xem win11]\n")
        r = self.failed(self.tool.run(["check"]))
        self.assertRegex(r.stderr, re.escape(self.tool.config) + r":\d+: unknown section \[xem win11\]; known: \[paths\], ")
