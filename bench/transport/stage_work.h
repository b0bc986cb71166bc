/* The model floor inside a bare server (stagewise-transport-floor
 * --work-export/--work-request): one stage of a Ludwig export run on every
 * call, on the same canned request, through the same in-process code as
 * stagewise-bench's floor (bench/inprocess.c). A chain of three such servers
 * does the model's real work between the same system calls and sleeps as the
 * served pipeline, so its caches, TLBs and branch predictors are as cold as
 * the served stages' are, which a spinning stand-in (--work-us) cannot show.
 *
 * Plain C at this boundary, so the floor's own code stays free of glib. */
#ifndef SW_FLOOR_STAGE_WORK_H
#define SW_FLOOR_STAGE_WORK_H

typedef struct floor_stage_work floor_stage_work;

/* Loads the stage that `request_file` (written by `stagewise-bench
 * --write-request`) feeds, from the export in `export_dir`, and keeps the
 * request's inputs. NULL on failure, with *error_message set (free() it). */
floor_stage_work *floor_stage_work_new(const char *export_dir, const char *request_file, char **error_message);

/* Runs the stage once on the kept inputs and drops its outputs; 0, or -1
 * when the stage failed (with *error_message set: free() it). Polling thread
 * only: the stage is used by one thread at a time. */
int floor_stage_work_run(floor_stage_work *work, char **error_message);

/* The name of the stage ("preprocessor", ...); owned by `work`. */
const char *floor_stage_work_stage(const floor_stage_work *work);

void floor_stage_work_free(floor_stage_work *work);

#endif
