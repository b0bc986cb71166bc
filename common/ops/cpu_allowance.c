#define _GNU_SOURCE
#include "cpu_allowance.h"

#include <math.h> /* INFINITY */
#include <sched.h>
#include <stdio.h>
#include <string.h>

/* The quota in CPUs set in cgroup folder `dir`, or INFINITY where it sets
 * none or has no such file. */
static double quota_in_folder(const char *dir, gboolean v2)
{
    double quota = INFINITY;
    if (v2) {
        char *path = g_build_filename(dir, "cpu.max", NULL);
        gchar *text = NULL;
        long long q = 0, period = 0;
        /* "max 100000" (no limit) fails the first %lld. */
        if (g_file_get_contents(path, &text, NULL, NULL) && sscanf(text, "%lld %lld", &q, &period) == 2 && q > 0 &&
            period > 0)
            quota = (double)q / (double)period;
        g_free(text);
        g_free(path);
        return quota;
    }
    char *qpath = g_build_filename(dir, "cpu.cfs_quota_us", NULL);
    char *ppath = g_build_filename(dir, "cpu.cfs_period_us", NULL);
    gchar *qtext = NULL, *ptext = NULL;
    if (g_file_get_contents(qpath, &qtext, NULL, NULL) && g_file_get_contents(ppath, &ptext, NULL, NULL)) {
        /* -1 is no limit. */
        long long q = g_ascii_strtoll(qtext, NULL, 10), period = g_ascii_strtoll(ptext, NULL, 10);
        if (q > 0 && period > 0)
            quota = (double)q / (double)period;
    }
    g_free(qtext);
    g_free(ptext);
    g_free(qpath);
    g_free(ppath);
    return quota;
}

/* The smallest quota on `cgroup` (a path as /proc/self/cgroup gives it) and
 * its ancestors under the hierarchy mounted at `mount`. Inside a container
 * the mount may show only the container's own cgroup while the path is the
 * host's: the walk then reaches "/", the mount itself, which is that cgroup. */
static double smallest_quota_on_path(const char *mount, const char *cgroup, gboolean v2)
{
    double smallest = INFINITY;
    char *p = g_strdup(cgroup[0] ? cgroup : "/");
    for (;;) {
        char *dir = g_build_filename(mount, p, NULL);
        double here = quota_in_folder(dir, v2);
        smallest = MIN(smallest, here);
        g_free(dir);
        if (strcmp(p, "/") == 0 || strcmp(p, ".") == 0)
            break;
        char *parent = g_path_get_dirname(p);
        g_free(p);
        p = parent;
    }
    g_free(p);
    return smallest;
}

static gboolean lists_cpu_controller(const char *controllers)
{
    gchar **names = g_strsplit(controllers, ",", -1);
    gboolean found = g_strv_contains((const gchar *const *)names, "cpu");
    g_strfreev(names);
    return found;
}

/* One line of /proc/self/cgroup, "ID:CONTROLLERS:PATH": "0::PATH" for the
 * v2 hierarchy, or a v1 hierarchy that has the cpu controller. */
static double quota_of_line(const char *root, const char *line)
{
    gchar **f = g_strsplit(line, ":", 3);
    double quota = INFINITY;
    gboolean v2 = g_strv_length(f) == 3 && strcmp(f[0], "0") == 0 && f[1][0] == '\0';
    if (v2 || (g_strv_length(f) == 3 && lists_cpu_controller(f[1]))) {
        /* Where the hierarchy is mounted: pure v2 at the root, hybrid v2 at
         * unified/; v1 in a folder named after its controllers joined
         * ("cpu,cpuacct"), where some systems only have a "cpu" link. */
        char *mount = v2 ? g_build_filename(root, "unified", NULL) : g_build_filename(root, f[1], NULL);
        if (!g_file_test(mount, G_FILE_TEST_IS_DIR)) {
            g_free(mount);
            mount = v2 ? g_strdup(root) : g_build_filename(root, "cpu", NULL);
        }
        quota = smallest_quota_on_path(mount, f[2], v2);
        g_free(mount);
    }
    g_strfreev(f);
    return quota;
}

sw_cpu_allowance sw_cpu_allowance_from(const char *cgroup_root, const char *proc_self_cgroup, int affinity_cpus)
{
    double quota = INFINITY;
    gchar **lines = g_strsplit(proc_self_cgroup ? proc_self_cgroup : "", "\n", -1);
    for (gchar **l = lines; *l; l++)
        if (**l) {
            double line_quota = quota_of_line(cgroup_root, *l);
            quota = MIN(quota, line_quota);
        }
    g_strfreev(lines);
    if (quota < affinity_cpus)
        return (sw_cpu_allowance){.cpus = quota, .source = "cgroup quota"};
    return (sw_cpu_allowance){.cpus = affinity_cpus, .source = "affinity"};
}

sw_cpu_allowance sw_cpu_allowance_read(void)
{
    cpu_set_t set;
    int affinity = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 0;
    if (affinity <= 0)
        affinity = (int)g_get_num_processors();
    gchar *cgroups = NULL;
    g_file_get_contents("/proc/self/cgroup", &cgroups, NULL, NULL);
    sw_cpu_allowance a = sw_cpu_allowance_from("/sys/fs/cgroup", cgroups, affinity);
    g_free(cgroups);
    return a;
}
