/* Logging seam: the plugin sends these to plugin_log, the unit tests capture
 * them. Levels are syslog's, as collectd's are. */
#ifndef COLLECTD_STAP_LOG_H
#define COLLECTD_STAP_LOG_H

#include <syslog.h>

void stap_log(int level, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

#endif
