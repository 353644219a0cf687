# Kernel tier: Debian's real kernel under qemu runs the real collectd, plugin,
# staprun and prebuilt modules against real traffic: every group's scenario in
# tests/kernel/groups/ (or GROUPS="tcp udp"), in one VM boot. Evidence stays in
# build/kernel-test/ (console.log, and per group: collectd.log, csv/,
# measurements, the module's raw output).
#
# RELEASE=trixie (any Debian release other than the host's): the VM boots that
# release's kernel (KVER defaults to its linux-image-amd64's ABI) with that
# release's tree (scripts/release-tree.sh) as the guest's root, so collectd,
# staprun and every tool are that release's own; the plugin is built in the tree
# as $(BUILD)/RELEASE/stap.so and the modules for its kernel as usual
# (scripts/vm/release-root.sh). Evidence goes to $(BUILD)/kernel-test-RELEASE.
.PHONY: check-kernel check-stress kernel-kver deps-host-load

KERNEL_TEST_TIMEOUT ?= 2400
RELEASE ?=

ifeq ($(RELEASE),all)
# RELEASE=all: the tier on each supported release in turn (bookworm and trixie; the host's
# first), every one run even if an earlier one failed; fails if any failed.
check-kernel check-stress:
	@host=$$(. /etc/os-release 2>/dev/null && echo $$VERSION_CODENAME); failed=; \
	for r in $$host bookworm trixie; do \
	  case " $$done " in *" $$r "*) continue ;; esac; done="$$done $$r"; \
	  $(MAKE) --no-print-directory $@ RELEASE=$$r || failed="$$failed $$r"; \
	done; \
	if [ -n "$$failed" ]; then echo "$@ RELEASE=all: failed on$$failed" >&2; exit 1; fi; \
	echo "==> $@ passed on$$done"
else
KT_HOST_RELEASE := $(shell . /etc/os-release 2>/dev/null && echo $$VERSION_CODENAME)
# Non-empty when RELEASE names another release than the host's.
KT_FOREIGN := $(if $(RELEASE),$(filter-out $(KT_HOST_RELEASE),$(RELEASE)))
KT_KVER_ARG := $(or $(KVER),$(KT_FOREIGN))
# The plugin the guest loads (a BUILD that already names the release is kept).
KT_BUILD := $(if $(KT_FOREIGN),$(if $(filter %/$(RELEASE),$(BUILD)),$(BUILD),$(BUILD)/$(RELEASE)),$(BUILD))
KT_PLUGIN_DEP := $(if $(KT_FOREIGN),,$(BUILD)/stap.so)
# What the guest scenarios run, in the release's tree (Debian 12 names; release-root.sh maps
# the t64 renames): $(DEPS_KERNEL) without the host-only qemu, cpio, xz and busybox, plus what
# the install scenario and the in-tree plugin build use.
KT_GUEST_PKGS := $(filter-out systemtap qemu-system-x86 busybox-static xz-utils cpio,$(DEPS_KERNEL)) \
                 collectd-core bash coreutils make man-db $(DEPS_BUILD)
# kt_root KVER: in a recipe, sets root_args to "--root TREE --env KT_PLUGIN_DIR=..." for a
# foreign RELEASE (making the tree ready and the plugin built), or to nothing.
kt_root = root_args=; if [ -n "$(KT_FOREIGN)" ]; then \
	  tree=$$(scripts/vm/release-root.sh $(RELEASE) $(1) $(KT_BUILD) $(KT_GUEST_PKGS) | tail -n 1) && \
	  [ -n "$$tree" ] && root_args="--root $$tree --env KT_PLUGIN_DIR=$(abspath $(KT_BUILD))"; \
	fi
# KT_MODULES_OUT=DIR: build the modules into DIR/KVER (scripts/build-modules.sh's MODULES_OUT)
# and load them from there, e.g. to try STAP_EXTRA_FLAGS without touching build/modules.
KT_MODULES_OUT ?=
kt_modules_env = $(if $(KT_MODULES_OUT),MODULES_OUT=$(abspath $(KT_MODULES_OUT)))
kt_modules_arg = $(if $(KT_MODULES_OUT),--env KT_MODULES_DIR=$(abspath $(KT_MODULES_OUT)))
# Where the evidence goes (several runs side by side: KERNEL_TEST_OUT=build/kt-tcp).
KERNEL_TEST_OUT ?= $(BUILD)/kernel-test$(if $(KT_FOREIGN),-$(RELEASE))
# HOST_LOAD=N: `stress-ng --cpu N` busy on the host while the VM runs, so that the scenarios
# are tried on a loaded machine (a vCPU then waits for a host core; HOST_LOAD=2 on this 2-core
# machine is the load the scenarios are proven under: three runs in a row, README). stress-ng
# runs in its own process group, stopped when the VM has exited or the recipe is interrupted.
HOST_LOAD ?=
kt_load_start = $(if $(HOST_LOAD),setsid stress-ng --cpu $(HOST_LOAD) --timeout $(KERNEL_TEST_TIMEOUT) --quiet & \
	  hog=$$!; trap 'kill -- -$$hog 2>/dev/null || :' EXIT INT TERM; \
	  echo "==> host load: stress-ng --cpu $(HOST_LOAD) (process group $$hog)";)
