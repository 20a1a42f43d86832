/* malloc_trim for berthd: returns the free pages of glibc's malloc arenas to the kernel. */
#ifndef BERTH_MALLOC_TRIM_H
#define BERTH_MALLOC_TRIM_H
#include <node_api.h>

/* mallocTrim(): malloc_trim(0); true when memory was released (always false without glibc). */
napi_value js_malloc_trim(napi_env env, napi_callback_info info);

#endif
