# Unit test tier: `make check-unit'.
#
# Each tests/unit/test_NAME.c becomes build/tests/test_NAME, linked with the
# plugin's core sources (CORE_SRC: they know nothing of collectd's core) and
# tests/unit/helpers.c, which stands in for the collectd glue (stap_log,
# dispatch_value, dispatch_notification). test_host instead loads the built
# plugin, build/stap.so, with libltdl as collectd does, and defines the
# collectd API symbols the plugin uses.
#
#   make check-unit              build and run every unit test (ASan, UBSan)
#   make check-unit UNIT_SANITIZE= BUILD=/tmp/b
#                                without sanitizers (objects do not track the
#                                flags: build them elsewhere)
#   build/tests/test_NAME        run one test binary
#   UNIT_FILTER='*gauge*' build/tests/test_record
#                                run only the matching tests

.PHONY: check-unit unit-tests

UNIT_DIR := tests/unit
UNIT_BUILD := $(BUILD)/tests
# Out-of-bounds reads and undefined behaviour fail a test even when its
# assertions would not notice them.
UNIT_SANITIZE ?= -fsanitize=address,undefined -fno-sanitize-recover=all \
                 -fno-omit-frame-pointer
# A hung test is killed after this many seconds (and counts as failed).
UNIT_TIMEOUT ?= 300
UNIT_CFLAGS = $(CFLAGS_COMMON) $(COLLECTD_INC) -I. \
              -DTOP_SRCDIR='"$(CURDIR)"' $(UNIT_SANITIZE)
UNIT_LIBS := -lcmocka -lm

UNIT_CORE_TESTS := $(filter-out test_host,$(basename $(notdir \
                     $(wildcard $(UNIT_DIR)/test_*.c))))
UNIT_OBJ := $(patsubst plugin/%.c,$(UNIT_BUILD)/obj/%.o,$(CORE_SRC)) \
            $(UNIT_BUILD)/obj/helpers.o
UNIT_BINS := $(addprefix $(UNIT_BUILD)/,$(UNIT_CORE_TESTS) test_host)

# Keep the objects between runs (make would delete them as intermediates).
.SECONDARY: $(UNIT_OBJ) $(UNIT_BUILD)/obj/helpers-host.o

$(UNIT_BUILD)/obj/%.o: plugin/%.c $(PLUGIN_HDR) | deps-unit
	@mkdir -p $(@D)
	$(CC) $(UNIT_CFLAGS) -c -o $@ $<

$(UNIT_BUILD)/obj/helpers.o: $(UNIT_DIR)/helpers.c $(UNIT_DIR)/helpers.h \
                             $(PLUGIN_HDR) | deps-unit
	@mkdir -p $(@D)
	$(CC) $(UNIT_CFLAGS) -c -o $@ $<

# The host gets no seams from helpers.c: the plugin brings its own.
$(UNIT_BUILD)/obj/helpers-host.o: $(UNIT_DIR)/helpers.c $(UNIT_DIR)/helpers.h \
                                  $(PLUGIN_HDR) | deps-unit
	@mkdir -p $(@D)
	$(CC) $(UNIT_CFLAGS) -DHELPERS_NO_SEAMS -c -o $@ $<

$(UNIT_BUILD)/test_host: $(UNIT_DIR)/test_host.c \
                         $(UNIT_BUILD)/obj/helpers-host.o \
                         $(UNIT_DIR)/helpers.h $(PLUGIN_HDR) | deps-unit
	$(CC) $(UNIT_CFLAGS) -DSTAP_SO='"$(abspath $(BUILD)/stap.so)"' \
	  -rdynamic -o $@ $< $(UNIT_BUILD)/obj/helpers-host.o -lltdl $(UNIT_LIBS)

$(UNIT_BUILD)/test_%: $(UNIT_DIR)/test_%.c $(UNIT_OBJ) $(UNIT_DIR)/helpers.h \
                      $(PLUGIN_HDR) | deps-unit
	$(CC) $(UNIT_CFLAGS) -o $@ $< $(UNIT_OBJ) $(UNIT_LIBS)

unit-tests: $(UNIT_BINS)

# Runs every binary even after a failure, then fails if any did.
check-unit: $(UNIT_BINS) $(BUILD)/stap.so
	@failed=; \
	for t in $(UNIT_BINS); do \
	  echo "==> $$t"; \
	  timeout -k 10 $(UNIT_TIMEOUT) $$t || failed="$$failed $${t##*/}"; \
	done; \
	echo "==> tests/kernel/csv-days.sh (the kernel scenarios' csv helpers across midnight)"; \
	bash tests/kernel/csv-days.sh || failed="$$failed csv-days.sh"; \
	if [ -n "$$failed" ]; then \
	  echo "==> unit tests FAILED:$$failed" >&2; exit 1; \
	fi; \
	echo "==> unit tests passed"
