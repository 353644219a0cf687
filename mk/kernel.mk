# Kernel tier: Debian's real kernel under qemu runs the real collectd, plugin,
# staprun and prebuilt modules against real traffic: every group's scenario in
# tests/kernel/groups/ (or GROUPS="tcp udp"), in one VM boot. Evidence stays in
# build/kernel-test/ (console.log, and per group: collectd.log, csv/,
# measurements, the module's raw output).
.PHONY: check-kernel check-stress kernel-kver

KERNEL_TEST_TIMEOUT ?= 1200
# Where the evidence goes (several runs side by side: KERNEL_TEST_OUT=build/kt-tcp).
KERNEL_TEST_OUT ?= $(BUILD)/kernel-test

# The kernel the VM boots: KVER if given, else Debian's current one. Modules
# are built for exactly that kernel.
kernel-kver:
	@apt-cache depends linux-image-amd64 >/dev/null 2>&1 || apt-get update -q >/dev/null
	@bash -c '. scripts/vm/common.sh && vm_resolve_kver "$(KVER)"'

check-kernel: $(BUILD)/stap.so | deps-kernel deps-collectd
	@kver=$$($(MAKE) -s --no-print-directory kernel-kver) && \
	echo "==> kernel test on Debian kernel $$kver (qemu, TCG)" && \
	$(MAKE) --no-print-directory modules KVER=$$kver \
	  MODULES="$(if $(GROUPS),$(filter $(basename $(notdir $(wildcard modules/*.stp))),$(GROUPS)))" && \
	rm -rf $(KERNEL_TEST_OUT) && \
	scripts/vm/run-guest.sh --kver $$kver --results $(abspath $(KERNEL_TEST_OUT)) \
	  --timeout $(KERNEL_TEST_TIMEOUT) tests/kernel/run-all.sh $(GROUPS); rc=$$?; \
	if [ -d $(KERNEL_TEST_OUT)/operator/rrd ]; then \
	  echo "==> graphs from the operator scenario's RRD files"; \
	  $(MAKE) --no-print-directory deps-graphs && \
	  bash tests/kernel/check-graphs.sh $(KERNEL_TEST_OUT)/operator/rrd $(KERNEL_TEST_OUT)/graphs || rc=1; \
	fi; exit $$rc

# Stress tier: all nine groups at once in a VM with 4 vCPUs while the guest is made busy
# (tests/kernel/stress/stress.sh: 64 veth pairs in namespaces, 200 devices created and deleted,
# a SYN flood on 3000 ports, bulk TCP and small UDP on every CPU). Evidence in STRESS_OUT.
STRESS_OUT ?= $(BUILD)/kernel-stress
STRESS_CPUS ?= 4
check-stress: $(BUILD)/stap.so | deps-kernel deps-collectd
	@kver=$$($(MAKE) -s --no-print-directory kernel-kver) && \
	echo "==> stress test on Debian kernel $$kver (qemu, TCG, $(STRESS_CPUS) vCPUs)" && \
	$(MAKE) --no-print-directory modules KVER=$$kver && \
	rm -rf $(STRESS_OUT) && \
	scripts/vm/run-guest.sh --kver $$kver --cpus $(STRESS_CPUS) --results $(abspath $(STRESS_OUT)) \
	  --timeout $(KERNEL_TEST_TIMEOUT) tests/kernel/run-all.sh stress

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
