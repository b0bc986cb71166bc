/* The CPUs a process may keep busy, from fake cgroup trees: v2 and v1
 * quotas, limits set on an ancestor, a container's view of its own cgroup,
 * and the affinity mask when it is the smaller. */
#include <string.h>

#include "cpu_allowance.h"
#include "unit_support.h"

/* Writes `text` to ROOT/RELATIVE, making the folders on the way. */
static void put(const char *root, const char *relative, const char *text)
{
    char *path = g_build_filename(root, relative, NULL);
    char *dir = g_path_get_dirname(path);
    g_assert_cmpint(g_mkdir_with_parents(dir, 0755), ==, 0);
    GError *error = NULL;
    g_file_set_contents(path, text, -1, &error);
    g_assert_no_error(error);
    g_free(dir);
    g_free(path);
}

static void assert_allowance(const char *root, const char *proc_cgroup, int affinity, double cpus, const char *source)
{
    sw_cpu_allowance a = sw_cpu_allowance_from(root, proc_cgroup, affinity);
    g_assert_cmpfloat_with_epsilon(a.cpus, cpus, 1e-9);
    g_assert_cmpstr(a.source, ==, source);
}

static void test_no_limits(void)
{
    char *root = sw_test_dir_new();
    /* No files at all, an empty /proc/self/cgroup, and "max" or -1 quotas. */
    assert_allowance(root, "", 8, 8, "affinity");
    assert_allowance(root, NULL, 2, 2, "affinity");
    put(root, "k/cpu.max", "max 100000\n");
    assert_allowance(root, "0::/k\n", 4, 4, "affinity");
    put(root, "cpu,cpuacct/k/cpu.cfs_quota_us", "-1\n");
    put(root, "cpu,cpuacct/k/cpu.cfs_period_us", "100000\n");
    assert_allowance(root, "5:cpu,cpuacct:/k\n", 4, 4, "affinity");
    sw_test_dir_remove(root);
}

static void test_v2_quota(void)
{
    char *root = sw_test_dir_new();
    /* A Kubernetes limit of "500m": the container's own cgroup. */
    put(root, "kubepods/pod1/c1/cpu.max", "50000 100000\n");
    assert_allowance(root, "0::/kubepods/pod1/c1\n", 16, 0.5, "cgroup quota");
    /* A smaller limit on an ancestor wins; a larger one does not. */
    put(root, "kubepods/pod1/cpu.max", "25000 100000\n");
    assert_allowance(root, "0::/kubepods/pod1/c1\n", 16, 0.25, "cgroup quota");
    put(root, "kubepods/pod1/cpu.max", "400000 100000\n");
    assert_allowance(root, "0::/kubepods/pod1/c1\n", 16, 0.5, "cgroup quota");
    /* The affinity mask, when smaller, is what counts. */
    put(root, "kubepods/pod1/c1/cpu.max", "300000 100000\n");
    assert_allowance(root, "0::/kubepods/pod1/c1\n", 2, 2, "affinity");
    assert_allowance(root, "0::/kubepods/pod1/c1\n", 4, 3, "cgroup quota");
    sw_test_dir_remove(root);
}

static void test_v2_container_view(void)
{
    char *root = sw_test_dir_new();
    /* Mounted in a container, the root is the container's cgroup; the path
     * /proc gives may be the host's, which does not exist under the mount. */
    put(root, "cpu.max", "100000 100000\n");
    assert_allowance(root, "0::/system.slice/docker-abc.scope\n", 2, 1, "cgroup quota");
    assert_allowance(root, "0::/\n", 2, 1, "cgroup quota");
    sw_test_dir_remove(root);
}

static void test_v2_hybrid(void)
{
    char *root = sw_test_dir_new();
    put(root, "unified/svc/cpu.max", "150000 100000\n");
    assert_allowance(root, "0::/svc\n", 2, 1.5, "cgroup quota");
    sw_test_dir_remove(root);
}

static void test_v1_quota(void)
{
    char *root = sw_test_dir_new();
    /* The cpu controller mounted alone, and joined with cpuacct. */
    put(root, "cpu/sw/cpu.cfs_quota_us", "100000\n");
    put(root, "cpu/sw/cpu.cfs_period_us", "100000\n");
    const char *proc = "12:pids:/sw\n4:cpu:/sw\n3:cpuacct:/sw\n1:name=systemd:/sw\n0::/sw\n";
    assert_allowance(root, proc, 2, 1, "cgroup quota");
    put(root, "cpu,cpuacct/a/b/cpu.cfs_quota_us", "-1\n");
    put(root, "cpu,cpuacct/a/b/cpu.cfs_period_us", "100000\n");
    put(root, "cpu,cpuacct/a/cpu.cfs_quota_us", "50000\n");
    put(root, "cpu,cpuacct/a/cpu.cfs_period_us", "200000\n");
    assert_allowance(root, "7:cpu,cpuacct:/a/b\n", 2, 0.25, "cgroup quota");
    /* A hierarchy without the cpu controller sets no CPU limit. */
    put(root, "cpuacct/x/cpu.cfs_quota_us", "10000\n");
    put(root, "cpuacct/x/cpu.cfs_period_us", "100000\n");
    assert_allowance(root, "3:cpuacct:/x\n", 2, 2, "affinity");
    sw_test_dir_remove(root);
}

static void test_unreadable_text(void)
{
    char *root = sw_test_dir_new();
    put(root, "k/cpu.max", "garbage\n");
    assert_allowance(root, "0::/k\nnot a cgroup line\n::\n", 3, 3, "affinity");
    put(root, "k/cpu.max", "0 100000\n");
    assert_allowance(root, "0::/k\n", 3, 3, "affinity");
    sw_test_dir_remove(root);
}

static void test_this_process(void)
{
    /* Whatever this machine allows, it is at least some CPU and at most all. */
    sw_cpu_allowance a = sw_cpu_allowance_read();
    g_assert_cmpfloat(a.cpus, >, 0);
    g_assert_cmpfloat(a.cpus, <=, g_get_num_processors());
    g_assert_true(strcmp(a.source, "affinity") == 0 || strcmp(a.source, "cgroup quota") == 0);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/cpu-allowance/no-limits", test_no_limits);
    g_test_add_func("/cpu-allowance/v2-quota", test_v2_quota);
    g_test_add_func("/cpu-allowance/v2-container-view", test_v2_container_view);
    g_test_add_func("/cpu-allowance/v2-hybrid", test_v2_hybrid);
    g_test_add_func("/cpu-allowance/v1-quota", test_v1_quota);
    g_test_add_func("/cpu-allowance/unreadable-text", test_unreadable_text);
    g_test_add_func("/cpu-allowance/this-process", test_this_process);
    return g_test_run();
}
