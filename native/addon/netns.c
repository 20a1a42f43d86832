/*
 * berth_netns_create: a network namespace with its veth endpoints, over rtnetlink, from a thread of its own.
 * It replaces `unshare --net=<file> ip -batch -` + `ip -batch -` (three execs, ~9 ms of CPU and ~10 ms of wall time
 * per container start on these machines). The thread enters the new namespace with unshare(CLONE_NEWNET) (a thread
 * may: the network namespace is per thread) and ends with it, so no thread of berthd is ever left elsewhere.
 */
#define _GNU_SOURCE
#include "netns.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define MAX_EPS 16
#define MAX_ADDRS 8

struct addr {
  int family;
  unsigned char bytes[16];
  int prefix;
};

struct ep {
  char ifname[IFNAMSIZ];
  char hostname[IFNAMSIZ];
  char bridge[IFNAMSIZ];
  char alias[128];
  unsigned char mac[6];
  unsigned mtu;
  int isolated;
  unsigned bridge_index;
  struct addr addrs[MAX_ADDRS];
  int naddrs;
  int has_gw4, has_gw6;
  unsigned char gw4[4], gw6[16];
};

struct plan {
  struct ep eps[MAX_EPS];
  int n;
};

static int fail(char *err, size_t errlen, int rc, const char *step, const char *what) {
  snprintf(err, errlen, "%s%s%s: %s", step, what ? " " : "", what ? what : "", strerror(-rc));
  return rc;
}

static int copy_name(char *dst, size_t size, const char *src) {
  size_t n = strlen(src);
  if (n == 0 || n >= size) return -EINVAL;
  memcpy(dst, src, n + 1);
  return 0;
}

static int parse_addr(const char *s, struct addr *a) {
  char buf[64];
  const char *slash = strchr(s, '/');
  if (!slash || (size_t)(slash - s) >= sizeof buf) return -EINVAL;
  memcpy(buf, s, (size_t)(slash - s));
  buf[slash - s] = 0;
  char *end;
  long prefix = strtol(slash + 1, &end, 10);
  a->family = strchr(buf, ':') ? AF_INET6 : AF_INET;
  if (*end || prefix < 0 || prefix > (a->family == AF_INET ? 32 : 128)) return -EINVAL;
  a->prefix = (int)prefix;
  return inet_pton(a->family, buf, a->bytes) == 1 ? 0 : -EINVAL;
}

/* Parses the spec (see netns.h) before anything is changed. */
static int parse_plan(const char *spec, struct plan *p, char *err, size_t errlen) {
  char *copy = strdup(spec);
  if (!copy) return fail(err, errlen, -ENOMEM, "spec", NULL);
  int rc = 0;
  char *save = NULL;
  for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    char f[8][128];
    int nf = sscanf(line, "%127s %127s %127s %127s %127s %127s %127s %127s", f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7]);
    struct ep *e = p->n > 0 ? &p->eps[p->n - 1] : NULL;
    if (nf == 8 && strcmp(f[0], "ep") == 0) {
      if (p->n >= MAX_EPS) { rc = -E2BIG; break; }
      e = &p->eps[p->n++];
      memset(e, 0, sizeof *e);
      char *end;
      unsigned long mtu = strtoul(f[4], &end, 10);
      if (copy_name(e->ifname, sizeof e->ifname, f[1]) || copy_name(e->hostname, sizeof e->hostname, f[2]) ||
          copy_name(e->bridge, sizeof e->bridge, f[5]) || copy_name(e->alias, sizeof e->alias, f[6]) || *end || mtu < 68 || mtu > 65535 ||
          sscanf(f[3], "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &e->mac[0], &e->mac[1], &e->mac[2], &e->mac[3], &e->mac[4], &e->mac[5]) != 6) {
        rc = -EINVAL;
        break;
      }
      e->mtu = (unsigned)mtu;
      e->isolated = strcmp(f[7], "1") == 0;
    } else if (nf == 2 && e && strcmp(f[0], "addr") == 0) {
      if (e->naddrs >= MAX_ADDRS) { rc = -E2BIG; break; }
      if ((rc = parse_addr(f[1], &e->addrs[e->naddrs])) < 0) break;
      e->naddrs++;
    } else if (nf == 2 && e && strcmp(f[0], "gw") == 0) {
      if (inet_pton(AF_INET, f[1], e->gw4) != 1) { rc = -EINVAL; break; }
      e->has_gw4 = 1;
    } else if (nf == 2 && e && strcmp(f[0], "gw6") == 0) {
      if (inet_pton(AF_INET6, f[1], e->gw6) != 1) { rc = -EINVAL; break; }
      e->has_gw6 = 1;
    } else {
      rc = -EINVAL;
      break;
    }
  }
  free(copy);
  return rc < 0 ? fail(err, errlen, rc, "spec", NULL) : 0;
}

