# mk/vm.mk -- the qemu test bed (scripts/vm/): Debian's real kernel booted
# under TCG with this machine's root filesystem shared read-only.
#
#   make vm-kernel     fetch and unpack the kernel into the cache (idempotent)
#   make vm-smoke      boot it and check the bed: netem, retransmits, staprun,
#                      debugfs; prints the measurements
#   make vm-lib-test   exercise tests/kernel/lib.sh in the guest
#
# VM_KVER     kernel ABI version (default: $(KVER)); empty = what Debian's
#             linux-image-amd64 depends on now
# VM_RESULTS  where each target's results directory goes (console.log, rc, ...)
# VM_TIMEOUT  seconds before qemu is killed
# Only one VM runs at a time: run-guest.sh takes a lock and waits.

# Do not let this fragment's targets become the default goal.
vm_saved_default_goal := $(.DEFAULT_GOAL)

VM_KVER ?= $(KVER)
VM_RESULTS ?= $(CURDIR)/build/vm
VM_TIMEOUT ?= 300
VM_RUN = scripts/vm/run-guest.sh $(if $(VM_KVER),--kver $(VM_KVER)) --timeout $(VM_TIMEOUT)

.PHONY: vm-kernel vm-initrd vm-smoke vm-lib-test

vm-kernel:
	scripts/vm/fetch-kernel.sh $(VM_KVER)

vm-initrd: vm-kernel
	scripts/vm/mkinitrd.sh $(VM_KVER)

vm-smoke:
	$(VM_RUN) --results $(VM_RESULTS)/smoke scripts/vm/smoke.sh $(VM_KVER)

vm-lib-test:
	$(VM_RUN) --results $(VM_RESULTS)/lib-test scripts/vm/lib-test.sh

.DEFAULT_GOAL := $(vm_saved_default_goal)
