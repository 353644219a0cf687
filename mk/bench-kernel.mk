# make bench-kernel: probe overhead in one VM boot (tests/bench/kernel/guest.sh). For each group
# alone, and all groups together, three workloads (bulk TCP, 64-byte TCP request/response,
# 64-byte UDP) over a veth pair, client and server each pinned to a vCPU (RR: both on vCPU 0),
# against no-module runs before and after every configuration; and the same under bpftrace
# counting on the group's probe points (tests/bench/kernel/probes.py derives them from each
# module's generated C), as the reference. About 19 min of VM time on the 2-core build machine
# (2 vCPUs: one per host core). Writes build/bench/bench-kernel.md and bench-kernel.png; raw
# runs, module output and bpftrace scripts in build/bench/kernel/run/. Exits non-zero only for a
# broken run (a module or bpftrace that did not start or stop, a workload that died), never for
# slow or noisy figures.
#
#   BENCH_KERNEL_GROUPS="tcp udp"   some groups only (default: every modules/*.stp)
#   BENCH_KERNEL_DURATION=1         measured seconds per run (after BENCH_KERNEL_WARMUP=0.3)
#   BENCH_KERNEL_REPS=6             runs of each workload per configuration
#   BENCH_KERNEL_BASE_REPS=3        ... per baseline block (one before and after every configuration)
#   BENCH_KERNEL_CPUS=2             vCPUs (client on vCPU 0, server on vCPU 1)
#   BENCH_KERNEL_RR_CPU=same        RR with both ends on vCPU 0 (other: server on vCPU 1; its rate
#                                   then follows the host's wake-up latency: guest.sh says why)
#   BENCH_KERNEL_BPFTRACE=0         skip the bpftrace reference
#   BENCH_KERNEL_VARIANTS="netdev+txq_latency=1"
#                                   more configurations: a group's module loaded alone with
#                                   these parameters (the cost of an opt-in feature; only for
#                                   groups in BENCH_KERNEL_GROUPS; "" for none)
#   BENCH_KERNEL_COMPARE=DIR        also all groups from another build of the modules for the same
#                                   kernel (e.g. a copy of build/modules/KVER made before a change),
#                                   right after this build's, in the same boot: row "all@other"
#   BENCH_KERNEL_ALONE=0            skip each group alone: only all groups (with COMPARE, an A/B
#                                   of two builds: 4.7 min here with BENCH_KERNEL_REPS=10)
#   BENCH_KERNEL_TIMING=1           load modules built with -DSTP_TIMING (in $(BENCH_KERNEL_DIR)/
#                                   timing-modules): each module reports, when stopped, how many
#                                   cycles its handler took per probe point (fastest / mean hit),
#                                   SystemTap's entry and exit included, the kprobe or tracepoint
#                                   dispatch before it not; the report gets a table of them. The
#                                   cost of a handler, where throughput ratios drown in the noise
#                                   floor (the timing itself adds a little to every hit)
.PHONY: bench-kernel deps-bench-kernel