/* ---- rtnetlink ---------------------------------------------------------------------------------------------- */

struct msg {
  union {
    struct nlmsghdr h;
    char buf[2048];
  };
};

static void msg_init(struct msg *m, int type, int flags, const void *hdr, size_t hdrlen) {
  memset(m, 0, sizeof *m);
  m->h.nlmsg_len = NLMSG_LENGTH(hdrlen);
  m->h.nlmsg_type = (unsigned short)type;
  m->h.nlmsg_flags = (unsigned short)(NLM_F_REQUEST | NLM_F_ACK | flags);
  memcpy(NLMSG_DATA(&m->h), hdr, hdrlen);
}

/* Appends an attribute (NULL data: an empty one, to be filled as a nest); the buffer is large for what we send. */
static struct rtattr *attr(struct msg *m, int type, const void *data, size_t len) {
  struct rtattr *a = (struct rtattr *)(m->buf + NLMSG_ALIGN(m->h.nlmsg_len));
  if (NLMSG_ALIGN(m->h.nlmsg_len) + RTA_ALIGN(RTA_LENGTH(len)) > sizeof m->buf) abort();
  a->rta_type = (unsigned short)type;
  a->rta_len = (unsigned short)RTA_LENGTH(len);
  if (len) memcpy(RTA_DATA(a), data, len);
  m->h.nlmsg_len = NLMSG_ALIGN(m->h.nlmsg_len) + RTA_ALIGN(a->rta_len);
  return a;
}

static void attr_str(struct msg *m, int type, const char *s) {
  attr(m, type, s, strlen(s) + 1);
}

static void attr_u32(struct msg *m, int type, uint32_t v) {
  attr(m, type, &v, sizeof v);
}

static void nest_end(struct msg *m, struct rtattr *a) {
  a->rta_len = (unsigned short)((m->buf + m->h.nlmsg_len) - (char *)a);
}

static int nl_open(void) {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return -errno;
  struct timeval tv = {.tv_sec = 10};
  struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
  if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    int e = -errno;
    close(fd);
    return e;
  }
  return fd;
}

/* Sends one request and waits for its acknowledgement: 0 or -errno. */
static int nl_talk(int fd, struct msg *m) {
  static __thread unsigned seq;
  m->h.nlmsg_seq = ++seq;
  struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
  if (sendto(fd, m->buf, m->h.nlmsg_len, 0, (struct sockaddr *)&sa, sizeof sa) < 0) return -errno;
  char buf[8192] __attribute__((aligned(8)));
  for (;;) {
    ssize_t got = recv(fd, buf, sizeof buf, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    int len = (int)got;
    for (struct nlmsghdr *r = (struct nlmsghdr *)buf; NLMSG_OK(r, len); r = NLMSG_NEXT(r, len)) {
      if (r->nlmsg_seq != m->h.nlmsg_seq || r->nlmsg_type != NLMSG_ERROR) continue;
      return ((struct nlmsgerr *)NLMSG_DATA(r))->error;
    }
  }
}

static int link_up(int fd, unsigned index) {
  struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC, .ifi_index = (int)index, .ifi_flags = IFF_UP, .ifi_change = IFF_UP};
  struct msg m;
  msg_init(&m, RTM_NEWLINK, 0, &ifi, sizeof ifi);
  return nl_talk(fd, &m);
}

