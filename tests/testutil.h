/* Minimal test helpers: every CHECK counts, a failing CHECK prints where and
 * why, and test_done() turns the tally into the exit status. */
#ifndef HAK_TESTUTIL_H
#define HAK_TESTUTIL_H
#include <stdio.h>
#include <stdlib.h>

static int t_checks, t_failures;

#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        t_checks++;                                                           \
        if (!(cond)) {                                                        \
            t_failures++;                                                     \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);  \
            fprintf(stderr, __VA_ARGS__);                                     \
            fputc('\n', stderr);                                              \
        }                                                                     \
    } while (0)

static inline int test_done(const char *name)
{
    printf("%s: %d checks, %d failed\n", name, t_checks, t_failures);
    return t_failures == 0 && t_checks > 0 ? 0 : 1;
}
#endif
