/* sd_notify for berthd: one datagram to $NOTIFY_SOCKET (systemd Type=notify readiness). */
#ifndef BERTH_SD_NOTIFY_H
#define BERTH_SD_NOTIFY_H
#include <node_api.h>

/* sdNotify(socketPath, message): sends message as one datagram; '@' at the start means the abstract namespace. */
napi_value js_sd_notify(napi_env env, napi_callback_info info);

#endif
