# pve-usb-hotplug
#
#   make            build build/pve-usb-hotplug
#   make check      install what the tests need (Debian), run every test
#                   (the e2e suite against QEMU 7.2, trixie's QEMU 10 and
#                   trixie-backports' QEMU 11)
#   make check-e2e AREA=disks
#                   one area of the e2e suite, tests/e2e/test_disks.py (or
#                   several: AREA="disks rules"; also for check-e2e-qemu10/11)
#   make demo       run the whole thing on a simulated host against real QEMU
#   make install    DESTDIR=... PREFIX=/usr
#   SANITIZE=1      build and test with AddressSanitizer + UBSan (in build/asan)
#   WERROR=1        warnings are errors (CI)

VERSION := $(shell sed -n '1s/.*(\(.*\)).*/\1/p' debian/changelog 2>/dev/null || echo 0)

PREFIX ?= /usr
SBINDIR ?= $(PREFIX)/sbin
MANDIR ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
UDEVDIR ?= /usr/lib/udev
SNIPPETSDIR ?= /var/lib/vz/snippets
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system

CC ?= cc
PKGS := jansson libudev inih
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS = $(shell pkg-config --libs $(PKGS))

WARN := -Wall -Wextra -Wshadow -Wformat=2 -Wformat-truncation=1 -Wstrict-prototypes \
	-Wmissing-prototypes -Wpointer-arith -Wwrite-strings -Wundef -Wvla \
	-Wnull-dereference -Wcast-qual -Wimplicit-fallthrough -Wmissing-declarations
CFLAGS ?= -O2 -g
CPPFLAGS += -Isnippets-src -D_GNU_SOURCE -DVERSION='"$(VERSION)"'
ALL_CFLAGS = -std=gnu11 $(WARN) $(CFLAGS) $(PKG_CFLAGS)

ifeq ($(WERROR),1)
ALL_CFLAGS += -Werror
endif

ifeq ($(SANITIZE),1)
BUILD ?= build/asan
ALL_CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=address,undefined
# ASan wraps the XDR calls and looks for the real ones when it starts; libvirt
# (loaded later, for libvirt domains) takes them from libtirpc, so that must
# be there from the start, or a wrapper calls NULL (measured: libvirt 9).
TIRPC := $(firstword $(wildcard /usr/lib/*/libtirpc.so.3 /lib/*/libtirpc.so.3))
TIRPC_LINK := -Wl,--no-as-needed $(TIRPC) -Wl,--as-needed
LDFLAGS += $(if $(TIRPC),$(TIRPC_LINK))
else
BUILD ?= build
ALL_CFLAGS += -D_FORTIFY_SOURCE=2 -fstack-protector-strong
endif

# snippets-src/<layer>/<module>.c; main.c alone at the top
SRC := $(wildcard snippets-src/*/*.c)
HDR := $(wildcard snippets-src/*/*.h)
OBJ := $(SRC:snippets-src/%.c=$(BUILD)/obj/%.o)
LIB := $(BUILD)/libpveusb.a
BIN := $(BUILD)/pve-usb-hotplug

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all check check-unit check-e2e check-lxc check-e2e-qemu10 check-e2e-qemu11 check-valgrind check-deb check-realhost bench-realhost deb demo deps install clean fuzz bench
all: $(BIN)

$(BUILD)/obj/%.o: snippets-src/%.c $(HDR) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -c -o $@ $<

$(LIB): $(OBJ)
	$(AR) rcs $@ $^

$(BIN): $(BUILD)/obj/main.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

# test_vmproc serves a FUSE file system of its own (a server that stops answering)
$(BUILD)/tests/test_vmproc: TEST_PKGS = fuse3

