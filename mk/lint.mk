# Module lint tier: `make check-lint`. Translates every module (stap -p3) and checks the
# generated C with scripts/module-lint.py (globals outside SystemTap's lock, exclusive locks on
# per-event probes, arrays that can overflow fatally; rules in the script, per-event probe points
# in modules/event-probes.txt), then proves the lint fails on each deliberately bad example in
# tests/lint/ and passes the good one. `make modules` runs the same lint before it compiles.
.PHONY: check-lint

check-lint: | deps-kernel
	@kver=$$($(MAKE) -s --no-print-directory kernel-kver) && \
	echo "==> module lint for Debian kernel $$kver" && \
	$(MAKE) --no-print-directory modules-lint KVER=$$kver && \
	echo "==> the lint on tests/lint/ (each bad example must fail with its rule)" && \
	bash tests/lint/run.sh $$kver