/* The veth, created from inside the namespace; its peer (the host side) is born in the namespace `hostns`. */
static int veth_create(int fd, const struct ep *e, int hostns) {
  struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC};
  struct msg m;
  msg_init(&m, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &ifi, sizeof ifi);
  attr_str(&m, IFLA_IFNAME, e->ifname);
  attr(&m, IFLA_ADDRESS, e->mac, sizeof e->mac);
  attr_u32(&m, IFLA_MTU, e->mtu);
  struct rtattr *linkinfo = attr(&m, IFLA_LINKINFO, NULL, 0);
  attr_str(&m, IFLA_INFO_KIND, "veth");
  struct rtattr *data = attr(&m, IFLA_INFO_DATA, NULL, 0);
  struct rtattr *peer = attr(&m, VETH_INFO_PEER, NULL, 0);
  struct ifinfomsg peer_ifi = {.ifi_family = AF_UNSPEC};
  memcpy(m.buf + m.h.nlmsg_len, &peer_ifi, sizeof peer_ifi);
  m.h.nlmsg_len += NLMSG_ALIGN(sizeof peer_ifi);
  attr_str(&m, IFLA_IFNAME, e->hostname);
  attr_u32(&m, IFLA_MTU, e->mtu);
  attr_u32(&m, IFLA_NET_NS_FD, (uint32_t)hostns);
  nest_end(&m, peer);
  nest_end(&m, data);
  nest_end(&m, linkinfo);
  return nl_talk(fd, &m);
}

static int addr_add(int fd, unsigned index, const struct addr *a) {
  size_t len = a->family == AF_INET ? 4 : 16;
  struct ifaddrmsg ifa = {
    .ifa_family = (unsigned char)a->family,
    .ifa_prefixlen = (unsigned char)a->prefix,
    // IPv6 addresses skip duplicate address detection: usable at once, as dockerd sets them.
    .ifa_flags = a->family == AF_INET6 ? IFA_F_NODAD : 0,
    .ifa_scope = RT_SCOPE_UNIVERSE,
    .ifa_index = index,
  };
  struct msg m;
  msg_init(&m, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &ifa, sizeof ifa);
  attr(&m, IFA_LOCAL, a->bytes, len);
  attr(&m, IFA_ADDRESS, a->bytes, len);
  return nl_talk(fd, &m);
}

/* route replace default via <gw> dev <index> */
static int default_route(int fd, int family, const unsigned char *gw, unsigned index) {
  struct rtmsg rt = {
    .rtm_family = (unsigned char)family,
    .rtm_table = RT_TABLE_MAIN,
    .rtm_protocol = RTPROT_BOOT,
    .rtm_scope = RT_SCOPE_UNIVERSE,
    .rtm_type = RTN_UNICAST,
  };
  struct msg m;
  msg_init(&m, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, &rt, sizeof rt);
  attr(&m, RTA_GATEWAY, gw, family == AF_INET ? 4 : 16);
  attr_u32(&m, RTA_OIF, index);
  return nl_talk(fd, &m);
}

/* The host side: alias, enslaved to its bridge, up; then port isolation when asked. */
static int host_side(int fd, const struct ep *e) {
  struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC, .ifi_flags = IFF_UP, .ifi_change = IFF_UP};
  struct msg m;
  msg_init(&m, RTM_NEWLINK, 0, &ifi, sizeof ifi);
  attr_str(&m, IFLA_IFNAME, e->hostname);
  attr(&m, IFLA_IFALIAS, e->alias, strlen(e->alias));
  attr_u32(&m, IFLA_MASTER, e->bridge_index);
  int rc = nl_talk(fd, &m);
  if (rc < 0 || !e->isolated) return rc;
  struct ifinfomsg ifi2 = {.ifi_family = AF_UNSPEC};
  msg_init(&m, RTM_NEWLINK, 0, &ifi2, sizeof ifi2);
  attr_str(&m, IFLA_IFNAME, e->hostname);
  struct rtattr *linkinfo = attr(&m, IFLA_LINKINFO, NULL, 0);
  attr_str(&m, IFLA_INFO_SLAVE_KIND, "bridge");
  struct rtattr *data = attr(&m, IFLA_INFO_SLAVE_DATA, NULL, 0);
  unsigned char on = 1;
  attr(&m, IFLA_BRPORT_ISOLATED, &on, 1);
  nest_end(&m, data);
  nest_end(&m, linkinfo);
  return nl_talk(fd, &m);
}