$(BUILD)/tests/%: tests/unit/%.c $(LIB) $(HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -Isnippets-src $(shell pkg-config --cflags cmocka $(TEST_PKGS)) \
		-o $@ $< $(LIB) $(LDFLAGS) $(PKG_LIBS) $(shell pkg-config --libs cmocka $(TEST_PKGS))

deps:
	@tests/deps.sh

# Unit tests, then the end-to-end suite against Debian 12's QEMU 7.2, against
# trixie's QEMU 10 (Proxmox VE 9's base; tests/trixie.sh makes it) and against
# trixie-backports' QEMU 11 (as in Proxmox VE 9.2; tests/qemu11.sh makes it).
check: deps
	$(MAKE) check-unit check-e2e check-e2e-qemu10 check-e2e-qemu11

check-unit: $(UNIT_BIN)
	@fail=0; for t in $(UNIT_BIN); do $$t || fail=1; done; exit $$fail

# a test tool, built plain: it runs under umockdev's preload library
$(BUILD)/tests/umockdev-plug: tests/helpers/umockdev-plug.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -g $(WARN) $(if $(filter 1,$(WERROR)),-Werror) $(shell pkg-config --cflags umockdev-1.0) \
		-o $@ $< $(shell pkg-config --libs umockdev-1.0)

# The whole suite with every run of the program (and of the unit tests)
# under valgrind: no errors, no leaks.
check-valgrind: $(UNIT_BIN) $(BIN) $(BUILD)/tests/umockdev-plug
	@command -v valgrind >/dev/null || { echo "Installing: valgrind"; $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -qq valgrind >/dev/null; }
	@fail=0; for t in $(UNIT_BIN); do valgrind -q --error-exitcode=99 --leak-check=full \
		--errors-for-leak-kinds=definite,indirect $$t >/dev/null || fail=1; done; exit $$fail
	PUH_VALGRIND=1 python3 tests/e2e/run.py --binary $(BIN) --plug $(BUILD)/tests/umockdev-plug $(AREA)

check-e2e: $(BIN) $(BUILD)/tests/umockdev-plug
	python3 tests/e2e/run.py --binary $(BIN) --plug $(BUILD)/tests/umockdev-plug $(AREA)

# Containers: a real LXC container (as root), see tests/lxc/run.py
check-lxc: $(BIN)
	python3 tests/lxc/run.py --binary $(BIN)

check-e2e-qemu10: $(BIN) $(BUILD)/tests/umockdev-plug
	@tests/trixie.sh
	PUH_QEMU=$(CURDIR)/.trixie-qemu10 python3 tests/e2e/run.py --binary $(BIN) --plug $(BUILD)/tests/umockdev-plug $(AREA)

check-e2e-qemu11: $(BIN) $(BUILD)/tests/umockdev-plug
	@tests/qemu11.sh
	PUH_QEMU=$(CURDIR)/.qemu11 python3 tests/e2e/run.py --binary $(BIN) --plug $(BUILD)/tests/umockdev-plug $(AREA)

demo: deps
	$(MAKE) $(BIN)
	python3 tests/demo.py --binary $(BIN)

# What an event costs, next to the bare QMP exchange (needs root: it mounts
# the simulated /sys in a private mount namespace). Not a test: figures.
$(BUILD)/bench/%: tests/bench/%.c
	@mkdir -p $(dir $@)
	$(CC) -O2 $(WARN) -o $@ $<

bench: deps $(BIN) $(BUILD)/bench/bare-qmp $(BUILD)/bench/maxrss
	@command -v valgrind >/dev/null || { echo "Installing: valgrind"; apt-get install -y -qq valgrind >/dev/null; }
	python3 tests/bench/bench.py --binary $(BIN) --bare $(BUILD)/bench/bare-qmp \
		--maxrss $(BUILD)/bench/maxrss $(if $(RUNS),--runs $(RUNS))

# Fuzzing (libFuzzer, clang) of the rules parser, the uevent parser and
# the QMP reader, each for FUZZ_SECONDS, from the seeds in tests/fuzz/corpus.
# A crash fails the target and leaves its input in build/fuzz/.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := rules uevent qmp hint qom domxml
FUZZ_CC ?= clang
FUZZ_FLAGS := -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_OBJ := $(SRC:snippets-src/%.c=build/fuzz/obj/%.o)
.SECONDARY: $(FUZZ_OBJ)

build/fuzz/obj/%.o: snippets-src/%.c $(HDR) Makefile
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS) -std=gnu11 -Wall -Wextra -Werror $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link \
		$(PKG_CFLAGS) -c -o $@ $<

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_OBJ)
	$(FUZZ_CC) $(CPPFLAGS) -std=gnu11 -Wall -Wextra -Werror $(FUZZ_FLAGS) -fsanitize=fuzzer \
		-Isnippets-src $(PKG_CFLAGS) -o $@ $< $(FUZZ_OBJ) $(PKG_LIBS)

