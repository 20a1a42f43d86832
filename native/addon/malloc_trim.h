/* Memory back to the kernel for berthd: glibc's free arena pages (malloc_trim.c), V8's heap (heap_reduce.cc). */
#ifndef BERTH_MALLOC_TRIM_H
#define BERTH_MALLOC_TRIM_H
#include <node_api.h>

/* mallocTrim(): malloc_trim(0); true when memory was released (always false without glibc). */
#ifdef __cplusplus
extern "C" {
#endif
napi_value js_malloc_trim(napi_env env, napi_callback_info info);

/* reduceHeap(): starts V8's memory-reducing collection (incremental; it ends in background tasks). */
napi_value js_reduce_heap(napi_env env, napi_callback_info info);
#ifdef __cplusplus
}
#endif

#endif
