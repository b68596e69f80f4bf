# SPDX-License-Identifier: BSD-3-Clause
# vfdma top-level Makefile.  ./configure first; then:
#   make              library, programs
#   make check        every test tier; ends with "N passed, N failed, N skipped"
#   make check-unit   the fast unit tier only
#   make check-dpdk   the DPDK integration tier only
#   make check-vm     the QEMU guest tier only
#   make demo         the example NVMe driver and vfdmactl in the test VM, both backends
#   make install      honours PREFIX and DESTDIR

include mk/common.mk

PREFIX ?= $(CONFIG_PREFIX)
DESTDIR ?=
APPS := $(patsubst app/%/Makefile,%,$(wildcard app/*/Makefile))
TIERS := unit build sim dpdk vm

export VFDMA_ROOT
export VFDMA_BUILD := $(BUILD)

.PHONY: all lib app unit-tests sim-tests dpdk-tests check check-unit check-build check-sim \
	check-dpdk check-vm demo \
	install uninstall clean distclean bench
all: lib app

lib:
	$(Q)$(MAKE) --no-print-directory -C lib
ifeq ($(CONFIG_DPDK),y)
	$(Q)$(MAKE) --no-print-directory -C lib/dpdk
endif

app: lib
	$(Q)for a in $(APPS); do $(MAKE) --no-print-directory -C app/$$a || exit 1; done

unit-tests: lib
ifeq ($(CONFIG_GTEST),y)
	$(Q)$(MAKE) --no-print-directory -C test/unit
endif

sim-tests: lib
ifeq ($(CONFIG_GTEST),y)
	$(Q)$(MAKE) --no-print-directory -C test/sim
endif

dpdk-tests: lib
ifeq ($(CONFIG_DPDK)$(CONFIG_GTEST),yy)
	$(Q)$(MAKE) --no-print-directory -C test/dpdk
endif

check: all unit-tests sim-tests dpdk-tests
	$(Q)bash test/run-tiers.sh $(TIERS)

check-unit: lib unit-tests
	$(Q)bash test/run-tiers.sh unit

check-build: all
	$(Q)bash test/run-tiers.sh build

check-sim: all sim-tests
	$(Q)bash test/run-tiers.sh sim

check-dpdk: all dpdk-tests
	$(Q)bash test/run-tiers.sh dpdk

check-vm: all
	$(Q)bash test/run-tiers.sh vm

demo: all
	$(Q)bash test/vm/demo.sh

bench: all
	$(Q)$(BUILD)/bin/vfdma_bench iova

install: all
	@echo "  INSTALL $(DESTDIR)$(PREFIX)"
	$(Q)install -d $(DESTDIR)$(PREFIX)/include/vfdma $(DESTDIR)$(PREFIX)/lib/pkgconfig
	$(Q)install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/share/man/man8
	$(Q)install -m 755 $(BUILD)/bin/vfdmactl $(DESTDIR)$(PREFIX)/sbin/
	$(Q)install -m 644 app/vfdmactl/vfdmactl.8 $(DESTDIR)$(PREFIX)/share/man/man8/
	$(Q)install -m 644 include/vfdma/*.h $(DESTDIR)$(PREFIX)/include/vfdma/
	$(Q)install -m 644 $(BUILD)/lib/libvfdma.a $(DESTDIR)$(PREFIX)/lib/
	$(Q)install -m 755 $(BUILD)/lib/libvfdma.so.*.* $(DESTDIR)$(PREFIX)/lib/
	$(Q)cp -P $(BUILD)/lib/libvfdma.so $(BUILD)/lib/libvfdma.so.[0-9] $(DESTDIR)$(PREFIX)/lib/
	$(Q)sed -e 's|^prefix=.*|prefix=$(PREFIX)|' $(BUILD)/lib/pkgconfig/libvfdma.pc \
		> $(DESTDIR)$(PREFIX)/lib/pkgconfig/libvfdma.pc
	$(Q)chmod 644 $(DESTDIR)$(PREFIX)/lib/pkgconfig/libvfdma.pc
ifeq ($(CONFIG_DPDK),y)
	$(Q)install -m 644 $(BUILD)/lib/libvfdma_dpdk.a $(DESTDIR)$(PREFIX)/lib/
	$(Q)install -m 755 $(BUILD)/lib/libvfdma_dpdk.so.*.* $(DESTDIR)$(PREFIX)/lib/
	$(Q)cp -P $(BUILD)/lib/libvfdma_dpdk.so $(BUILD)/lib/libvfdma_dpdk.so.[0-9] $(DESTDIR)$(PREFIX)/lib/
	$(Q)sed -e 's|^prefix=.*|prefix=$(PREFIX)|' $(BUILD)/lib/pkgconfig/libvfdma_dpdk.pc \
		> $(DESTDIR)$(PREFIX)/lib/pkgconfig/libvfdma_dpdk.pc
	$(Q)chmod 644 $(DESTDIR)$(PREFIX)/lib/pkgconfig/libvfdma_dpdk.pc
endif

uninstall:
	@echo "  UNINSTALL $(DESTDIR)$(PREFIX)"
	$(Q)rm -f $(addprefix $(DESTDIR)$(PREFIX)/include/vfdma/,$(notdir $(wildcard include/vfdma/*.h)))
	$(Q)rmdir $(DESTDIR)$(PREFIX)/include/vfdma 2>/dev/null || true
	$(Q)rm -f $(DESTDIR)$(PREFIX)/sbin/vfdmactl $(DESTDIR)$(PREFIX)/share/man/man8/vfdmactl.8
	$(Q)rm -f $(DESTDIR)$(PREFIX)/lib/libvfdma.a $(DESTDIR)$(PREFIX)/lib/libvfdma.so* \
		$(DESTDIR)$(PREFIX)/lib/pkgconfig/libvfdma.pc \
		$(DESTDIR)$(PREFIX)/lib/libvfdma_dpdk.a $(DESTDIR)$(PREFIX)/lib/libvfdma_dpdk.so* \
		$(DESTDIR)$(PREFIX)/lib/pkgconfig/libvfdma_dpdk.pc

clean:
	$(Q)rm -rf $(BUILD)

distclean: clean
	$(Q)rm -f mk/config.mk
