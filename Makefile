# collectd-stap. `make` builds the plugin; `make check` runs every test tier;
# `make run` runs collectd with the plugin (in a VM when this kernel cannot
# load modules). See README.md.

CC ?= cc
BUILD := build
COLLECTD_INC := -I/usr/include/collectd/core/daemon -I/usr/include/collectd/core -I/usr/include/collectd
CFLAGS_COMMON := -std=c11 -D_GNU_SOURCE -DHAVE_CONFIG_H -Wall -Wextra -Werror -O2 -g -pthread
PLUGIN_CFLAGS := $(CFLAGS_COMMON) -fPIC $(COLLECTD_INC)

# Sources that know nothing of collectd's core (unit-tested directly).
CORE_SRC := plugin/record.c plugin/batch.c plugin/offset.c plugin/channel.c \
            plugin/spawn.c plugin/config.c plugin/group.c plugin/flows.c
PLUGIN_SRC := $(CORE_SRC) plugin/stap.c
PLUGIN_HDR := $(wildcard plugin/*.h)

# Debian packages each tier needs; `make deps-*' installs the missing ones.
DEPS_BUILD := gcc make libc6-dev collectd-core collectd-dev
DEPS_UNIT := $(DEPS_BUILD) libcmocka-dev libltdl-dev pkg-config
DEPS_COLLECTD := $(DEPS_UNIT) python3 perl man-db openssl
DEPS_KERNEL := systemtap systemtap-runtime qemu-system-x86 busybox-static kmod python3 \
               iproute2 socat nftables xz-utils cpio procps rrdtool librrd8 \
               libprotobuf-c1 libmicrohttpd12 libgcrypt20

.PHONY: all plugin check check-unit check-collectd check-release check-kernel run bench \
        clean format lint deps-build deps-unit deps-collectd deps-kernel

all: plugin
plugin: $(BUILD)/stap.so

$(BUILD)/stap.so: $(PLUGIN_SRC) $(PLUGIN_HDR) | deps-build
	@mkdir -p $(BUILD)
	$(CC) $(PLUGIN_CFLAGS) -shared -o $@ $(PLUGIN_SRC) \
	  -Wl,--version-script=plugin/exports.map -lm

# Installs only what is missing, so a warm run does not touch apt.
define apt_install
	@missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "==> installing:" $$missing; \
	  if [ "$$(id -u)" != 0 ]; then echo "need root to run: apt-get install $$missing" >&2; exit 1; fi; \
	  { [ -n "$$(ls /var/lib/apt/lists/ 2>/dev/null | grep -v lock)" ] || apt-get update -q; } && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null || \
	  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null; }; \
	fi
endef

deps-build:
	$(call apt_install,$(DEPS_BUILD))
deps-unit:
	$(call apt_install,$(DEPS_UNIT))
deps-collectd:
	$(call apt_install,$(DEPS_COLLECTD))
deps-kernel:
	$(call apt_install,$(DEPS_KERNEL))

# RELEASE=another Debian release than the host's (trixie on a bookworm host):
# mk/release.mk runs the unit and collectd tiers in that release's tree, in
# place of mk/unit.mk and mk/collectd.mk here.
HOST_RELEASE := $(if $(RELEASE),$(shell bash scripts/release-tree.sh host-release))
RELEASE_OTHER := $(filter-out $(HOST_RELEASE),$(RELEASE))
include $(sort $(filter-out $(if $(RELEASE_OTHER),mk/unit.mk mk/collectd.mk),\
                 $(wildcard mk/*.mk)))

# The other supported Debian release (bookworm and trixie): its unit and collectd tiers, in its
# tree (mk/release.mk). Its kernel tier: `make check-kernel RELEASE=...`.
HOST_RELEASE_NAME := $(shell bash scripts/release-tree.sh host-release)
OTHER_RELEASE ?= $(filter-out $(HOST_RELEASE_NAME),bookworm trixie)
.PHONY: check-other-release
check-other-release:
	$(if $(OTHER_RELEASE),@$(MAKE) --no-print-directory check-release RELEASE=$(OTHER_RELEASE))

# The other release's kernel tier in `make check`: these scenarios and the stress scenario
# (all of them: `make check-kernel RELEASE=all`).
OTHER_RELEASE_GROUPS ?= tcp netdev drops
.PHONY: check-other-kernel
check-other-kernel:
	$(if $(OTHER_RELEASE),@$(MAKE) --no-print-directory check-kernel RELEASE=$(OTHER_RELEASE) \
	  GROUPS="$(OTHER_RELEASE_GROUPS)" && \
	  $(MAKE) --no-print-directory check-stress RELEASE=$(OTHER_RELEASE))

CHECK_TIERS := check-unit check-collectd check-other-release check-fuzz check-faults check-lint \
               check-kernel check-stress check-install check-other-kernel
# Every tier in this order. The modules for both releases' kernels are built in the background
# meanwhile (cold: 377-655 s for bookworm's, then 537-722 s for trixie's; the host tiers
# before the kernel tier take 8-14 min, 12 under a CPU hog); the kernel tiers' own `make modules` then
# finds them built, or waits for the build lock and takes what the background build made. Its
# log: build/check-modules-ahead.log. The packages are installed first, in the foreground (one
# apt at a time).
check:
	@$(MAKE) --no-print-directory deps-unit deps-collectd deps-kernel
	@mkdir -p $(BUILD); log=$(BUILD)/check-modules-ahead.log; \
	echo "==> building the modules for bookworm's and trixie's kernels in the background ($$log)"; \
	setsid $(MAKE) --no-print-directory modules KVER="$(HOST_RELEASE_NAME) $(OTHER_RELEASE)" \
	  >$$log 2>&1 </dev/null & ahead=$$!; \
	stop_ahead() { kill -0 $$ahead 2>/dev/null && kill -TERM -- -$$ahead 2>/dev/null; wait $$ahead; }; \
	trap 'stop_ahead; exit 130' INT TERM HUP; \
	$(MAKE) --no-print-directory $(CHECK_TIERS); rc=$$?; \
	stop_ahead; \
	[ $$rc = 0 ] && echo "==> all test tiers passed"; exit $$rc

clean:
	rm -rf $(BUILD)

format:
	clang-format -i plugin/*.c plugin/*.h tests/unit/*.c

lint:
	clang-format --dry-run --Werror plugin/*.c plugin/*.h tests/unit/*.c
