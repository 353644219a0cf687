/* The <Plugin stap> block. */
#ifndef COLLECTD_STAP_CONFIG_H
#define COLLECTD_STAP_CONFIG_H

#include "record.h"

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "liboconfig/oconfig.h"

#define CONFIG_DEFAULT_STAPRUN "/usr/bin/staprun"
#define CONFIG_DEFAULT_PROCFS_DIR "/proc/systemtap"
#define CONFIG_DEFAULT_RESTART_DELAY_MS 1000
#define CONFIG_DEFAULT_RESTART_DELAY_MAX_MS 60000
#define CONFIG_DEFAULT_STOP_TIMEOUT_MS 10000
#define CONFIG_DEFAULT_MAX_SERIES 4096
#define CONFIG_PARAM_NAME_SIZE 64
#define CONFIG_PARAM_VALUE_SIZE 256
#define CONFIG_MAX_PARAMS 32

struct group_param {
  char name[CONFIG_PARAM_NAME_SIZE];
  char value[CONFIG_PARAM_VALUE_SIZE];
};

struct group_config {
  char name[RECORD_NAME_SIZE];
  char module[PATH_MAX]; /* absolute after config_finish */
  uint64_t interval_ms;  /* 0: collectd's interval */
  size_t max_batch_records;
  size_t max_series;
  struct group_param params[CONFIG_MAX_PARAMS];
  size_t nparams;
};

struct plugin_config {
  char staprun[PATH_MAX];
  char module_dir[PATH_MAX]; /* "" until set or defaulted */
  char procfs_dir[PATH_MAX]; /* where modules' procfs control files are */
  uint64_t restart_delay_ms;
  uint64_t restart_delay_max_ms;
  uint64_t stop_timeout_ms;
  struct group_config *groups;
  size_t ngroups;
};

/* The probe groups this release ships a module for. */
extern const char *const config_known_groups[];

void config_defaults(struct plugin_config *cfg);

/* Reads one <Plugin stap> block into cfg (may be called for several blocks).
 * A bad top-level option is reported and ignored; a bad <Group> is reported
 * and left out, so the other groups still start. Returns the number of errors
 * reported. */
int config_parse(struct plugin_config *cfg, const oconfig_item_t *ci);

/* Fills defaults that depend on other options (ModuleDir from the kernel
 * release, each group's module path, intervals) once all blocks are read.
 * Returns the number of groups left out. */
int config_finish(struct plugin_config *cfg, uint64_t default_interval_ms,
                  const char *kernel_release);

void config_free(struct plugin_config *cfg);

#endif
