/* A fixed set of worker threads that hands each item to the worker that went
 * idle most recently.
 *
 * GThreadPool wakes its idle threads in turn, so on a lightly loaded server
 * every request lands on a thread whose caches (libtorch's thread state, its
 * malloc arena, its stack) have gone cold; handing work to the last thread to
 * finish keeps one hot thread doing the work at low load, and still spreads a
 * burst over all of them. Items that find no idle worker wait in FIFO order. */
#ifndef SW_WORKER_POOL_H
#define SW_WORKER_POOL_H

#include <glib.h>

G_BEGIN_DECLS

typedef struct sw_worker_pool sw_worker_pool;

/* Runs on a worker thread; owns `item` from then on. */
typedef void (*sw_work_func)(void *item, void *user_data);

/* Starts `n_threads` (>= 1) threads named `name`; `user_data` is borrowed
 * and must outlive the pool. */
sw_worker_pool *sw_worker_pool_new(const char *name, int n_threads, sw_work_func func, void *user_data);
/* Queues `item` (never NULL) for `func`; never blocks on the work itself. */
void sw_worker_pool_push(sw_worker_pool *pool, void *item);
/* Workers waiting for an item now (a snapshot). */
int sw_worker_pool_idle(sw_worker_pool *pool);
/* Items pushed and not yet finished, queued or running (a snapshot, read
 * without the lock). */
int sw_worker_pool_pending(const sw_worker_pool *pool);
/* Runs every item already pushed, then joins the threads and frees the pool.
 * Nothing may be pushed once this has begun. */
void sw_worker_pool_free(sw_worker_pool *pool);

G_END_DECLS

#endif