/* ---- the thread -------------------------------------------------------------------------------------------- */

struct job {
  const char *path;
  struct plan *plan;
  char *err;
  size_t errlen;
  int rc;
};

static int build(struct job *j) {
  struct plan *p = j->plan;
  char *err = j->err;
  size_t el = j->errlen;
  int rc;
  for (int i = 0; i < p->n; i++) {
    p->eps[i].bridge_index = if_nametoindex(p->eps[i].bridge);
    if (p->eps[i].bridge_index == 0) return fail(err, el, -errno, "bridge", p->eps[i].bridge);
  }
  int hostns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (hostns < 0) return fail(err, el, -errno, "open", "/proc/thread-self/ns/net");
  int hostnl = nl_open(), nl = -1;
  if (hostnl < 0) {
    rc = fail(err, el, hostnl, "netlink socket", NULL);
    goto out;
  }
  if (unshare(CLONE_NEWNET) != 0) {
    rc = fail(err, el, -errno, "unshare", "CLONE_NEWNET");
    goto out;
  }
  if (mount("/proc/thread-self/ns/net", j->path, "none", MS_BIND, NULL) != 0) {
    rc = fail(err, el, -errno, "mount", j->path);
    goto out;
  }
  if ((nl = nl_open()) < 0) {
    rc = fail(err, el, nl, "netlink socket", "(namespace)");
    goto out;
  }
  unsigned lo = if_nametoindex("lo");
  if (lo == 0 || (rc = link_up(nl, lo)) < 0) {
    rc = fail(err, el, lo == 0 ? -errno : rc, "link set up", "lo");
    goto out;
  }
  for (int i = 0; i < p->n; i++) {
    const struct ep *e = &p->eps[i];
    if ((rc = veth_create(nl, e, hostns)) < 0) {
      fail(err, el, rc, "veth", e->ifname);
      goto out;
    }
    unsigned index = if_nametoindex(e->ifname);
    if (index == 0) {
      rc = fail(err, el, -errno, "link", e->ifname);
      goto out;
    }
    for (int k = 0; k < e->naddrs; k++) {
      if ((rc = addr_add(nl, index, &e->addrs[k])) < 0) {
        fail(err, el, rc, "addr add on", e->ifname);
        goto out;
      }
    }
    if ((rc = link_up(nl, index)) < 0 || (e->has_gw4 && (rc = default_route(nl, AF_INET, e->gw4, index)) < 0) ||
        (e->has_gw6 && (rc = default_route(nl, AF_INET6, e->gw6, index)) < 0)) {
      fail(err, el, rc, "link up / default route on", e->ifname);
      goto out;
    }
  }
  for (int i = 0; i < p->n; i++) {
    if ((rc = host_side(hostnl, &p->eps[i])) < 0) {
      fail(err, el, rc, "link set master/alias/up", p->eps[i].hostname);
      goto out;
    }
  }
  rc = 0;
out:
  if (nl >= 0) close(nl);
  if (hostnl >= 0) close(hostnl);
  close(hostns);
  return rc;
}

static void *thread_main(void *arg) {
  struct job *j = arg;
  j->rc = build(j);
  return NULL;
}

int berth_netns_create(const char *path, const char *spec, char *err, size_t errlen) {
  struct plan *plan = calloc(1, sizeof *plan);
  if (!plan) return fail(err, errlen, -ENOMEM, "plan", NULL);
  struct job j = {.path = path, .plan = plan, .err = err, .errlen = errlen};
  int rc = parse_plan(spec, plan, err, errlen);
  if (rc == 0) {
    // A thread of its own, which ends in the new namespace: no thread of the pool ever changes namespace.
    pthread_t t;
    rc = pthread_create(&t, NULL, thread_main, &j);
    if (rc != 0) {
      rc = fail(err, errlen, -rc, "pthread_create", NULL);
    } else {
      pthread_join(t, NULL);
      rc = j.rc;
    }
  }
  free(plan);
  return rc;
}