fuzz:
	@WITH_FUZZ=1 tests/deps.sh
	$(MAKE) $(FUZZ_TARGETS:%=build/fuzz/fuzz_%)
	@for t in $(FUZZ_TARGETS); do \
		mkdir -p build/fuzz/corpus-$$t; \
		echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
		build/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -max_len=8192 -timeout=10 \
			-artifact_prefix=build/fuzz/$$t- -print_final_stats=1 \
			build/fuzz/corpus-$$t tests/fuzz/corpus/$$t 2>build/fuzz/$$t.log \
			|| { tail -40 build/fuzz/$$t.log; exit 1; }; \
		grep -E "stat::number_of_executed_units|Done" build/fuzz/$$t.log | tail -2; \
	done

# The Debian package, into build/deb/ (dpkg-buildpackage writes to ..).
deb:
	@WITH_DEB_TOOLS=1 tests/deps.sh
	dpkg-buildpackage -b -us -uc $(DEB_FLAGS)
	rm -rf build/deb && mkdir -p build/deb
	mv ../pve-usb-hotplug_$(VERSION)_* ../pve-usb-hotplug-dbgsym_$(VERSION)_* build/deb/ 2>/dev/null || true
	ls build/deb/*.deb

# Builds the package (its build runs no tests: check did) and tests it: contents,
# metadata, lintian, an install into a scratch root.
check-deb:
	$(MAKE) deb DEB_FLAGS="--build-profiles=nocheck" DEB_BUILD_OPTIONS=nocheck
	@tests/trixie.sh
	TRIXIE_ROOT=$(CURDIR)/.trixie tests/deb/test-deb.sh build/deb/pve-usb-hotplug_$(VERSION)_*.deb

# The real-host suite (slow: it boots a VM under TCG): the .deb installed in a
# VM with Debian's kernel and the stock systemd-udevd, devices plugged in
# through the outer QEMU, inner VMs laid out as Proxmox lays them out.
check-realhost:
	@WITH_REALHOST=1 tests/deps.sh
	$(MAKE) deb DEB_FLAGS="--build-profiles=nocheck" DEB_BUILD_OPTIONS=nocheck
	python3 tests/realhost/run.py --deb build/deb/pve-usb-hotplug_$(VERSION)_amd64.deb

# Plug-to-open and unplug-to-gone latency in the real-host test bed (figures
# for the README, not a test): a keyboard (the bed's kernel binds usbhid to
# it) and a smartcard reader (no host driver), with the listener; BENCH_ARGS
# adds options (--no-listener, --kernel-args rcupdate.rcu_expedited=1).
BENCH_DEVICES ?= usb-kbd usb-ccid
bench-realhost:
	@WITH_REALHOST=1 tests/deps.sh
	$(MAKE) deb DEB_FLAGS="--build-profiles=nocheck" DEB_BUILD_OPTIONS=nocheck
	for d in $(BENCH_DEVICES); do \
		python3 tests/realhost/bench.py --deb build/deb/pve-usb-hotplug_$(VERSION)_amd64.deb \
			--device $$d $(if $(PLUGS),--plugs $(PLUGS)) $(BENCH_ARGS) || exit 1; \
	done

install: $(BIN)
	install -D -m 0755 $(BIN) $(DESTDIR)$(SBINDIR)/pve-usb-hotplug
	install -D -m 0644 doc/pve-usb-hotplug.8 $(DESTDIR)$(MANDIR)/man8/pve-usb-hotplug.8
	install -D -m 0644 udev/60-pve-usb-hotplug.rules $(DESTDIR)$(UDEVDIR)/rules.d/60-pve-usb-hotplug.rules
	install -D -m 0644 udev/pve-usb-hotplug@.service $(DESTDIR)$(SYSTEMDUNITDIR)/pve-usb-hotplug@.service
	install -D -m 0644 udev/pve-usb-hotplug.service $(DESTDIR)$(SYSTEMDUNITDIR)/pve-usb-hotplug.service
	install -D -m 0644 pve-conf-examples/pve-usb-hotplug.conf $(DESTDIR)$(SYSCONFDIR)/pve-usb-hotplug.conf
	install -D -m 0644 debian/pve-usb-hotplug.tmpfiles $(DESTDIR)$(TMPFILESDIR)/pve-usb-hotplug.conf
	install -d $(DESTDIR)$(SNIPPETSDIR)
	ln -sf $(SBINDIR)/pve-usb-hotplug $(DESTDIR)$(SNIPPETSDIR)/pve-usb-hotplug

clean:
	rm -rf build
