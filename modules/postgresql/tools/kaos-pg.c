/*
 * kaos-pg: the PostgreSQL module's own small helper, a static binary (no shared library to load
 * and resolve, which under TCG is most of what starting psql costs: modules/README.md).
 *
 *   kaos-pg as UID GID PROGRAM ARG...   runs PROGRAM as UID:GID (no supplementary groups), in
 *                                       this process (exec): su and a shell per server start less
 *   kaos-pg session SOCKET APPNAME      a superuser session (user and database postgres, trust
 *                                       over the unix socket SOCKET) that runs requests read on
 *                                       stdin until its end
 *   kaos-pg readahead FILE...           asks the kernel to read FILEs into the page cache
 *                                       (readahead(2)): whole files in large reads, where the
 *                                       server's first start faults them in page by page
 *
 * A request is SQL text lines ended by a line "--kaos-run ID"; the text goes to the server as one
 * simple query (several statements in one text are one transaction, as the protocol defines). Its
 * answer, on stdout: each result row as one line, the fields separated by one space (NULL empty);
 * "ERROR: MESSAGE" for an error (the rest of that text is not run; a transaction it left open is
 * rolled back); then "kaos-done ID". Exit status: 0 at the end of stdin, 1 when the server cannot
 * be reached or closes the connection, 2 for bad arguments. readahead: 1 when a file could not
 * be read ahead.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <grp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int fd = -1;

static void die(const char *what) {
	printf("ERROR: %s\n", what);
	fflush(stdout);
	exit(1);
}

static void put32(unsigned char *p, uint32_t v) {
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static uint32_t get32(const unsigned char *p) {
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void send_all(const void *buf, size_t n) {
	const char *p = buf;
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR) continue;
		if (w <= 0) die("the connection to the server broke (write)");
		p += w;
		n -= (size_t)w;
	}
}

static void recv_all(void *buf, size_t n) {
	char *p = buf;
	while (n > 0) {
		ssize_t r = read(fd, p, n);
		if (r < 0 && errno == EINTR) continue;
		if (r <= 0) die("the server closed the connection");
		p += r;
		n -= (size_t)r;
	}
}

/* One message from the server: its type; its body in *body (malloc'd), its length in *len. */
static char recv_msg(unsigned char **body, uint32_t *len) {
	unsigned char head[5];
	recv_all(head, 5);
	uint32_t n = get32(head + 1);
	if (n < 4 || n > (64u << 20)) die("a malformed message from the server");
	*len = n - 4;
	*body = malloc(*len + 1);
	if (!*body) die("out of memory");
	recv_all(*body, *len);
	(*body)[*len] = 0;
	return (char)head[0];
}

/* An ErrorResponse's message field ('M'). */
static const char *error_message(const unsigned char *body, uint32_t len) {
	const unsigned char *p = body, *end = body + len;
	while (p < end && *p) {
		char code = (char)*p++;
		const char *text = (const char *)p;
		p += strlen(text) + 1;
		if (code == 'M') return text;
	}
	return "(no message)";
}

/* Reads messages until ReadyForQuery; prints rows and errors. Returns the transaction status. */
static char until_ready(int print) {
	for (;;) {
		unsigned char *b;
		uint32_t n;
		char t = recv_msg(&b, &n);
		if (t == 'Z') {
			char status = n > 0 ? (char)b[0] : 'I';
			free(b);
			return status;
		}
		if (t == 'E') {
			printf("ERROR: %s\n", error_message(b, n));
		} else if (t == 'D' && print && n >= 2) {
			unsigned cols = (unsigned)b[0] << 8 | b[1];
			const unsigned char *p = b + 2, *end = b + n;
			for (unsigned i = 0; i < cols && p + 4 <= end; i++) {
				uint32_t l = get32(p);
				p += 4;
				if (i > 0) putchar(' ');
				if (l != 0xffffffffu && p + l <= end) {
					fwrite(p, 1, l, stdout);
					p += l;
				}
			}
			putchar('\n');
		}
		free(b);
	}
}

