/* The control socket's clients (client.c). */
#ifndef BERTH_CLIENT_H
#define BERTH_CLIENT_H

#include <stddef.h>

#define MAX_CLIENTS 64
#define FRAME_MAX (1024 * 1024)
#define CLIENT_OUT_MAX (8 * 1024 * 1024)
#define CLIENT_OUT_HWM (1024 * 1024)
#define CLIENT_STALL_MS 2000

struct client {
	int fd;
	unsigned char *in;
	size_t inlen;
	char *out;
	size_t outlen, outoff, outcap;
	int att_out, att_err;
	int want_start;
	int shut;              /* the shim's side is shut down (lingering close): only reads, until the client closes */
	long long progress_ms; /* last time the client took bytes (or went over the mark) */
	int passed_fd;         /* a descriptor that came with this client's frames, not claimed yet (-1) */
	/* Direct output: the API client's own socket, passed by berthd with the attach request. The container's
	 * output goes there as Docker sends it (stdcopy frames, or raw for a TTY) instead of as 'o'/'e' frames on
	 * this connection; -1 when not direct. Its queue is separate from this connection's (replies, exit). */
	int dfd;
	int dframed;
	char *dout;
	size_t doutlen, doutoff, doutcap;
};

/* The connected clients; client_drop moves the last one into the hole. */
struct client_set {
	struct client c[MAX_CLIENTS];
	int n;
};

/* A complete frame from client c: type byte and payload (n bytes). */
typedef void (*client_frame_fn)(void *ctx, struct client *c, char type, char *payload, size_t n);

long long now_ms(void); /* CLOCK_MONOTONIC */
/* Adds a connection accepted on the control socket (the caller checked there is room). */
void client_add(struct client_set *cs, int fd);
void client_drop(struct client_set *cs, int i);
/* Queues one frame; -1 when the client is over CLIENT_OUT_MAX. */
int client_queue(struct client *c, char type, const void *data, size_t n);
/* Queues an 'r' reply frame. */
void client_reply(struct client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int client_pending(const struct client *c);
/* Container output to every client attached to that stream (0 stdout, 1 stderr). */
void clients_broadcast(struct client_set *cs, int stream, const char *data, size_t n);
/* Reads what client i sent and hands each complete frame to fn; drops the client on EOF or a bad frame. */
void client_read(struct client_set *cs, int i, client_frame_fn fn, void *ctx);
/* Writes what client i has queued; -1 when it was dropped. */
int client_write(struct client_set *cs, int i);
/* Whether client i has direct output waiting for its API client's socket. */
int client_direct_pending(const struct client *c);
/* Writes client i's queued direct output; -1 when it was dropped. */
int client_write_direct(struct client_set *cs, int i);
/* Whether an attached client is too far behind for more output to be read now; drops clients stuck over
 * the mark for CLIENT_STALL_MS; *wait_ms gets the ms until the next stall check, or -1. */
int clients_output_blocked(struct client_set *cs, long long now, int *wait_ms);
/* Sends every client's queued direct output until `deadline` (now_ms), dropping a client whose API client does not
 * take it by then: what a client got directly comes before its exit record. */
void clients_flush_direct(struct client_set *cs, long long deadline);
/* Sends what the clients still have queued (the exit record last) until `deadline`, then closes them. */
void clients_flush(struct client_set *cs, long long deadline);

#endif
