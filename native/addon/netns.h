/*
 * A network namespace held by a bind mount, with veth endpoints plugged in, made over rtnetlink from a short-lived
 * thread of berthd (a thread may change its own network namespace; the process never does).
 */
#ifndef BERTH_NETNS_H
#define BERTH_NETNS_H

#include <stddef.h>

/*
 * `spec` is one directive per line (made by berthd from validated values):
 *   ep <ifname> <host-ifname> <mac> <mtu> <bridge> <alias> <isolated 0|1>
 *   addr <address>/<prefix>     (an address of the last ep; IPv6 ones without duplicate address detection)
 *   gw <IPv4 gateway>           (default route of the last ep)
 *   gw6 <IPv6 gateway>
 * Creates the namespace (bind-mounted on the existing file `path`), sets lo up, and for each ep creates the veth
 * from inside with its host side born in berthd's namespace, configures and ups the inside, then enslaves the host
 * side to its bridge, names its alias and ups it. Returns 0, or -errno with `err` naming the step. The caller undoes
 * a failure (host links, the mount).
 */
int berth_netns_create(const char *path, const char *spec, char *err, size_t errlen);

#endif
