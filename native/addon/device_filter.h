/* attachDeviceFilter (device_filter.c). */
#ifndef BERTH_DEVICE_FILTER_H
#define BERTH_DEVICE_FILTER_H

#include <node_api.h>

napi_value js_attach_device_filter(napi_env env, napi_callback_info info);

#endif
