/* A library that allocates as it loads, while in use and as it unloads:
 * test_background dlopens and dlcloses it in a loop while HAKMEM's
 * background thread runs. */
#include <stdlib.h>
#include <string.h>

static char *table;

__attribute__((constructor)) static void plugin_load(void)
{
    table = malloc(256 << 10);
    memset(table, 1, 256 << 10);
}

__attribute__((destructor)) static void plugin_unload(void)
{
    free(table);
}

/* n bytes allocated, written, summed and freed: the sum of n ones. */
long plugin_work(size_t n)
{
    unsigned char *p = malloc(n);
    long sum = 0;
    if (p == NULL)
        return -1;
    memset(p, 1, n);
    for (size_t i = 0; i < n; i += 512)
        sum += p[i];
    free(p);
    return sum;
}
