/* The plaintext listener under a flood of silent connections at a low
 * open-file limit: it closes what would eat its reserve, survives running
 * out of descriptors, and accepts (and serves) the next client once the
 * flood is gone. The flood runs in this process, so its client sockets
 * count against the same limit: that only makes running out come sooner. */
#include <errno.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "listener.h"
#include "rpc_harness.h"

/* Room above what is open when the test starts: enough for gRPC's own
 * descriptors, far fewer than the flood. */
#define LIMIT_HEADROOM 48
#define FLOOD 120

static int open_fds_now(void)
{
    GDir *dir = g_dir_open("/proc/self/fd", 0, NULL);
    g_assert_nonnull(dir);
    int n = 0;
    while (g_dir_read_name(dir) != NULL)
        n++;
    g_dir_close(dir);
    return n;
}

static struct rlimit lower_open_file_limit(int headroom)
{
    struct rlimit before, lowered;
    g_assert_cmpint(getrlimit(RLIMIT_NOFILE, &before), ==, 0);
    lowered = before;
    lowered.rlim_cur = (rlim_t)(open_fds_now() + headroom);
    g_assert_cmpint(setrlimit(RLIMIT_NOFILE, &lowered), ==, 0);
    return before;
}

/* A connected socket to 127.0.0.1:`port`, or -1 when this process is out
 * of descriptors itself. */
static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void wait_for_total(sw_listener *l, guint64 total)
{
    gint64 until = g_get_monotonic_time() + WAIT_US;
    while (sw_listener_accepted(l) + sw_listener_refused(l) < total && g_get_monotonic_time() < until)
        g_usleep(1000);
    g_assert_cmpuint(sw_listener_accepted(l) + sw_listener_refused(l), >=, total);
}

/* Opens up to FLOOD silent connections; returns how many. With `l`, one
 * at a time, each taken by the listener before the next, so the listener
 * rather than this client runs into the limit first. */
static int flood(int port, int *fds, sw_listener *l)
{
    int n = 0;
    while (n < FLOOD && (fds[n] = connect_to(port)) >= 0) {
        n++;
        if (l)
            wait_for_total(l, (guint64)n);
    }
    return n;
}

static void close_all(int *fds, int n)
{
    for (int i = 0; i < n; i++)
        close(fds[i]);
}

typedef struct kept {
    GMutex lock;
    GArray *fds;
} kept;

static void keep_connection(int fd, void *user_data)
{
    kept *k = user_data;
    g_mutex_lock(&k->lock);
    g_array_append_val(k->fds, fd);
    g_mutex_unlock(&k->lock);
}

static void test_reserve_and_exhaustion(void)
{
    kept k = {.fds = g_array_new(FALSE, FALSE, sizeof(int))};
    g_mutex_init(&k.lock);
    sw_listener_options o = {
        .address = "127.0.0.1:0", .reserve_fds = 16, .on_accept = keep_connection, .user_data = &k};
    GError *error = NULL;
    sw_listener *l = sw_listener_new(&o, &error);
    g_assert_no_error(error);
    g_assert_cmpint(sw_listener_port(l), >, 0);
    sw_listener_start(l);
    struct rlimit before = lower_open_file_limit(LIMIT_HEADROOM);

    int fds[FLOOD];
    int n = flood(sw_listener_port(l), fds, l);
    g_assert_cmpint(n, >, 0);
    wait_for_total(l, (guint64)n);
    /* Some were handed on, the rest closed at once: none left waiting. */
    g_assert_cmpuint(sw_listener_accepted(l), >, 0);
    g_assert_cmpuint(sw_listener_refused(l), >, 0);
    g_mutex_lock(&k.lock);
    g_assert_cmpuint(k.fds->len, ==, sw_listener_accepted(l));
    close_all((int *)(void *)k.fds->data, (int)k.fds->len);
    g_array_set_size(k.fds, 0);
    g_mutex_unlock(&k.lock);
    close_all(fds, n);

    /* Still listening: the next connection is handed on. */
    guint64 accepted = sw_listener_accepted(l);
    int fd = connect_to(sw_listener_port(l));
    g_assert_cmpint(fd, >=, 0);
    gint64 until = g_get_monotonic_time() + WAIT_US;
    while (sw_listener_accepted(l) == accepted && g_get_monotonic_time() < until)
        g_usleep(1000);
    g_assert_cmpuint(sw_listener_accepted(l), ==, accepted + 1);
    close(fd);

    g_assert_cmpint(setrlimit(RLIMIT_NOFILE, &before), ==, 0);
    sw_listener_free(l);
    g_mutex_lock(&k.lock);
    close_all((int *)(void *)k.fds->data, (int)k.fds->len);
    g_mutex_unlock(&k.lock);
    g_array_free(k.fds, TRUE);
    g_mutex_clear(&k.lock);
}

