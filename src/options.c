/* HAKMEM_* settings: read once at initialisation from the table in types.h.
 * getenv does not allocate, so this is safe on the first malloc. */
#include <stdlib.h>
#include "types.h"

#define HAK_OPTION_DEFAULT(id, env, dflt, ...) dflt,
long hak_options[HAK_OPT_COUNT] = { HAK_OPTION_TABLE(HAK_OPTION_DEFAULT) };

typedef struct { const char *env; long dflt, min, max; } option_desc_t;
#define HAK_OPTION_DESC(id, env, dflt, min, max, meaning) { env, dflt, min, max },
static const option_desc_t option_desc[HAK_OPT_COUNT] = { HAK_OPTION_TABLE(HAK_OPTION_DESC) };

/* Decimal digits only, within [min, max]; anything else is rejected. */
static bool parse(const char *s, long min, long max, long *out)
{
    long v = 0;
    if (*s == '\0')
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (max - (*s - '0')) / 10)
            return false;
        v = v * 10 + (*s - '0');
    }
    if (v < min)
        return false;
    *out = v;
    return true;
}

void hak_options_init(void)
{
    for (int i = 0; i < HAK_OPT_COUNT; i++) {
        const option_desc_t *d = &option_desc[i];
        const char *v = getenv(d->env);
        long x;
        hak_options[i] = d->dflt;
        if (v == NULL)
            continue;
        if (parse(v, d->min, d->max, &x))
            hak_options[i] = x;
        else
            hak_warn_option(d->env, v, d->min, d->max, d->dflt);
    }
}
