# SystemTap modules (modules/*.stp -> build/modules/KVER/collectd_stap_GROUP.ko).
# Included by the top-level Makefile; also usable alone: make -f mk/modules.mk modules
#
#   make modules [KVER=6.1.0-56-amd64]   build the modules that are out of date
#   make modules KVER=trixie              ... for Debian trixie's current kernel (a release name:
#                                         its linux-image-amd64 ABI today); a kernel of another
#                                         release than the host's is built in a tree of that
#                                         release (scripts/release-tree.sh, ~/.cache/collectd-stap/trees)
#   make modules KVER="bookworm trixie"   ... for several kernels (a fleet): each word (ABI or
#                                         release name) built as alone, one after the other,
#                                         into build/modules/ABI/; the others are still built
#                                         when one fails, and the make fails naming it
#   make modules MODULES="tcp udp"        ... only these groups (default: every modules/*.stp)
#   make modules SIGN_KEY=K SIGN_CERT=C   ... and sign them, each kernel's with its own sign-file
#                                         (Secure Boot; scripts/sign-modules.sh)
#   make modules-lint [KVER=...]          stap -p3 + the module lint for each script (no compile)
#   make modules-force [KVER=...]         rebuild all modules (ignore the build keys); signs
#                                         them too when SIGN_KEY and SIGN_CERT are given
#   make modules-clean                    remove build/modules
#
# KVER defaults (in the script) to the running kernel if its build tree exists, else to
# Debian's current linux-image-amd64 kernel. The script serialises stap runs itself, so
# `make -j` is safe. An unchanged module (same build key: script, tapsets, SystemTap, flags,
# kernel) is not rebuilt, so a warm `make modules` takes seconds.

COLLECTD_STAP_TOP := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))..)
BUILD_MODULES_SH  := $(COLLECTD_STAP_TOP)/scripts/build-modules.sh
SIGN_MODULES_SH   := $(COLLECTD_STAP_TOP)/scripts/sign-modules.sh
# The kernels to build for: each word of KVER, or "-" for the script's default.
MODULES_KVERS = $(or $(strip $(KVER)),-)

# The ABI a KVER word names (for signing; the same rules as the build script): a release name
# resolved in its archive; none: the running kernel if its build tree exists, else Debian's
# linux-image-amd64.
define modules_resolve_kver
kver=$$k; [ "$$kver" != - ] || { kver=; [ -e /lib/modules/$$(uname -r)/build ] && kver=$$(uname -r); }; \
kver=$$(bash -c '. $(COLLECTD_STAP_TOP)/scripts/vm/common.sh && vm_resolve_kver "$$1"' _ "$$kver")
endef

# $(call modules_each,FLAGS,GROUPS,SIGN): scripts/build-modules.sh FLAGS [--kver K] GROUPS for
# each kernel K of KVER, one after the other, then (SIGN=sign, SIGN_KEY and SIGN_CERT given)
# scripts/sign-modules.sh for K. A kernel that fails does not stop the others.
define modules_each
	@if [ "$(3)" = sign ] && [ -n "$(SIGN_KEY)$(SIGN_CERT)" ]; then \
	  [ -n "$(SIGN_KEY)" ] && [ -n "$(SIGN_CERT)" ] || { echo "modules: give both SIGN_KEY and SIGN_CERT" >&2; exit 1; }; \
	fi; \
	failed=; \
	for k in $(MODULES_KVERS); do \
	  $(if $(word 2,$(MODULES_KVERS)),echo "==> modules for KVER=$$k";) \
	  arg=; [ "$$k" = - ] || arg="--kver $$k"; \
	  bash $(BUILD_MODULES_SH) $(1) $$arg $(2) || { failed="$$failed $$k"; continue; }; \
	  [ "$(3)" = sign ] && [ -n "$(SIGN_KEY)" ] || continue; \
	  $(modules_resolve_kver) && \
	  bash $(SIGN_MODULES_SH) "$$kver" "$(SIGN_KEY)" "$(SIGN_CERT)" || failed="$$failed $$k"; \
	done; \
	[ -z "$$failed" ] || { echo "modules: failed for KVER$(if $(word 2,$(MODULES_KVERS)), word(s)):$$failed (see above)" >&2; exit 1; }
endef

.PHONY: modules modules-lint modules-force modules-clean

modules:
	$(call modules_each,,$(MODULES),sign)

modules-lint:
	$(call modules_each,--lint,$(MODULES),)

modules-force:
	$(call modules_each,--force,,sign)

modules-clean:
	rm -rf $(COLLECTD_STAP_TOP)/build/modules
