# SystemTap modules (modules/*.stp -> build/modules/KVER/collectd_stap_GROUP.ko).
# Included by the top-level Makefile; also usable alone: make -f mk/modules.mk modules
#
#   make modules [KVER=6.1.0-56-amd64]   build the modules that are out of date
#   make modules KVER=trixie              ... for Debian trixie's current kernel (a release name:
#                                         its linux-image-amd64 ABI today); a kernel of another
#                                         release than the host's is built in a tree of that
#                                         release (scripts/release-tree.sh, ~/.cache/collectd-stap/trees)
#   make modules MODULES="tcp udp"        ... only these groups (default: every modules/*.stp)
#   make modules SIGN_KEY=K SIGN_CERT=C   ... and sign them (Secure Boot; scripts/sign-modules.sh)
#   make modules-lint [KVER=...]          stap -p3 + the module lint for each script (no compile)
#   make modules-force [KVER=...]         rebuild all modules (ignore the build keys)
#   make modules-clean                    remove build/modules
#
# KVER defaults (in the script) to the running kernel if its build tree exists, else to
# Debian's current linux-image-amd64 kernel. The script serialises stap runs itself, so
# `make -j` is safe. An unchanged module (same build key: script, tapsets, SystemTap, flags,
# kernel) is not rebuilt, so a warm `make modules` takes seconds.

COLLECTD_STAP_TOP := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))..)
BUILD_MODULES_SH  := $(COLLECTD_STAP_TOP)/scripts/build-modules.sh
BUILD_MODULES_ARGS = $(if $(strip $(KVER)),--kver $(strip $(KVER)))

.PHONY: modules modules-lint modules-force modules-clean

modules:
	@bash $(BUILD_MODULES_SH) $(BUILD_MODULES_ARGS) $(MODULES)
	@if [ -n "$(SIGN_KEY)$(SIGN_CERT)" ]; then \
	  [ -n "$(SIGN_KEY)" ] && [ -n "$(SIGN_CERT)" ] || { echo "modules: give both SIGN_KEY and SIGN_CERT" >&2; exit 1; }; \
	  kver="$(strip $(KVER))"; \
	  [ -n "$$kver" ] || { [ -e /lib/modules/$$(uname -r)/build ] && kver=$$(uname -r); } || \
	    kver=$$(bash -c '. $(COLLECTD_STAP_TOP)/scripts/vm/common.sh && vm_resolve_kver'); \
	  kver=$$(bash -c '. $(COLLECTD_STAP_TOP)/scripts/vm/common.sh && vm_resolve_kver "$$1"' _ "$$kver") || exit 1; \
	  bash $(COLLECTD_STAP_TOP)/scripts/sign-modules.sh "$$kver" "$(SIGN_KEY)" "$(SIGN_CERT)"; \
	fi

modules-lint:
	@bash $(BUILD_MODULES_SH) --lint $(BUILD_MODULES_ARGS) $(MODULES)

modules-force:
	@bash $(BUILD_MODULES_SH) --force $(BUILD_MODULES_ARGS)

modules-clean:
	rm -rf $(COLLECTD_STAP_TOP)/build/modules
