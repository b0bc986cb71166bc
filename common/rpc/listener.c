/* The plaintext listener: binding, the accepting thread, the descriptor
 * reserve and the EMFILE recovery. */
#define _GNU_SOURCE /* accept4 */
#include "listener.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "sw_error.h"

#define DEFAULT_RESERVE_FDS 64
/* How long a count of open descriptors is trusted while far from the limit. */
#define FD_COUNT_TTL_US 100000
/* Refusals are logged at most this often: a flood must not flood the log. */
#define REFUSAL_LOG_INTERVAL_US G_USEC_PER_SEC

struct sw_listener {
    sw_listener_options options;
    int fd;
    int port;
    int wake_fd;  /* an eventfd: written to stop the thread */
    int spare_fd; /* held so that EMFILE can still accept and close */
    GThread *thread;
    int open_fds;       /* last count */
    gint64 counted_us;  /* when it was taken */
    int accepted_since; /* connections handed on since */
    atomic_ullong accepted, refused;
    gint64 refusal_logged_us;
    unsigned long long refused_at_log;
};

gboolean sw_listener_serves(const char *address)
{
    if (address == NULL || strchr(address, '/') != NULL)
        return FALSE;
    const char *colon = strrchr(address, ':');
    if (colon == NULL || colon[1] == '\0')
        return FALSE;
    for (const char *p = colon + 1; *p; p++)
        if (!g_ascii_isdigit(*p))
            return FALSE;
    /* "unix:…", "dns:…" and other schemes name no host before a port. */
    return address[0] == '[' || strchr(address, ':') == colon;
}

/* Splits "HOST:PORT" or "[V6]:PORT"; both newly allocated. */
static gboolean split_address(const char *address, char **host, char **port)
{
    const char *colon = strrchr(address, ':');
    if (!sw_listener_serves(address))
        return FALSE;
    const char *start = address, *end = colon;
    if (address[0] == '[') {
        if (colon == address || colon[-1] != ']')
            return FALSE;
        start = address + 1;
        end = colon - 1;
    }
    *host = g_strndup(start, (gsize)(end - start));
    *port = g_strdup(colon + 1);
    return TRUE;
}

static int bind_one(const struct addrinfo *ai)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
        return -1;
    int on = 1, off = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    /* "[::]" serves IPv4 clients too, as gRPC's own listener does. */
    if (ai->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int bound_port(int fd)
{
    struct sockaddr_storage addr;
    socklen_t len = sizeof addr;
    if (getsockname(fd, (struct sockaddr *)&addr, &len) != 0)
        return -1;
    if (addr.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&addr)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&addr)->sin6_port);
}

static int listen_on(const char *address, GError **error)
{
    char *host = NULL, *port = NULL;
    if (!split_address(address, &host, &port)) {
        g_set_error(error, SW_ERROR, SW_CODE_INVALID_ARGUMENT, "cannot listen on %s: expected HOST:PORT", address);
        return -1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *found = NULL;
    int rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &found);
    int fd = -1;
    for (struct addrinfo *ai = rc == 0 ? found : NULL; ai && fd < 0; ai = ai->ai_next)
        fd = bind_one(ai);
    if (fd < 0)
        g_set_error(error, SW_ERROR, SW_CODE_UNAVAILABLE, "cannot listen on %s: %s", address,
                    rc != 0 ? gai_strerror(rc) : g_strerror(errno));
    if (found)
        freeaddrinfo(found);
    g_free(host);
    g_free(port);
    return fd;
}

sw_listener *sw_listener_new(const sw_listener_options *options, GError **error)
{
    int fd = listen_on(options->address, error);
    if (fd < 0)
        return NULL;
    sw_listener *l = g_new0(sw_listener, 1);
    l->options = *options;
    if (l->options.reserve_fds <= 0)
        l->options.reserve_fds = DEFAULT_RESERVE_FDS;
    l->fd = fd;
    l->port = bound_port(fd);
    l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    l->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return l;
}

int sw_listener_port(const sw_listener *l)
{
    return l->port;
}

/* G_MAXINT when even the count needs a descriptor there is none of. */
static int count_open_fds(void)
{
    GDir *dir = g_dir_open("/proc/self/fd", 0, NULL);
    if (dir == NULL)
        return G_MAXINT;
    int n = 0;
    while (g_dir_read_name(dir) != NULL)
        n++;
    g_dir_close(dir);
    return n;
}