kt_load_stop = $(if $(HOST_LOAD),kill -- -$$hog 2>/dev/null || :;)
deps-host-load:
	$(if $(HOST_LOAD),$(call apt_install,stress-ng))

# The kernel the VM boots: KVER if given, else Debian's current one. Modules
# are built for exactly that kernel.
kernel-kver:
	@apt-cache depends linux-image-amd64 >/dev/null 2>&1 || apt-get update -q >/dev/null
	@bash -c '. scripts/vm/common.sh && vm_resolve_kver "$(KT_KVER_ARG)"'

check-kernel: $(KT_PLUGIN_DEP) | deps-kernel deps-collectd deps-host-load
	@kver=$$($(MAKE) -s --no-print-directory kernel-kver KVER=$(KT_KVER_ARG)) && \
	echo "==> kernel test on Debian kernel $$kver (qemu, TCG)$(if $(KT_FOREIGN), with the Debian $(RELEASE) tree as root)" && \
	$(kt_modules_env) $(MAKE) --no-print-directory modules KVER=$$kver \
	  MODULES="$(if $(GROUPS),$(filter $(basename $(notdir $(wildcard modules/*.stp))),$(GROUPS)))" && \
	$(call kt_root,$$kver) && \
	rm -rf $(KERNEL_TEST_OUT) && \
	$(kt_load_start) \
	scripts/vm/run-guest.sh --kver $$kver $$root_args $(kt_modules_arg) --results $(abspath $(KERNEL_TEST_OUT)) \
	  --timeout $(KERNEL_TEST_TIMEOUT) tests/kernel/run-all.sh $(GROUPS); rc=$$?; \
	$(kt_load_stop) \
	if [ -d $(KERNEL_TEST_OUT)/operator/rrd ]; then \
	  echo "==> graphs from the operator scenario's RRD files"; \
	  $(MAKE) --no-print-directory deps-graphs && \
	  bash tests/kernel/check-graphs.sh $(KERNEL_TEST_OUT)/operator/rrd $(KERNEL_TEST_OUT)/graphs || rc=1; \
	fi; exit $$rc

# Stress tier: all nine groups at once in a VM with 4 vCPUs while the guest is made busy
# (tests/kernel/stress/stress.sh: 64 veth pairs in namespaces, 200 devices created and deleted,
# a SYN flood on 3000 ports, bulk TCP and small UDP on every CPU). Evidence in STRESS_OUT.
STRESS_OUT ?= $(BUILD)/kernel-stress$(if $(KT_FOREIGN),-$(RELEASE))
STRESS_CPUS ?= 4
# STRESS_ROUNDS=N: run the four loads N times over in the one boot (a soak; default once).
STRESS_ROUNDS ?=
check-stress: $(KT_PLUGIN_DEP) | deps-kernel deps-collectd
	@kver=$$($(MAKE) -s --no-print-directory kernel-kver KVER=$(KT_KVER_ARG)) && \
	echo "==> stress test on Debian kernel $$kver (qemu, TCG, $(STRESS_CPUS) vCPUs)$(if $(KT_FOREIGN), with the Debian $(RELEASE) tree as root)" && \
	$(kt_modules_env) $(MAKE) --no-print-directory modules KVER=$$kver && \
	$(call kt_root,$$kver) && \
	rm -rf $(STRESS_OUT) && \
	scripts/vm/run-guest.sh --kver $$kver $$root_args $(kt_modules_arg) --cpus $(STRESS_CPUS) --results $(abspath $(STRESS_OUT)) \
	  $(if $(STRESS_ROUNDS),--env STRESS_ROUNDS=$(STRESS_ROUNDS)) \
	  --timeout $(KERNEL_TEST_TIMEOUT) tests/kernel/run-all.sh stress

endif

# make run [DURATION=seconds]: see scripts/run.sh.
.PHONY: run
run: | deps-kernel deps-collectd
	@DURATION=$(DURATION) scripts/run.sh

# make graphs [RRD=dir] [GRAPHS_OUT=dir]: PNGs from a run's RRD files
# (default: the kernel test's operator scenario).
RRD ?= $(BUILD)/kernel-test/operator/rrd
GRAPHS_OUT ?= $(BUILD)/kernel-test/graphs
.PHONY: graphs
graphs:
	@command -v rrdtool >/dev/null || $(MAKE) --no-print-directory deps-graphs
	scripts/graphs.sh $(RRD) $(GRAPHS_OUT)
deps-graphs:
	$(call apt_install,rrdtool)
