/* The shared main of the three stage servers: flags, loading, serving,
 * signals. Each executable in services/ is a call to this with its stage. */
#ifndef SW_SERVICE_MAIN_H
#define SW_SERVICE_MAIN_H

#include "feature_spec.h"

int sw_service_main(sw_stage_kind kind, int argc, char **argv);

#endif