DEPS_BENCH_KERNEL := bpftrace gnuplot-nox
BENCH_KERNEL_GROUPS ?= $(or $(GROUPS),$(basename $(notdir $(wildcard modules/*.stp))))
BENCH_KERNEL_DURATION ?= 1
BENCH_KERNEL_WARMUP ?= 0.3
BENCH_KERNEL_REPS ?= 6
BENCH_KERNEL_BASE_REPS ?= 3
BENCH_KERNEL_CPUS ?= 2
BENCH_KERNEL_BPFTRACE ?= 1
BENCH_KERNEL_RR_CPU ?= same
BENCH_KERNEL_TIMING ?= 0
BENCH_KERNEL_VARIANTS ?= netdev+txq_latency=1
BENCH_KERNEL_COMPARE ?=
BENCH_KERNEL_ALONE ?= 1
BENCH_KERNEL_TIMEOUT ?= 2700
BENCH_KERNEL_DIR := $(BUILD)/bench/kernel

deps-bench-kernel:
	$(call apt_install,$(DEPS_BENCH_KERNEL))

$(BENCH_KERNEL_DIR)/netbench: tests/bench/kernel/netbench.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) -o $@ $<

bench-kernel: $(BENCH_KERNEL_DIR)/netbench | deps-kernel deps-bench-kernel
	@set -e; kver=$$($(MAKE) -s --no-print-directory kernel-kver); \
	groups="$(strip $(BENCH_KERNEL_GROUPS))"; variants=; \
	for v in $(BENCH_KERNEL_VARIANTS); do \
	  case " $$groups " in *" $${v%%+*} "*) variants="$$variants $$v" ;; esac; \
	done; \
	echo "==> bench-kernel on Debian kernel $$kver (qemu, TCG, $(BENCH_KERNEL_CPUS) vCPUs): $$groups$$variants"; \
	if [ "$(BENCH_KERNEL_TIMING)" = 1 ]; then \
	  MODULES_OUT=$(abspath $(BENCH_KERNEL_DIR))/timing-modules STAP_EXTRA_FLAGS=-DSTP_TIMING \
	    scripts/build-modules.sh --kver $$kver $$groups; \
	  mods=$(abspath $(BENCH_KERNEL_DIR))/timing-modules/$$kver; \
	else \
	  $(MAKE) --no-print-directory modules KVER=$$kver MODULES="$$groups"; \
	  mods=$(abspath $(BUILD))/modules/$$kver; \
	fi; \
	for g in $(if $(BENCH_KERNEL_COMPARE),$$groups); do \
	  [ -f "$(BENCH_KERNEL_COMPARE)/collectd_stap_$$g.ko" ] || { echo "bench-kernel: BENCH_KERNEL_COMPARE=$(BENCH_KERNEL_COMPARE) has no collectd_stap_$$g.ko: give a build/modules/$$kver directory of the other build" >&2; exit 2; }; \
	done; \
	run=$(abspath $(BENCH_KERNEL_DIR))/run; rm -rf $$run; mkdir -p $$run; \
	python3 tests/bench/kernel/probes.py $$mods $$run/probes $$groups; \
	{ echo "loadavg at start $$(cut -d' ' -f1-3 /proc/loadavg)"; echo "$$(nproc) cores"; } >$$run/host.txt; \
	t0=$$(date +%s); rc=0; \
	( while :; do echo "$$(date +%s) $$(cut -d' ' -f1 /proc/loadavg)"; sleep 5; done ) >$$run/host-load.txt & lpid=$$!; trap "kill $$lpid 2>/dev/null || :" EXIT; \
	scripts/vm/run-guest.sh --kver $$kver --cpus $(BENCH_KERNEL_CPUS) --results $$run \
	  --timeout $(BENCH_KERNEL_TIMEOUT) tests/bench/kernel/guest.sh \
	  duration=$(BENCH_KERNEL_DURATION) warmup=$(BENCH_KERNEL_WARMUP) reps=$(BENCH_KERNEL_REPS) \
	  base_reps=$(BENCH_KERNEL_BASE_REPS) bpftrace=$(BENCH_KERNEL_BPFTRACE) rr_cpu=$(BENCH_KERNEL_RR_CPU) modules=$$mods \
	  alone=$(BENCH_KERNEL_ALONE) $(if $(BENCH_KERNEL_COMPARE),compare=$(abspath $(BENCH_KERNEL_COMPARE))) \
	  groups=$$(echo $$groups $$variants | tr ' ' ,) || rc=$$?; \
	kill $$lpid 2>/dev/null; \
	echo "loadavg at end $$(cut -d' ' -f1-3 /proc/loadavg)" >>$$run/host.txt; \
	echo "make bench-kernel total (with waiting for the VM lock) $$(( $$(date +%s) - t0 )) s" >>$$run/host.txt; \
	python3 tests/bench/kernel/report.py $$run $(BUILD)/bench/bench-kernel.md $$run/plot || rc=1; \
	if [ -f $$run/plot/bulk.dat ]; then \
	  gnuplot -e "dir='$$run/plot'; out='$(BUILD)/bench/bench-kernel.png'" tests/bench/kernel/plot.gp || rc=1; \
	fi; \
	echo "==> $(BUILD)/bench/bench-kernel.md, $(BUILD)/bench/bench-kernel.png (raw: $$run)"; \
	[ $$rc = 0 ] || echo "==> bench-kernel: broken run (exit $$rc): see $$run/events.tsv and $$run/console.log" >&2; \
	exit $$rc