static void query(const char *sql, int print) {
	size_t n = strlen(sql) + 1;
	unsigned char head[5] = {'Q'};
	put32(head + 1, (uint32_t)(n + 4));
	send_all(head, 5);
	send_all(sql, n);
	if (until_ready(print) == 'E') {
		/* the text began a transaction and failed inside it: end it */
		static const char rollback[] = "ROLLBACK";
		put32(head + 1, sizeof rollback + 4);
		send_all(head, 5);
		send_all(rollback, sizeof rollback);
		until_ready(0);
	}
}

static void session(const char *socket_path, const char *appname) {
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(socket_path) >= sizeof sa.sun_path) die("the socket path is too long");
	strcpy(sa.sun_path, socket_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		printf("ERROR: cannot connect to %s: %s\n", socket_path, strerror(errno));
		fflush(stdout);
		exit(1);
	}
	/* StartupMessage, protocol 3.0 */
	unsigned char msg[512];
	size_t n = 8;
	const char *params[] = {"user", "postgres", "database", "postgres", "application_name", appname};
	for (size_t i = 0; i < 6; i++) {
		size_t l = strlen(params[i]) + 1;
		if (n + l + 1 > sizeof msg) die("the application name is too long");
		memcpy(msg + n, params[i], l);
		n += l;
	}
	msg[n++] = 0;
	put32(msg, (uint32_t)n);
	put32(msg + 4, 196608);
	send_all(msg, n);
	for (;;) {
		unsigned char *b;
		uint32_t l;
		char t = recv_msg(&b, &l);
		if (t == 'E') {
			printf("ERROR: %s\n", error_message(b, l));
			fflush(stdout);
			exit(1);
		}
		if (t == 'R' && (l < 4 || get32(b) != 0)) {
			die("the server asks for a password (the module's pg_hba.conf trusts local connections)");
		}
		free(b);
		if (t == 'Z') break;
	}
	/* requests from stdin */
	char *line = NULL, *sql = NULL;
	size_t cap = 0, len = 0, sqlcap = 0;
	ssize_t got;
	while ((got = getline(&line, &cap, stdin)) >= 0) {
		if (strncmp(line, "--kaos-run ", 11) == 0) {
			line[strcspn(line, "\n")] = 0;
			if (len > 0) query(sql, 1);
			printf("kaos-done %s\n", line + 11);
			fflush(stdout);
			len = 0;
			continue;
		}
		if (len + (size_t)got + 1 > sqlcap) {
			sqlcap = (len + (size_t)got + 1) * 2;
			sql = realloc(sql, sqlcap);
			if (!sql) die("out of memory");
		}
		memcpy(sql + len, line, (size_t)got);
		len += (size_t)got;
		sql[len] = 0;
	}
	static const unsigned char terminate[5] = {'X', 0, 0, 0, 4};
	send_all(terminate, 5);
	close(fd);
}

int main(int argc, char **argv) {
	if (argc >= 5 && strcmp(argv[1], "as") == 0) {
		char *end1, *end2;
		long uid = strtol(argv[2], &end1, 10), gid = strtol(argv[3], &end2, 10);
		if (*end1 || *end2 || uid <= 0 || gid <= 0) {
			fprintf(stderr, "kaos-pg as: UID and GID are positive numbers\n");
			return 2;
		}
		if (setgroups(0, NULL) < 0 || setgid((gid_t)gid) < 0 || setuid((uid_t)uid) < 0) {
			perror("kaos-pg as");
			return 1;
		}
		execv(argv[4], argv + 4);
		fprintf(stderr, "kaos-pg as: cannot run %s: %s\n", argv[4], strerror(errno));
		return 1;
	}
	if (argc >= 3 && strcmp(argv[1], "readahead") == 0) {
		int rc = 0;
		for (int i = 2; i < argc; i++) {
			int f = open(argv[i], O_RDONLY | O_CLOEXEC);
			struct stat st;
			if (f < 0 || fstat(f, &st) < 0 || readahead(f, 0, (size_t)st.st_size) < 0) rc = 1;
			if (f >= 0) close(f);
		}
		return rc;
	}
	if (argc == 4 && strcmp(argv[1], "session") == 0) {
		session(argv[2], argv[3]);
		return 0;
	}
	fprintf(stderr, "usage: kaos-pg as UID GID PROGRAM ARG... | kaos-pg session SOCKET APPNAME |"
	                " kaos-pg readahead FILE...\n");
	return 2;
}
