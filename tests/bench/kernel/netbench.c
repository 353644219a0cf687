/* netbench: the three workloads of `make bench-kernel` (tests/bench/kernel/guest.sh), with exact
 * control over what each end does per operation.
 *
 *   netbench serve PORT
 *       TCP listener and UDP receiver on PORT (all addresses). Prints "ready" once both are bound.
 *       Each TCP connection starts with one byte that says what it is:
 *         'B' bulk: read 64 KiB at a time and discard, until EOF.
 *         'R' request/response: read exactly 64 bytes, write 64 bytes back, until EOF.
 *         'U' UDP control: 'S' snapshots the UDP receive count (answer "ok\n"), 'E' answers
 *             "COUNT NSEC\n": datagrams received and nanoseconds elapsed since the 'S'.
 *       A thread per connection and one blocking UDP receive thread (64-byte datagrams counted).
 *       All threads inherit the caller's CPU affinity (taskset).
 *
 *   netbench bulk|rr|udp HOST PORT WARMUP SECONDS
 *   netbench suite HOST PORT WARMUP SECONDS REPS [RR_PORT]
 *       Runs the workload (suite: REPS times bulk, rr, udp in turn, one process for them all;
 *       rr against RR_PORT if given, e.g. a server pinned to the client's own CPU)
 *       against a server for WARMUP + SECONDS seconds each (fractions allowed) and prints one
 *       line per run for the measured SECONDS:
 *         RESULT bulk VALUE        bytes/s written (64 KiB writes; TCP flow control makes this the
 *                                  receiver's rate too)
 *         RESULT rr VALUE          64-byte request/response round trips per second (TCP_NODELAY)
 *         RESULT udp VALUE sent=S  64-byte datagrams per second the receiver got (its own count
 *                                  and clock); S is what the sender sent per second
 *       Exit status 0, or 1 with a message on stderr if anything failed (a workload that dies is
 *       a broken run, not a slow one).
 *
 * Timing: an interval timer (SIGALRM, SA_RESTART) ends the warm-up and the run; the loops only
 * test a flag, so no clock is read per operation.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define BULK_CHUNK (64 * 1024)
#define MSG 64

static void die(const char *what) {
	fprintf(stderr, "netbench: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void fail(const char *what) {
	fprintf(stderr, "netbench: %s\n", what);
	exit(1);
}

static uint64_t now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Full reads and writes; 0 on success, -1 on EOF or error. */
static int read_full(int fd, void *buf, size_t n) {
	char *p = buf;
	while (n > 0) {
		ssize_t r = read(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static int write_full(int fd, const void *buf, size_t n) {
	const char *p = buf;
	while (n > 0) {
		ssize_t r = write(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* ------------------------------------------------------------------ server */

static atomic_ullong udp_count;

static void *udp_thread(void *arg) {
	int fd = (int)(intptr_t)arg;
	char buf[2048];
	for (;;) {
		ssize_t r = recv(fd, buf, sizeof buf, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			die("udp recv");
		}
		atomic_fetch_add_explicit(&udp_count, 1, memory_order_relaxed);
	}
	return NULL;
}

static void *conn_thread(void *arg) {
	int fd = (int)(intptr_t)arg;
	char kind;
	if (read_full(fd, &kind, 1) < 0)
		goto out;
	if (kind == 'B') {
		char *buf = malloc(BULK_CHUNK);
		if (!buf)
			fail("out of memory");
		for (;;) {
			ssize_t r = read(fd, buf, BULK_CHUNK);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				break;
		}
		free(buf);
	} else if (kind == 'R') {
		char buf[MSG];
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		while (read_full(fd, buf, MSG) == 0 && write_full(fd, buf, MSG) == 0)
			;
	} else if (kind == 'U') {
		unsigned long long c0 = 0;
		uint64_t t0 = 0;
		char cmd, line[64];
		while (read_full(fd, &cmd, 1) == 0) {
			if (cmd == 'S') {
				c0 = atomic_load(&udp_count);
				t0 = now_ns();
				snprintf(line, sizeof line, "ok\n");
			} else if (cmd == 'E') {
				unsigned long long c = atomic_load(&udp_count) - c0;
				snprintf(line, sizeof line, "%llu %llu\n", c, (unsigned long long)(now_ns() - t0));
			} else {
				break;
			}
			if (write_full(fd, line, strlen(line)) < 0)
				break;
		}
	}
out:
	close(fd);
	return NULL;
}

static _Noreturn void serve(int port) {
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_ANY);
	int one = 1;
	int ls = socket(AF_INET, SOCK_STREAM, 0);
	if (ls < 0)
		die("socket");
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0)
		die("bind tcp");
	if (listen(ls, 64) < 0)
		die("listen");
	int us = socket(AF_INET, SOCK_DGRAM, 0);
	if (us < 0)
		die("socket udp");
	int rcvbuf = 4 << 20;
	setsockopt(us, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
	if (bind(us, (struct sockaddr *)&a, sizeof a) < 0)
		die("bind udp");
	pthread_t t;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, udp_thread, (void *)(intptr_t)us) != 0)
		fail("pthread_create");
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		int c = accept(ls, NULL, NULL);
		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			die("accept");
		}
		if (pthread_create(&t, &attr, conn_thread, (void *)(intptr_t)c) != 0)
			fail("pthread_create");
	}
}

/* ------------------------------------------------------------------ clients */

static volatile sig_atomic_t phase; /* 0 warm-up, 1 measuring, 2 done */

static void on_alarm(int sig) {
	(void)sig;
	phase++;
}

static void start_timer(double warmup, double seconds) {
	phase = 0;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_alarm;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	struct itimerval it;
	it.it_value.tv_sec = (time_t)warmup;
	it.it_value.tv_usec = (suseconds_t)((warmup - (double)(time_t)warmup) * 1e6);
	if (it.it_value.tv_sec == 0 && it.it_value.tv_usec == 0)
		it.it_value.tv_usec = 1;
	it.it_interval.tv_sec = (time_t)seconds;
	it.it_interval.tv_usec = (suseconds_t)((seconds - (double)(time_t)seconds) * 1e6);
	if (setitimer(ITIMER_REAL, &it, NULL) < 0)
		die("setitimer");
}

static void stop_timer(void) {
	struct itimerval it;
	memset(&it, 0, sizeof it);
	setitimer(ITIMER_REAL, &it, NULL);
}

static int connect_to(const char *host, const char *port, int type) {
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = type}, *res;
	int rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0) {
		fprintf(stderr, "netbench: %s:%s: %s\n", host, port, gai_strerror(rc));
		exit(1);
	}
	int fd = socket(res->ai_family, res->ai_socktype, 0);
	if (fd < 0)
		die("socket");
	if (connect(fd, res->ai_addr, res->ai_addrlen) < 0)
		die("connect");
	freeaddrinfo(res);
	/* A server that stops answering must not hang the run. */
	struct timeval tv = {.tv_sec = 20};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	return fd;
}

