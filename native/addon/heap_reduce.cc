/*
 * Asks V8 for the collection its memory reducer makes after ~8 s of quiet
 * (incremental marking with the reduce-memory-footprint flag: compaction,
 * the young generation shrunk, pooled pages and old bytecode released), for
 * berthd to ask as soon as it goes quiet. Node offers no way to ask for it,
 * and N-API has no V8 handle, hence the one C++ file of the addon.
 */
#include <v8.h>
#include <node_api.h>
#include "malloc_trim.h"

extern "C" napi_value js_reduce_heap(napi_env env, napi_callback_info info)
{
	(void)info;
	v8::Isolate *isolate = v8::Isolate::GetCurrent();
	if (isolate != nullptr) isolate->MemoryPressureNotification(v8::MemoryPressureLevel::kModerate);
	napi_value ret;
	napi_get_undefined(env, &ret);
	return ret;
}
