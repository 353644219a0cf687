# Fault tier: `make check-faults'. The real collectd daemon with build/stap.so
# and tests/fake-staprun, in scenarios that break one thing per group on
# purpose (tests/faults/run.sh lists them): staprun or a module missing,
# ENOSYS, staprun killed or exiting at once, garbage and cut batches, another
# protocol version, writes into another group's or the plugin's own series,
# untrusted module paths, Params and option typos, a staprun deaf to SIGTERM,
# collectd killed, and 30 s under valgrind. Each checks what the log says and
# that the other groups' data keep flowing. Evidence (collectd.log, csv/,
# valgrind.log) stays in build/faults-test/SCENARIO/.
#
#   make check-faults                           every scenario (about 1 minute)
#   make check-faults FAULTS="runtime trust"    some: staprun runtime trust valgrind
#   make check-faults VALGRIND_SECONDS=60       a longer valgrind run
.PHONY: check-faults deps-faults

DEPS_FAULTS := $(DEPS_COLLECTD) valgrind procps util-linux
FAULTS_OUT ?= $(BUILD)/faults-test
VALGRIND_SECONDS ?= 30

deps-faults:
	$(call apt_install,$(DEPS_FAULTS))

check-faults: $(BUILD)/stap.so | deps-faults
	@echo "==> fault tier (the real collectd, faults on purpose)"
	VALGRIND_SECONDS=$(VALGRIND_SECONDS) timeout -k 10 600 \
	  bash tests/faults/run.sh $(FAULTS_OUT) $(FAULTS)
