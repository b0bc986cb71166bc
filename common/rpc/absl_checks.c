#define _GNU_SOURCE /* RTLD_DEFAULT */
#include "absl_checks.h"

#include <dlfcn.h>
#include <stddef.h>

/* absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle), looked up
 * by its mangled name since it is C++: Debian 12's inline namespace
 * ("debian3"), then an Abseil built without one. kIgnore is 0. */
static const char *const SET_MODE_SYMBOLS[] = {
    "_ZN4absl7debian329SetMutexDeadlockDetectionModeENS0_15OnDeadlockCycleE",
    "_ZN4absl29SetMutexDeadlockDetectionModeENS_15OnDeadlockCycleE",
};

int sw_absl_deadlock_detection_off(void)
{
    for (size_t i = 0; i < sizeof SET_MODE_SYMBOLS / sizeof SET_MODE_SYMBOLS[0]; i++) {
        void *symbol = dlsym(RTLD_DEFAULT, SET_MODE_SYMBOLS[i]);
        if (symbol) {
            void (*set_mode)(int) = (void (*)(int))symbol;
            set_mode(0);
            return 1;
        }
    }
    return 0;
}