/* Counts ops from the first loop iteration in phase 1 to the first in phase 2. */
struct window {
	unsigned long long n0;
	uint64_t t0, t1;
	int started;
};

/* Call after each operation with the running count; returns 1 when the run is over. */
static int window_tick(struct window *w, unsigned long long n) {
	if (phase == 0)
		return 0;
	if (!w->started) {
		w->started = 1;
		w->n0 = n;
		w->t0 = now_ns();
	}
	if (phase >= 2) {
		w->t1 = now_ns();
		return 1;
	}
	return 0;
}

static double window_rate(const struct window *w, unsigned long long n) {
	double s = (double)(w->t1 - w->t0) / 1e9;
	return s > 0 ? (double)(n - w->n0) / s : 0;
}

static int run_bulk(const char *host, const char *port, double warmup, double seconds) {
	int fd = connect_to(host, port, SOCK_STREAM);
	char *buf = calloc(1, BULK_CHUNK);
	if (!buf)
		fail("out of memory");
	if (write_full(fd, "B", 1) < 0)
		die("bulk: write");
	struct window w = {0};
	unsigned long long bytes = 0;
	start_timer(warmup, seconds);
	for (;;) {
		ssize_t r = write(fd, buf, BULK_CHUNK);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			die("bulk: write");
		bytes += (unsigned long long)r;
		if (window_tick(&w, bytes))
			break;
	}
	stop_timer();
	printf("RESULT bulk %.0f\n", window_rate(&w, bytes));
	close(fd);
	free(buf);
	return 0;
}

