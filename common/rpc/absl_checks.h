/* Abseil's debug-build lock checking, which gRPC inherits from Debian. */
#ifndef SW_ABSL_CHECKS_H
#define SW_ABSL_CHECKS_H

/* Turns off Abseil's mutex deadlock detection for the whole process.
 * Debian builds Abseil without NDEBUG, so every absl::Mutex lock that gRPC
 * takes also records itself in a global lock graph: measured under
 * callgrind on three bare chained gRPC servers, 14% of their instructions
 * per request (255,000 against 220,000). It is a debugging aid that
 * release builds of Abseil leave out, and gRPC does not depend on it.
 * Returns 1 when the setting was applied, 0 when this Abseil has no such
 * function under the names tried (Debian's, or no inline namespace) and
 * nothing changed. Plain C without glib, so that the bench's bare
 * transport floor can make the same setting. Process-wide: call once, from
 * a server's main, before gRPC starts; never from a library a user links. */
int sw_absl_deadlock_detection_off(void);

#endif