static void answer(sw_call *call, void *user_data)
{
    (void)user_data;
    reply_status(call, GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
}

/* The finding behind the listener: gRPC's own stopped accepting for good
 * after one EMFILE. */
static void test_server_serves_after_a_flood(void)
{
    sw_method methods[] = {{.path = "/test.Listener/Check", .dispatch = SW_DISPATCH_INLINE, .handler = answer}};
    sw_server_options o = harness_server_options();
    o.reserve_fds = 4;
    sw_server *s = harness_server_start(&o, methods, G_N_ELEMENTS(methods));
    struct rlimit before = lower_open_file_limit(LIMIT_HEADROOM);

    int fds[FLOOD];
    int n = flood(sw_server_port(s), fds, NULL);
    g_assert_cmpint(n, >, 0);
    g_usleep(300 * 1000);
    close_all(fds, n);
    g_usleep(300 * 1000);

    sw_channel *ch = harness_channel_to(s, NULL);
    g_assert_cmpint(call_code(ch, "/test.Listener/Check", "up", CALL_TIMEOUT_US, NULL), ==, SW_CODE_OK);
    sw_channel_free(ch);
    g_assert_cmpint(setrlimit(RLIMIT_NOFILE, &before), ==, 0);
    harness_server_stop(s);
}

static void test_addresses(void)
{
    g_assert_true(sw_listener_serves("127.0.0.1:0"));
    g_assert_true(sw_listener_serves("0.0.0.0:8001"));
    g_assert_true(sw_listener_serves("[::]:8001"));
    g_assert_true(sw_listener_serves("localhost:8001"));
    g_assert_false(sw_listener_serves("unix:/tmp/socket"));
    g_assert_false(sw_listener_serves("unix-abstract:name"));
    g_assert_false(sw_listener_serves("dns:///host:80"));
    g_assert_false(sw_listener_serves("host:"));
    g_assert_false(sw_listener_serves("host:http"));
    g_assert_false(sw_listener_serves("8001"));

    sw_listener_options o = {.address = "[::1]:0", .on_accept = keep_connection};
    GError *error = NULL;
    sw_listener *l = sw_listener_new(&o, &error);
    if (l) { /* no IPv6 loopback on some hosts */
        g_assert_cmpint(sw_listener_port(l), >, 0);
        sw_listener_free(l);
    } else {
        g_clear_error(&error);
    }
    o.address = "203.0.113.1:0"; /* TEST-NET-3: never an address of this host */
    g_assert_null(sw_listener_new(&o, &error));
    g_assert_error(error, SW_ERROR, SW_CODE_UNAVAILABLE);
    g_assert_nonnull(strstr(error->message, "203.0.113.1:0"));
    g_clear_error(&error);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    grpc_init();
    g_test_add_func("/rpc/listener/addresses", test_addresses);
    g_test_add_func("/rpc/listener/reserve-and-exhaustion", test_reserve_and_exhaustion);
    g_test_add_func("/rpc/listener/server-serves-after-a-flood", test_server_serves_after_a_flood);
    int rc = g_test_run();
    grpc_shutdown();
    return rc;
}
