# Benchmarks: speed and memory targets are checked here, not in unit tests.
.PHONY: bench
BENCH_SRC := plugin/record.c plugin/batch.c plugin/offset.c plugin/channel.c

$(BUILD)/bench/bench_pipeline: tests/bench/bench_pipeline.c $(BENCH_SRC) $(PLUGIN_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) -o $@ $< $(BENCH_SRC) -lm

bench: $(BUILD)/bench/bench_pipeline
	$(BUILD)/bench/bench_pipeline
