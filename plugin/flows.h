/* The top-flows report a module serves on its procfs control file, for the
 * follow-up notification that names the flows behind an alert. */
#ifndef COLLECTD_STAP_FLOWS_H
#define COLLECTD_STAP_FLOWS_H

#include <stddef.h>
#include <stdint.h>

#define FLOWS_MAX 10
#define FLOWS_ADDR_SIZE 64 /* "[ipv6]:port" */

struct flow {
  char local[FLOWS_ADDR_SIZE];
  char remote[FLOWS_ADDR_SIZE];
  uint64_t count;
};

/* Parses "flow LOCAL REMOTE COUNT" lines (other lines are skipped: the
 * report may carry a header). Returns the number of flows (at most max). */
size_t flows_parse(const char *text, size_t len, struct flow *out, size_t max);

/* Reads and parses the file at path (a procfs file: read until EOF, at most
 * 16 KiB). Returns the number of flows, or -errno. */
int flows_read(const char *path, struct flow *out, size_t max);

#endif
