/* The container log in Docker's json-file format. */
#ifndef BERTH_LOG_H
#define BERTH_LOG_H

#include <stddef.h>

#define LOG_COMMIT_MS 2

struct logw;
struct logw *logw_open(const char *path, long long max_size, int max_file, int cri, int compress, const char *attrs);
/* Closes and opens the log path again (the kubelet renamed the file away: CRI ReopenContainerLog). */
int logw_reopen(struct logw *l);
/* Encodes output (stream 0 stdout, 1 stderr) and writes it out up to an aligned offset in the file; the rest
 * waits for more output or for logw_commit, which the caller runs once output pauses (LOG_COMMIT_MS at most). */
void logw_data(struct logw *l, int stream, const char *data, size_t n);
int logw_pending(const struct logw *l);
void logw_commit(struct logw *l);
void logw_flush(struct logw *l);

#endif
