# Fuzzing tier: a libFuzzer harness (tests/fuzz/fuzz_read_path.c) over the
# plugin's whole read path, staprun's pipe bytes to what would be dispatched,
# checking the plugin's promises on every input (the harness lists them).
#
#   make check-fuzz                 every seed and regression input once, then
#                                   a short deterministic fuzz run (-seed=1,
#                                   FUZZ_SMOKE_RUNS executions, at most
#                                   FUZZ_SMOKE_SECONDS) from the seeds alone
#   make fuzz [FUZZ_SECONDS=300]    fuzz for that long, one job; the corpus
#                                   grows in build/fuzz/corpus (kept between
#                                   runs), findings go to build/fuzz/artifacts/
#   build/fuzz/fuzz_read_path FILE  run one input (a finding) again
#
# Seeds: tests/fuzz/seeds.sh turns tests/data/*.replay into inputs and adds
# hand-made edge cases; tests/fuzz/protocol.dict holds the protocol's
# keywords. An input that once broke a promise is kept in
# tests/fuzz/regressions/ and replayed by check-fuzz.
.PHONY: fuzz check-fuzz deps-fuzz fuzz-lint fuzz-format

DEPS_FUZZ := $(DEPS_BUILD) clang libclang-rt-dev llvm
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 300
FUZZ_SMOKE_RUNS ?= 80000
FUZZ_SMOKE_SECONDS ?= 25
FUZZ_BUILD := $(BUILD)/fuzz
FUZZ_BIN := $(FUZZ_BUILD)/fuzz_read_path
FUZZ_SEEDS := $(FUZZ_BUILD)/seeds
# group.c and channel.c are included by the harness (it reaches their static
# functions: the line callbacks, the channel after read(2)); the rest of the
# core is linked as the plugin links it.
FUZZ_LINKED := $(filter-out plugin/group.c plugin/channel.c,$(CORE_SRC))
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -DHAVE_CONFIG_H -Wall -Wextra -Werror \
               -pthread -g -O1 -fno-omit-frame-pointer $(COLLECTD_INC) -I. \
               -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
# Inputs longer than two channel reads; -timeout catches a hang per input.
FUZZ_ARGS := -dict=tests/fuzz/protocol.dict -max_len=8192 -timeout=10 \
             -print_final_stats=1
# The sanitizers stop at the first report, with the input saved.
FUZZ_ENV := ASAN_OPTIONS=abort_on_error=1:detect_leaks=1 \
            UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

deps-fuzz:
	$(call apt_install,$(DEPS_FUZZ))

$(FUZZ_BIN): tests/fuzz/fuzz_read_path.c $(CORE_SRC) $(PLUGIN_HDR) | deps-fuzz
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_LINKED) -lm

$(FUZZ_SEEDS).done: tests/fuzz/seeds.sh $(wildcard tests/data/*.replay)
	rm -rf $(FUZZ_SEEDS)
	bash tests/fuzz/seeds.sh $(FUZZ_SEEDS)
	@touch $@

check-fuzz: $(FUZZ_BIN) $(FUZZ_SEEDS).done
	@echo "==> fuzz: every seed and regression input once"
	$(FUZZ_ENV) timeout -k 5 120 $(FUZZ_BIN) $(FUZZ_ARGS) \
	  $(FUZZ_SEEDS)/case-* $(FUZZ_SEEDS)/replay-* $(wildcard tests/fuzz/regressions/*)
	@echo "==> fuzz: $(FUZZ_SMOKE_RUNS) runs from the seeds (-seed=1, at most $(FUZZ_SMOKE_SECONDS) s)"
	rm -rf $(FUZZ_BUILD)/smoke && mkdir -p $(FUZZ_BUILD)/smoke $(FUZZ_BUILD)/smoke-artifacts
	$(FUZZ_ENV) timeout -k 5 $$(($(FUZZ_SMOKE_SECONDS) + 60)) $(FUZZ_BIN) $(FUZZ_ARGS) \
	  -seed=1 -runs=$(FUZZ_SMOKE_RUNS) -max_total_time=$(FUZZ_SMOKE_SECONDS) \
	  -artifact_prefix=$(FUZZ_BUILD)/smoke-artifacts/ \
	  $(FUZZ_BUILD)/smoke $(FUZZ_SEEDS) $(wildcard tests/fuzz/regressions)
	@echo "==> fuzz smoke run passed"

fuzz: $(FUZZ_BIN) $(FUZZ_SEEDS).done
	@mkdir -p $(FUZZ_BUILD)/corpus $(FUZZ_BUILD)/artifacts
	@echo "==> fuzzing for $(FUZZ_SECONDS) s (corpus $(FUZZ_BUILD)/corpus, findings in $(FUZZ_BUILD)/artifacts/)"
	$(FUZZ_ENV) $(FUZZ_BIN) $(FUZZ_ARGS) -max_total_time=$(FUZZ_SECONDS) \
	  -artifact_prefix=$(FUZZ_BUILD)/artifacts/ \
	  $(FUZZ_BUILD)/corpus $(FUZZ_SEEDS) $(wildcard tests/fuzz/regressions)

# The harness is held to the project's style too.
lint: fuzz-lint
fuzz-lint:
	clang-format --dry-run --Werror tests/fuzz/*.c
format: fuzz-format
fuzz-format:
	clang-format -i tests/fuzz/*.c
