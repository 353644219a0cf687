/* The <Plugin stap> block, and the files it names: whether they may be
 * trusted (who can change them) and each module's parameter list. */
#ifndef COLLECTD_STAP_CONFIG_H
#define COLLECTD_STAP_CONFIG_H

#include "record.h"

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "liboconfig/oconfig.h"

#define CONFIG_DEFAULT_STAPRUN "/usr/bin/staprun"
#define CONFIG_DEFAULT_PROCFS_DIR "/proc/systemtap"
#define CONFIG_DEFAULT_PROC_MODULES "/proc/modules"
#define CONFIG_DEFAULT_RESTART_DELAY_MS 1000
#define CONFIG_DEFAULT_RESTART_DELAY_MAX_MS 60000
#define CONFIG_DEFAULT_STOP_TIMEOUT_MS 10000
#define CONFIG_DEFAULT_MAX_SERIES 4096
/* SystemTap's relay buffer, per group and online CPU (staprun -b). Without -b a
 * module takes 16 MiB a CPU (9 groups on 64 CPUs: 9 GiB of kernel memory); a
 * batch is at most MaxBatchRecords lines (4096 x ~80 bytes: 330 KB). */
#define CONFIG_DEFAULT_BUFFER_MIB 1
#define CONFIG_MAX_BUFFER_MIB 64
#define CONFIG_PARAM_NAME_SIZE 64
#define CONFIG_PARAM_VALUE_SIZE 256
#define CONFIG_MAX_PARAMS 32
/* A parameter list larger than this is not one `make modules' wrote. */
#define CONFIG_PARAMS_MAX_BYTES 65536

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
  /* staprun -b: MiB of relay buffer a CPU (0 until config_finish). */
  size_t buffer_mib;
  struct group_param params[CONFIG_MAX_PARAMS];
  size_t nparams;
};

struct plugin_config {
  char staprun[PATH_MAX];
  char module_dir[PATH_MAX]; /* "" until set or defaulted */
  char procfs_dir[PATH_MAX]; /* where modules' procfs control files are */
  /* The kernel's list of loaded modules; another file only in tests. */
  char proc_modules[PATH_MAX];
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

/* What config_open_trusted found. */
enum config_trust {
  CONFIG_TRUST_OK,
  CONFIG_TRUST_MISSING, /* the file or a directory on its way is not there */
  CONFIG_TRUST_NOT_REGULAR, /* a directory, a device, ... */
  CONFIG_TRUST_REFUSED,     /* someone but root could change it */
  CONFIG_TRUST_ERROR,       /* any other failure (permission, loops, ...) */
};

/* Opens a file the plugin runs or loads (Staprun, a module, a parameter
 * list) only if nobody but root can change it: the file is a regular file,
 * not a symbolic link (it is opened with O_NOFOLLOW), and it and every
 * directory on its way from / (symbolic links on the way resolved, and the
 * directories they lead through checked too) are owned by root, or by the
 * user collectd runs as, and not writable by group or others, as staprun
 * itself demands of non-root users. `flags' is O_PATH (check only) or
 * O_RDONLY. On CONFIG_TRUST_OK *fd is the open file (the caller closes it);
 * otherwise why says what is wrong and, when refused, the command that fixes
 * it ("directory /x is writable by others (mode 0777); fix with chmod o-w
 * /x"), without the file's own name in front. */
enum config_trust config_open_trusted(const char *path, int flags, int *fd,
                                      char *why, size_t size);

/* The parameter list `make modules' writes beside module DIR/NAME.ko:
 * DIR/NAME.params (NAME.ko.params for a module not named .ko). */
void config_params_path(const char *module, char *out, size_t size);

/* Checks the group's Params against its module's parameter list (read as
 * config_open_trusted allows, at most CONFIG_PARAMS_MAX_BYTES; one name a
 * line, `#' comment lines, blank lines). interval_ms is set by the plugin and
 * always allowed. A group without Params needs no list. Returns 0, or -1
 * with why saying which Param, which names are allowed, or what is wrong
 * with the list. */
int config_check_params(const struct group_config *g, char *why, size_t size);

#endif
