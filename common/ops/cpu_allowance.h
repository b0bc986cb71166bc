/* How many CPUs this process may keep busy: the smaller of its affinity mask
 * and the CPU quota of its cgroup and every cgroup above it (cgroup v2
 * cpu.max, or v1 cpu.cfs_quota_us over cpu.cfs_period_us), which is what a
 * container's CPU limit sets. Used at start-up to choose defaults that
 * depend on having more than one core. */
#ifndef SW_CPU_ALLOWANCE_H
#define SW_CPU_ALLOWANCE_H

#include <glib.h>

G_BEGIN_DECLS

typedef struct sw_cpu_allowance {
    double cpus;        /* may be fractional under a quota: 0.5 for "500m" */
    const char *source; /* static: "affinity" or "cgroup quota", whichever is smaller */
} sw_cpu_allowance;

/* Reads sched_getaffinity, /proc/self/cgroup and /sys/fs/cgroup. A file
 * that cannot be read is taken as no limit. Any thread. */
sw_cpu_allowance sw_cpu_allowance_read(void);

/* The same from given inputs, for tests: `cgroup_root` stands for
 * /sys/fs/cgroup, `proc_self_cgroup` is the text of /proc/self/cgroup and
 * `affinity_cpus` the affinity mask's count. */
sw_cpu_allowance sw_cpu_allowance_from(const char *cgroup_root, const char *proc_self_cgroup, int affinity_cpus);

G_END_DECLS

#endif
