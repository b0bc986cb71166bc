/* The worker pool: every item runs once, the pool runs items concurrently,
 * freeing it runs the backlog, and a lone item goes to the hot worker. */
#include <string.h>

#include "worker_pool.h"

#define WAIT_US (10 * G_USEC_PER_SEC)

typedef struct counter {
    GMutex lock;
    GCond changed;
    int done;
    gint64 sum;
    int barrier;         /* items still to arrive before any may leave */
    GThread *ran_on[64]; /* which thread ran item i */
} counter;

typedef struct item {
    counter *counter;
    int index;
    int value;
    gboolean wait_for_all; /* hold until `barrier` items have arrived */
    int sleep_us;
} item;

static void run_item(void *data, void *user_data)
{
    item *it = data;
    counter *c = user_data;
    g_assert_true(it->counter == c);
    if (it->sleep_us)
        g_usleep(it->sleep_us);
    g_mutex_lock(&c->lock);
    if (it->wait_for_all) {
        c->barrier--;
        g_cond_broadcast(&c->changed);
        gint64 until = g_get_monotonic_time() + WAIT_US;
        while (c->barrier > 0)
            g_assert_true(g_cond_wait_until(&c->changed, &c->lock, until));
    }
    if (it->index < 64)
        c->ran_on[it->index] = g_thread_self();
    c->sum += it->value;
    c->done++;
    g_cond_broadcast(&c->changed);
    g_mutex_unlock(&c->lock);
}

static void counter_init(counter *c)
{
    memset(c, 0, sizeof *c);
    g_mutex_init(&c->lock);
    g_cond_init(&c->changed);
}

static void counter_wait_done(counter *c, int n)
{
    gint64 until = g_get_monotonic_time() + WAIT_US;
    g_mutex_lock(&c->lock);
    while (c->done < n)
        g_assert_true(g_cond_wait_until(&c->changed, &c->lock, until));
    g_mutex_unlock(&c->lock);
}

static void test_every_item_runs_once(void)
{
    counter c;
    counter_init(&c);
    enum { N = 5000 };
    item *items = g_new0(item, N);
    sw_worker_pool *pool = sw_worker_pool_new("test-worker", 3, run_item, &c);
    gint64 expected = 0;
    for (int i = 0; i < N; i++) {
        items[i] = (item){&c, i, i + 1, FALSE, 0};
        expected += i + 1;
        sw_worker_pool_push(pool, &items[i]);
    }
    counter_wait_done(&c, N);
    g_assert_cmpint(c.done, ==, N);
    g_assert_cmpint(c.sum, ==, expected);
    sw_worker_pool_free(pool);
    g_assert_cmpint(c.done, ==, N);
    g_free(items);
}

static void test_items_run_concurrently(void)
{
    counter c;
    counter_init(&c);
    enum { THREADS = 4 };
    c.barrier = THREADS;
    item items[THREADS];
    sw_worker_pool *pool = sw_worker_pool_new("test-worker", THREADS, run_item, &c);
    /* Each item waits for all the others: this only finishes if every one
     * of them runs at the same time on its own thread. */
    for (int i = 0; i < THREADS; i++) {
        items[i] = (item){&c, i, 1, TRUE, 0};
        sw_worker_pool_push(pool, &items[i]);
    }
    counter_wait_done(&c, THREADS);
    for (int i = 0; i < THREADS; i++)
        for (int j = i + 1; j < THREADS; j++)
            g_assert_true(c.ran_on[i] != c.ran_on[j]);
    sw_worker_pool_free(pool);
}

static void test_free_runs_the_backlog(void)
{
    counter c;
    counter_init(&c);
    enum { N = 40 };
    item items[N];
    sw_worker_pool *pool = sw_worker_pool_new("test-worker", 2, run_item, &c);
    for (int i = 0; i < N; i++) {
        items[i] = (item){&c, i, 1, FALSE, 500};
        sw_worker_pool_push(pool, &items[i]);
    }
    sw_worker_pool_free(pool); /* most are still queued here */
    g_assert_cmpint(c.done, ==, N);
}

static void wait_all_idle(sw_worker_pool *pool, int n)
{
    gint64 until = g_get_monotonic_time() + WAIT_US;
    while (sw_worker_pool_idle(pool) < n) {
        g_assert_cmpint(g_get_monotonic_time(), <, until);
        g_usleep(100);
    }
}

static void test_lone_items_go_to_the_last_idle_worker(void)
{
    counter c;
    counter_init(&c);
    enum { THREADS = 4, N = 20 };
    item items[N];
    sw_worker_pool *pool = sw_worker_pool_new("test-worker", THREADS, run_item, &c);
    for (int i = 0; i < N; i++) {
        wait_all_idle(pool, THREADS);
        items[i] = (item){&c, i, 1, FALSE, 0};
        sw_worker_pool_push(pool, &items[i]);
        counter_wait_done(&c, i + 1);
    }
    /* Each item finds the worker that ran the one before it at the top of
     * the idle stack. */
    for (int i = 1; i < N; i++)
        g_assert_true(c.ran_on[i] == c.ran_on[0]);
    sw_worker_pool_free(pool);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/worker-pool/every-item-runs-once", test_every_item_runs_once);
    g_test_add_func("/worker-pool/items-run-concurrently", test_items_run_concurrently);
    g_test_add_func("/worker-pool/free-runs-the-backlog", test_free_runs_the_backlog);
    g_test_add_func("/worker-pool/lone-items-go-to-the-last-idle-worker", test_lone_items_go_to_the_last_idle_worker);
    return g_test_run();
}
