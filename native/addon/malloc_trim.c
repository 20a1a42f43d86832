/*
 * glibc keeps what the process frees in its malloc arenas (the main heap and
 * one arena per thread that allocated): V8's compiler zones, array buffer
 * backing stores, sqlite's pages. free() gives back only the top of the main
 * heap; malloc_trim(0) releases every whole free page of every arena. Node
 * offers no way to ask for it, hence this file.
 */
#define _GNU_SOURCE
#include <stdbool.h>
#include "malloc_trim.h"
#ifdef __GLIBC__
#include <malloc.h>
#endif

napi_value js_malloc_trim(napi_env env, napi_callback_info info)
{
	(void)info;
	bool released = false;
#ifdef __GLIBC__
	released = malloc_trim(0) != 0;
#endif
	napi_value ret;
	napi_get_boolean(env, released, &ret);
	return ret;
}