static int open_file_limit(void)
{
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY || limit.rlim_cur > G_MAXINT)
        return G_MAXINT;
    return (int)limit.rlim_cur;
}

/* TRUE while one more connection leaves the reserve free. Counts the
 * descriptors again when the last count is old or the estimate is past
 * half of what is allowed: other threads open descriptors too, so near the
 * limit only a fresh count will do. */
static gboolean room_for_one_more(sw_listener *l)
{
    int allowed = open_file_limit() - l->options.reserve_fds;
    gint64 now = g_get_monotonic_time();
    if (now - l->counted_us > FD_COUNT_TTL_US || l->open_fds + l->accepted_since >= allowed / 2) {
        l->open_fds = count_open_fds();
        l->counted_us = now;
        l->accepted_since = 0;
    }
    return l->open_fds < allowed - l->accepted_since;
}

static void note_refused(sw_listener *l, const char *why)
{
    unsigned long long refused = atomic_fetch_add(&l->refused, 1) + 1;
    if (l->options.on_refused)
        l->options.on_refused(l->options.user_data);
    gint64 now = g_get_monotonic_time();
    if (now - l->refusal_logged_us >= REFUSAL_LOG_INTERVAL_US) {
        sw_log(SW_LOG_WARN, "event=connections_refused why=%s count=%" G_GUINT64_FORMAT " open_fds=%d limit=%d", why,
               (guint64)(refused - l->refused_at_log), l->open_fds, open_file_limit());
        l->refusal_logged_us = now;
        l->refused_at_log = refused;
    }
}

/* Out of descriptors: the spare one makes room to take the waiting
 * connection off the queue and close it, so the client hears at once and
 * the listener stays armed. */
static void shed_one(sw_listener *l)
{
    if (l->spare_fd >= 0)
        close(l->spare_fd);
    int fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd >= 0)
        close(fd);
    l->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    note_refused(l, "out_of_descriptors");
    if (fd < 0) /* even that failed (the whole system is out): back off */
        g_usleep(10000);
}

static void hand_on(sw_listener *l, int fd)
{
    if (!room_for_one_more(l)) {
        close(fd);
        note_refused(l, "descriptor_reserve");
        return;
    }
    int on = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    l->accepted_since++;
    atomic_fetch_add(&l->accepted, 1);
    l->options.on_accept(fd, l->options.user_data);
}

/* Takes every connection waiting. */
static void accept_waiting(sw_listener *l)
{
    for (;;) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            hand_on(l, fd);
            continue;
        }
        switch (errno) {
        case EINTR:
        case ECONNABORTED:
        case EPROTO: continue;
        case EMFILE:
        case ENFILE: shed_one(l); continue;
        case EAGAIN: return;
        default: /* ENOBUFS, ENOMEM: the kernel is short; try again soon */ g_usleep(50000); return;
        }
    }
}

static gpointer accept_loop(gpointer data)
{
    sw_listener *l = data;
    struct pollfd fds[2] = {{.fd = l->fd, .events = POLLIN}, {.fd = l->wake_fd, .events = POLLIN}};
    for (;;) {
        if (poll(fds, 2, -1) < 0 && errno != EINTR)
            g_usleep(10000);
        if (fds[1].revents)
            return NULL;
        if (fds[0].revents)
            accept_waiting(l);
    }
}

void sw_listener_start(sw_listener *l)
{
    l->thread = g_thread_new("sw-accept", accept_loop, l);
}

guint64 sw_listener_accepted(sw_listener *l)
{
    return atomic_load(&l->accepted);
}

guint64 sw_listener_refused(sw_listener *l)
{
    return atomic_load(&l->refused);
}

void sw_listener_free(sw_listener *l)
{
    if (l == NULL)
        return;
    if (l->thread) {
        guint64 one = 1;
        while (write(l->wake_fd, &one, sizeof one) < 0 && errno == EINTR) {
        }
        g_thread_join(l->thread);
    }
    close(l->fd);
    close(l->wake_fd);
    if (l->spare_fd >= 0)
        close(l->spare_fd);
    g_free(l);
}
