/* The one shape of every tag put on a completion queue here, so a server
 * and the channels it forwards on can share one queue and one polling
 * thread: whoever polls calls the tag's own function, without knowing whose
 * tag it is. */
#ifndef SW_COMPLETION_H
#define SW_COMPLETION_H

#include <glib.h>

G_BEGIN_DECLS

typedef struct sw_completion sw_completion;

/* `success` is grpc_event.success. Runs on the polling thread: must not
 * block. */
typedef void (*sw_completion_func)(sw_completion *completion, int success);

struct sw_completion {
    sw_completion_func func; /* first: the tag points here */
};

/* Runs the tag of a GRPC_OP_COMPLETE event. */
static inline void sw_completion_run(void *tag, int success)
{
    sw_completion *completion = tag;
    completion->func(completion, success);
}

G_END_DECLS

#endif
