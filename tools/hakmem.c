/* hakmem: runs a program under HAKMEM.
 *
 *   hakmem [--stats] [--check] [--profile FILE] [--set NAME=VALUE]... PROGRAM [ARGS...]
 *   hakmem --version | --settings | --help
 *
 * It preloads the library found next to itself (build/hakmem uses
 * build/libhakmem.so; an installed bin/hakmem uses ../lib) or else in the
 * directory it was built for (HAKMEM_LIBDIR), sets the HAKMEM_* variables
 * asked for and runs PROGRAM.  It is linked with the library, so --settings
 * and --set check names and ranges against the table the library uses. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "hakmem.h"

#ifndef HAKMEM_LIBDIR
#define HAKMEM_LIBDIR "/usr/local/lib"
#endif

static void usage(FILE *f)
{
    fprintf(f, "usage: hakmem [--stats] [--check] [--profile FILE] [--set NAME=VALUE]... PROGRAM [ARGS...]\n"
               "       hakmem --version | --settings | --help\n"
               "Runs PROGRAM with HAKMEM as its malloc (LD_PRELOAD).\n"
               "  --stats            print HAKMEM's statistics at exit (HAKMEM_STATS=1)\n"
               "  --check            check every call (HAKMEM_CHECK=1)\n"
               "  --profile FILE     write a heap profile to FILE and a leak report to\n"
               "                     FILE.leaks at exit (HAKMEM_PROFILE=FILE; %%p: the pid)\n"
               "  --set NAME=VALUE   any setting (hakmem --settings lists them)\n");
}

/* Exits 2 unless NAME=VALUE names a setting and VALUE is in its range. */
static void check_setting(const char *arg)
{
    const char *eq = strchr(arg, '=');
    struct hak_setting st;
    for (int i = 0; eq && hak_setting_at(i, &st) == 0; i++) {
        if (strlen(st.name) != (size_t)(eq - arg) || strncmp(st.name, arg, (size_t)(eq - arg)) != 0)
            continue;
        if (st.is_text) {
            if (eq[1] != '\0')
                return;
            fprintf(stderr, "hakmem: bad value %s (expected a non-empty value)\n", arg);
            exit(2);
        }
        char *end;
        errno = 0;
        long v = strtol(eq + 1, &end, 10);
        if (eq[1] >= '0' && eq[1] <= '9' && *end == '\0' && errno == 0 && v >= st.min && v <= st.max)
            return;
        fprintf(stderr, "hakmem: bad value %s (expected %ld..%ld)\n", arg, st.min, st.max);
        exit(2);
    }
    fprintf(stderr, "hakmem: %s is not NAME=VALUE for a setting (hakmem --settings lists them)\n", arg);
    exit(2);
}

/* The library to preload: next to this program, in ../lib, or in HAKMEM_LIBDIR. */
static const char *find_library(void)
{
    static char path[PATH_MAX + 32];
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = '\0';
            const char *rel[] = { "/libhakmem.so", "/../lib/libhakmem.so.0" };
            for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
                snprintf(path, sizeof path, "%s%s", self, rel[i]);
                if (access(path, R_OK) == 0)
                    return path;
            }
        }
    }
    snprintf(path, sizeof path, "%s/libhakmem.so.0", HAKMEM_LIBDIR);
    return access(path, R_OK) == 0 ? path : NULL;
}

int main(int argc, char **argv)
{
    int i = 1;
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("hakmem %s (library %s)\n", HAKMEM_VERSION, hak_version());
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "--settings") == 0) {
        struct hak_setting st;
        for (int k = 0; hak_setting_at(k, &st) == 0; k++) {
            if (st.is_text)
                printf("%s=%s (default unset, any text): %s\n", st.name, st.text ? st.text : "",
                       st.meaning);
            else
                printf("%s=%ld (default %ld, %ld..%ld): %s\n", st.name, st.value, st.dflt,
                       st.min, st.max, st.meaning);
        }
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "--help") == 0) {
        usage(stdout);
        return 0;
    }
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--stats") == 0) {
            setenv("HAKMEM_STATS", "1", 1);
        } else if (strcmp(argv[i], "--check") == 0) {
            setenv("HAKMEM_CHECK", "1", 1);
        } else if (strcmp(argv[i], "--profile") == 0 && i + 1 < argc && argv[i + 1][0]) {
            setenv("HAKMEM_PROFILE", argv[++i], 1);
        } else if (strcmp(argv[i], "--set") == 0 && i + 1 < argc) {
            check_setting(argv[++i]);
            if (putenv(argv[i]) != 0) {
                perror("hakmem: putenv");
                return 2;
            }
        } else if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        } else {
            fprintf(stderr, "hakmem: unknown option %s\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return 2;
    }
    const char *lib = find_library();
    if (lib == NULL) {
        fprintf(stderr, "hakmem: libhakmem.so not found next to hakmem or in %s\n", HAKMEM_LIBDIR);
        return 127;
    }
    const char *old = getenv("LD_PRELOAD");
    char *preload;
    if (asprintf(&preload, "%s%s%s", lib, old && *old ? ":" : "", old ? old : "") < 0 ||
        setenv("LD_PRELOAD", preload, 1) != 0) {
        perror("hakmem");
        return 2;
    }
    execvp(argv[i], &argv[i]);
    fprintf(stderr, "hakmem: cannot run %s: %s\n", argv[i], strerror(errno));
    return 127;
}
