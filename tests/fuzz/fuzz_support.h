/* What the fuzz targets share: the libFuzzer entry points, a check that
 * aborts (so libFuzzer records the input as a crash), GLib criticals made
 * fatal, and an in-memory file for readers that take a path. Header only:
 * each target is one C file plus this. */
#ifndef SW_FUZZ_SUPPORT_H
#define SW_FUZZ_SUPPORT_H

#include <glib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant the code under test broke: print it and abort, which
 * libFuzzer reports as a crash and saves the input for. */
#define FUZZ_CHECK(cond, ...)                                                                                          \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);                                   \
            fprintf(stderr, __VA_ARGS__);                                                                              \
            fputc('\n', stderr);                                                                                       \
            abort();                                                                                                   \
        }                                                                                                              \
    } while (0)

/* A g_return_if_fail() that fires means a caller broke a contract: as much
 * a finding as a crash, but GLib only logs it by default (and a fatal log is
 * a SIGTRAP, which libFuzzer does not catch). Aborting saves the input. */
static inline void fuzz_log_handler(const char *domain, GLogLevelFlags level, const char *message, gpointer data)
{
    if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL)) {
        fprintf(stderr, "%s-CRITICAL: %s\n", domain ? domain : "", message);
        abort();
    }
    g_log_default_handler(domain, level, message, data);
}

static inline void fuzz_fatal_criticals(void)
{
    g_log_set_default_handler(fuzz_log_handler, NULL);
}

/* A file in memory (no disk writes per input) that fuzz_memfile_path()
 * opens from the start, as a reader given a path would. */
typedef struct fuzz_memfile {
    int fd;
    char path[64];
} fuzz_memfile;

static inline void fuzz_memfile_open(fuzz_memfile *f)
{
    f->fd = memfd_create("stagewise-fuzz", 0);
    if (f->fd < 0) {
        perror("memfd_create");
        abort();
    }
    snprintf(f->path, sizeof f->path, "/proc/self/fd/%d", f->fd);
}

/* Replaces the file's contents with `data`. */
static inline void fuzz_memfile_set(fuzz_memfile *f, const uint8_t *data, size_t size)
{
    if (ftruncate(f->fd, 0) != 0 || (size > 0 && pwrite(f->fd, data, size, 0) != (ssize_t)size)) {
        perror("memfd write");
        abort();
    }
}

#endif
