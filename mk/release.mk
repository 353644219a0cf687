# The plugin on another Debian release: `make check-release RELEASE=trixie'.
#
# With RELEASE naming another release than the host's, check-unit and
# check-collectd run inside that release's tree (scripts/release-tree.sh:
# ~/.cache/collectd-stap/trees/RELEASE, made if missing, refreshed when stale,
# the tiers' packages installed in it), so the plugin and the tests are built
# by that release's gcc against its collectd-dev, with the same flags
# (-Werror), and run with its collectd. They build in BUILD=build/RELEASE
# (the host's build/ is untouched; a command-line BUILD is used instead) and
# mk/unit.mk and mk/collectd.mk are not read on the host (the Makefile leaves
# them out). RELEASE empty or the host's own: everything runs on the host, as
# without it.
#
#   make check-release RELEASE=trixie     unit and collectd tiers in the tree
#   make check-unit RELEASE=trixie        one of them (check-collectd too)
#   make check-release                    both tiers on the host
#
# Only the repository is bound into the tree (and BUILD if outside it): the
# tests' fallback directories ($HOME/.cache/...) are the tree's own. The tree's
# gcc-N, collectd-dev and libcmocka-dev versions are kept in
# build/RELEASE/.toolchain: when the tree's change, the plugin and the unit
# tests there are built anew.

.PHONY: check-release

ifeq ($(RELEASE_OTHER),)

check-release: check-unit check-collectd

else

ifneq ($(COLLECTD_STAP_IN_TREE),)
$(error RELEASE=$(RELEASE) inside the $(COLLECTD_STAP_IN_TREE) tree (its release is $(HOST_RELEASE)))
endif

RELEASE_TREE := bash scripts/release-tree.sh
RELEASE_BUILD := $(if $(filter command line,$(origin BUILD)),$(BUILD),build/$(RELEASE))
RELEASE_BUILD_ABS := $(abspath $(RELEASE_BUILD))
# The goals asked for (check-release is both tiers); both when reached as a
# prerequisite (`make check RELEASE=...').
RELEASE_GOALS := $(patsubst check-release,check-unit check-collectd,\
                   $(filter check-unit check-collectd check-release,$(MAKECMDGOALS)))
RELEASE_GOALS := $(or $(strip $(RELEASE_GOALS)),check-unit check-collectd)
# What is passed on to the make in the tree (its environment is emptied).
RELEASE_VARS := $(foreach v,UNIT_SANITIZE UNIT_TIMEOUT,\
                  $(if $(filter command line,$(origin $(v))),'$(v)=$($(v))'))
RELEASE_ENV := $(if $(UNIT_FILTER),'UNIT_FILTER=$(UNIT_FILTER)')

.PHONY: check-unit check-collectd release-tiers
check-unit check-collectd check-release: release-tiers ; @:

# One entry into the tree for all the goals asked for, run in order.
release-tiers:
	@set -e; t0=$$(date +%s); \
	echo "==> Debian $(RELEASE) (host: $(HOST_RELEASE)): $(RELEASE_GOALS) in the $(RELEASE) tree, BUILD=$(RELEASE_BUILD)"; \
	tree=$$($(RELEASE_TREE) ensure $(RELEASE) $(DEPS_COLLECTD)); \
	tools=$$(dpkg-query --admindir="$$tree/var/lib/dpkg" -W -f '$${db:Status-Status} $${Package}=$${Version}\n' \
	  'gcc-[0-9]*[0-9]' collectd-dev libcmocka-dev | awk '$$1 == "installed" { printf "%s ", $$2 }'); \
	mkdir -p $(RELEASE_BUILD_ABS); \
	if [ "$$(cat $(RELEASE_BUILD_ABS)/.toolchain 2>/dev/null)" != "$$tools" ]; then \
	  echo "==> $(RELEASE) tree: $$tools(was: $$(cat $(RELEASE_BUILD_ABS)/.toolchain 2>/dev/null || echo none)): building anew"; \
	  rm -rf $(RELEASE_BUILD_ABS)/stap.so $(RELEASE_BUILD_ABS)/tests; \
	  printf '%s' "$$tools" >$(RELEASE_BUILD_ABS)/.toolchain; \
	fi; \
	binds="--bind $(CURDIR)"; \
	case "$(RELEASE_BUILD_ABS)/" in $(CURDIR)/*) ;; *) binds="$$binds --bind $(RELEASE_BUILD_ABS)" ;; esac; \
	echo "==> $(RELEASE) tree ready in $$(($$(date +%s) - t0)) s: $$tools"; \
	rc=0; \
	$(RELEASE_TREE) run $(RELEASE) $$binds -- \
	  env COLLECTD_STAP_IN_TREE=$(RELEASE) $(RELEASE_ENV) \
	  make -C $(CURDIR) RELEASE=$(RELEASE) BUILD=$(RELEASE_BUILD) $(RELEASE_VARS) \
	    $(RELEASE_GOALS) || rc=$$?; \
	so=$(RELEASE_BUILD_ABS)/stap.so; \
	[ ! -e "$$so" ] || echo "==> $(RELEASE): $$so built by: $$(readelf -p .comment "$$so" 2>/dev/null | sed -n 's/.*\(GCC: .*\)/\1/p' | head -n 1)"; \
	if [ "$$rc" != 0 ]; then echo "==> Debian $(RELEASE): $(RELEASE_GOALS) FAILED ($$(($$(date +%s) - t0)) s)" >&2; exit "$$rc"; fi; \
	echo "==> Debian $(RELEASE): $(RELEASE_GOALS) passed in $$(($$(date +%s) - t0)) s"

endif
