# collectd integration tier: the real daemon, the built plugin, the shipped
# snippets, and tests/fake-staprun replaying recorded module sessions.
.PHONY: check-collectd
check-collectd: $(BUILD)/stap.so | deps-collectd
	@echo "==> collectd integration test"
	STAP_PLUGIN_DIR=$(abspath $(BUILD)) bash tests/collectd/run.sh $(BUILD)/collectd-test
