/* The container log in Docker's json-file format. */
#ifndef BERTH_LOG_H
#define BERTH_LOG_H

#include <stddef.h>

struct logw;
struct logw *logw_open(const char *path, long long max_size, int max_file, int cri, int compress, const char *attrs);
/* Closes and opens the log path again (the kubelet renamed the file away: CRI ReopenContainerLog). */
int logw_reopen(struct logw *l);
void logw_data(struct logw *l, int stream, const char *data, size_t n); /* stream 0 stdout, 1 stderr */
void logw_flush(struct logw *l);

#endif
