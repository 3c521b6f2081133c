/*
 * A watcher for long transfers whose own loop may wait on the network for
 * a long time (an import whose client stalls): it polls the caller's task
 * from a thread and raises a flag the transfer code checks (formats/xva.h
 * readers notice it within 100 ms even while waiting for input).
 */
#ifndef HX_OPS_CANCEL_WATCH_H
#define HX_OPS_CANCEL_WATCH_H

#include <stdatomic.h>
#include <stdbool.h>

#include "ops/ops.h"

typedef struct OpsCancelWatch OpsCancelWatch;

/* Starts watching ctx's task (NULL if ctx has none): *flag is set once it is
 * being cancelled. flag must outlive the watch. */
OpsCancelWatch *ops_cancel_watch_start(OpsCtx *ctx, atomic_bool *flag);
/* Stops and frees the watch (accepts NULL); true if the task was cancelled. */
bool ops_cancel_watch_stop(OpsCancelWatch *w);

#endif