static int run_rr(const char *host, const char *port, double warmup, double seconds) {
	int fd = connect_to(host, port, SOCK_STREAM);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (write_full(fd, "R", 1) < 0)
		die("rr: write");
	char buf[MSG];
	memset(buf, 'r', sizeof buf);
	struct window w = {0};
	unsigned long long n = 0;
	start_timer(warmup, seconds);
	for (;;) {
		if (write_full(fd, buf, MSG) < 0)
			die("rr: write");
		if (read_full(fd, buf, MSG) < 0)
			die("rr: read (server gone or 20 s without an answer)");
		n++;
		if (window_tick(&w, n))
			break;
	}
	stop_timer();
	printf("RESULT rr %.0f\n", window_rate(&w, n));
	close(fd);
	return 0;
}

static void ctl(int fd, char cmd, char *reply, size_t len) {
	if (write_full(fd, &cmd, 1) < 0)
		die("udp control: write");
	size_t i = 0;
	while (i + 1 < len) {
		ssize_t r = read(fd, reply + i, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			die("udp control: read (server gone?)");
		if (reply[i++] == '\n')
			break;
	}
	reply[i] = 0;
}

static int run_udp(const char *host, const char *port, double warmup, double seconds) {
	int cfd = connect_to(host, port, SOCK_STREAM);
	if (write_full(cfd, "U", 1) < 0)
		die("udp control: write");
	int fd = connect_to(host, port, SOCK_DGRAM);
	char buf[MSG], reply[64];
	memset(buf, 'u', sizeof buf);
	struct window w = {0};
	unsigned long long n = 0;
	start_timer(warmup, seconds);
	for (;;) {
		ssize_t r = send(fd, buf, MSG, 0);
		if (r < 0) {
			/* ENOBUFS/ECONNREFUSED can happen on a full queue or a late ICMP; count nothing. */
			if (errno == EINTR || errno == ENOBUFS || errno == ECONNREFUSED || errno == EAGAIN)
				continue;
			die("udp: send");
		}
		n++;
		if (phase >= 1 && !w.started)
			ctl(cfd, 'S', reply, sizeof reply);
		if (window_tick(&w, n))
			break;
	}
	stop_timer();
	ctl(cfd, 'E', reply, sizeof reply);
	unsigned long long got, ns;
	if (sscanf(reply, "%llu %llu", &got, &ns) != 2 || ns == 0)
		fail("udp control: bad answer from the server");
	printf("RESULT udp %.0f sent=%.0f\n", (double)got / ((double)ns / 1e9), window_rate(&w, n));
	close(fd);
	close(cfd);
	return 0;
}

static void usage(void) {
	fprintf(stderr, "usage: netbench serve PORT\n"
	                "       netbench bulk|rr|udp HOST PORT WARMUP SECONDS\n"
	                "       netbench suite HOST PORT WARMUP SECONDS REPS [RR_PORT]\n");
	exit(2);
}

int main(int argc, char **argv) {
	signal(SIGPIPE, SIG_IGN);
	if (argc == 3 && strcmp(argv[1], "serve") == 0)
		serve(atoi(argv[2]));
	if (argc != 6 && !((argc == 7 || argc == 8) && strcmp(argv[1], "suite") == 0))
		usage();
	double warmup = atof(argv[4]), seconds = atof(argv[5]);
	if (warmup < 0 || seconds <= 0)
		usage();
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (strcmp(argv[1], "suite") == 0) {
		int reps = atoi(argv[6]);
		const char *rr_port = argc == 8 ? argv[7] : argv[3];
		if (reps < 1)
			usage();
		for (int i = 0; i < reps; i++) {
			run_bulk(argv[2], argv[3], warmup, seconds);
			run_rr(argv[2], rr_port, warmup, seconds);
			run_udp(argv[2], argv[3], warmup, seconds);
		}
		return 0;
	}
	if (strcmp(argv[1], "bulk") == 0)
		return run_bulk(argv[2], argv[3], warmup, seconds);
	if (strcmp(argv[1], "rr") == 0)
		return run_rr(argv[2], argv[3], warmup, seconds);
	if (strcmp(argv[1], "udp") == 0)
		return run_udp(argv[2], argv[3], warmup, seconds);
	usage();
	return 2;
}
