# Benchmarks: speed and memory targets are checked here, not in unit tests.
#
#   make bench    1. the plugin's per-line path alone (bench_pipeline:
#                    >= 1M records/s, memory capped under a hostile module);
#                 2. the real collectd daemon, the plugin against the exec
#                    plugin side by side (tests/bench/collectd.sh: 9 groups
#                    x 4096 series per 1 s interval, a null writer): the
#                    plugin's readers must cost <= BENCH_CPU_MAX (0.5) of
#                    exec's per value, and the daemon <= BENCH_RSS_MAX (1.2)
#                    of exec's memory. About two minutes.
#   make bench BENCH_REPS=9 BENCH_BATCHES=30   more and longer repetitions
.PHONY: bench bench-pipeline bench-collectd

BENCH_BUILD := $(BUILD)/bench
# group.c and channel.c are included by bench_pipeline (it drives the group
# thread's line callback), as by the fuzz harness.
BENCH_LINKED := $(filter-out plugin/group.c plugin/channel.c,$(CORE_SRC))
BENCH_REPS ?= 5
BENCH_BATCHES ?= 15

$(BENCH_BUILD)/bench_pipeline: tests/bench/bench_pipeline.c $(PLUGIN_SRC) \
                               $(PLUGIN_HDR) | deps-build
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) $(COLLECTD_INC) -I. -o $@ $< $(BENCH_LINKED) -lm

$(BENCH_BUILD)/bench_feed: tests/bench/bench_feed.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) -o $@ $<

$(BENCH_BUILD)/null_write.so: tests/bench/null_write.c | deps-build
	@mkdir -p $(dir $@)
	$(CC) $(PLUGIN_CFLAGS) -shared -o $@ $<

bench-pipeline: $(BENCH_BUILD)/bench_pipeline
	@echo "==> pipeline benchmark (the plugin's per-line path alone)"
	$(BENCH_BUILD)/bench_pipeline

bench-collectd: $(BUILD)/stap.so $(BENCH_BUILD)/bench_feed \
                $(BENCH_BUILD)/null_write.so | deps-collectd
	@echo "==> collectd benchmark (the plugin against the exec plugin)"
	BENCH_REPS=$(BENCH_REPS) BENCH_BATCHES=$(BENCH_BATCHES) \
	  bash tests/bench/collectd.sh $(BENCH_BUILD)/collectd $(BENCH_BUILD)

# Both run even when the first fails, so one run shows every figure.
bench:
	@rc=0; \
	$(MAKE) --no-print-directory bench-pipeline || rc=1; \
	$(MAKE) --no-print-directory bench-collectd || rc=1; \
	exit $$rc
