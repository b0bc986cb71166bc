#include "worker_pool.h"

typedef struct worker {
    sw_worker_pool *pool;
    GThread *thread;
    GCond wake;
    void *handed; /* an item given straight to this idle worker */
} worker;

struct sw_worker_pool {
    sw_work_func func;
    void *user_data;
    GMutex lock;
    GQueue backlog; /* items that found every worker busy */
    worker **idle;  /* a stack: the top went idle last */
    int n_idle;
    worker *workers;
    int n_workers;
    gboolean stopping;
    gint pending; /* pushed and not yet finished by `func` */
};

/* With the lock held: the next item for `w`, waiting for one while there is
 * none; NULL once the pool is stopping and nothing is left. */
static void *next_item(sw_worker_pool *p, worker *w)
{
    for (;;) {
        if (w->handed) {
            void *item = w->handed;
            w->handed = NULL;
            return item;
        }
        if (!g_queue_is_empty(&p->backlog))
            return g_queue_pop_head(&p->backlog);
        if (p->stopping)
            return NULL;
        p->idle[p->n_idle++] = w;
        /* Only a push (which takes `w` off the stack with an item) or the
         * end of the pool wakes it for good. */
        while (w->handed == NULL && !p->stopping)
            g_cond_wait(&w->wake, &p->lock);
        for (int i = 0; i < p->n_idle; i++) { /* still listed after a stop */
            if (p->idle[i] == w) {
                p->idle[i] = p->idle[--p->n_idle];
                break;
            }
        }
    }
}

static gpointer worker_loop(gpointer data)
{
    worker *w = data;
    sw_worker_pool *p = w->pool;
    g_mutex_lock(&p->lock);
    void *item;
    while ((item = next_item(p, w)) != NULL) {
        g_mutex_unlock(&p->lock);
        p->func(item, p->user_data);
        g_atomic_int_dec_and_test(&p->pending);
        g_mutex_lock(&p->lock);
    }
    g_mutex_unlock(&p->lock);
    return NULL;
}

sw_worker_pool *sw_worker_pool_new(const char *name, int n_threads, sw_work_func func, void *user_data)
{
    g_return_val_if_fail(n_threads >= 1 && func != NULL, NULL);
    sw_worker_pool *p = g_new0(sw_worker_pool, 1);
    p->func = func;
    p->user_data = user_data;
    g_mutex_init(&p->lock);
    g_queue_init(&p->backlog);
    p->idle = g_new0(worker *, n_threads);
    p->workers = g_new0(worker, n_threads);
    p->n_workers = n_threads;
    for (int i = 0; i < n_threads; i++) {
        worker *w = &p->workers[i];
        w->pool = p;
        g_cond_init(&w->wake);
        w->thread = g_thread_new(name, worker_loop, w);
    }
    return p;
}

void sw_worker_pool_push(sw_worker_pool *p, void *item)
{
    g_return_if_fail(item != NULL);
    g_atomic_int_inc(&p->pending);
    g_mutex_lock(&p->lock);
    g_assert(!p->stopping);
    if (p->n_idle > 0) {
        worker *w = p->idle[--p->n_idle];
        w->handed = item;
        g_cond_signal(&w->wake);
    } else {
        g_queue_push_tail(&p->backlog, item);
    }
    g_mutex_unlock(&p->lock);
}

int sw_worker_pool_idle(sw_worker_pool *p)
{
    g_mutex_lock(&p->lock);
    int idle = p->n_idle;
    g_mutex_unlock(&p->lock);
    return idle;
}

int sw_worker_pool_pending(const sw_worker_pool *p)
{
    return g_atomic_int_get(&p->pending);
}

void sw_worker_pool_free(sw_worker_pool *p)
{
    if (p == NULL)
        return;
    g_mutex_lock(&p->lock);
    p->stopping = TRUE;
    for (int i = 0; i < p->n_workers; i++)
        g_cond_signal(&p->workers[i].wake);
    g_mutex_unlock(&p->lock);
    for (int i = 0; i < p->n_workers; i++) {
        g_thread_join(p->workers[i].thread);
        g_cond_clear(&p->workers[i].wake);
    }
    g_assert(g_queue_is_empty(&p->backlog));
    g_free(p->workers);
    g_free(p->idle);
    g_mutex_clear(&p->lock);
    g_free(p);
}
