/* HAKMEM_* settings: read once at initialisation from the table in types.h,
 * which is also what hak_setting_at reports.  getenv and environ do not
 * allocate, so this is safe on the first malloc. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "hakmem.h"
#include "types.h"

extern char **environ;

#define HAK_OPTION_DEFAULT(id, env, kind, dflt, ...) dflt,
long hak_options[HAK_OPT_COUNT] = { HAK_OPTION_TABLE(HAK_OPTION_DEFAULT) };

typedef struct { const char *env; int kind; long dflt, min, max; const char *meaning; } option_desc_t;
#define HAK_OPTION_DESC(id, env, kind, dflt, min, max, meaning) \
    { env, HAK_OPTION_##kind, dflt, min, max, meaning },
static const option_desc_t option_desc[HAK_OPT_COUNT] = { HAK_OPTION_TABLE(HAK_OPTION_DESC) };

/* TEXT settings' values, copied at start-up: the program may change its
 * environment later. */
static char option_text[HAK_OPT_COUNT][HAK_TEXT_MAX];

const char *hak_option_text(int id) { return option_text[id][0] ? option_text[id] : NULL; }

#define NAME_MAX_LEN 40                 /* longer HAKMEM_* names get no suggestion */

/* Decimal digits only, within [min, max]; anything else is rejected.  max is
 * at most 10^9 (the table), so v never overflows before the test. */
static bool parse(const char *s, long min, long max, long *out)
{
    long v = 0;
    if (*s == '\0')
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        v = v * 10 + (*s - '0');
        if (v > max)
            return false;
    }
    if (v < min)
        return false;
    *out = v;
    return true;
}

/* The index of the setting called name[0..n), or -1. */
static int setting_index(const char *name, size_t n)
{
    for (int i = 0; i < HAK_OPT_COUNT; i++)
        if (strlen(option_desc[i].env) == n && memcmp(option_desc[i].env, name, n) == 0)
            return i;
    return -1;
}

/* Edit distance (insertions, deletions, substitutions) between a[0..na) and
 * b, both at most NAME_MAX_LEN characters. */
static unsigned distance(const char *a, size_t na, const char *b)
{
    size_t nb = strlen(b);
    unsigned row[NAME_MAX_LEN + 1];
    for (size_t j = 0; j <= nb; j++)
        row[j] = (unsigned)j;
    for (size_t i = 1; i <= na; i++) {
        unsigned diag = row[0];
        row[0] = (unsigned)i;
        for (size_t j = 1; j <= nb; j++) {
            unsigned up = row[j];
            unsigned best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[nb];
}

/* A HAKMEM_* variable that names no setting: reported with the closest
 * setting's name when a slip of up to 2 characters (or a third of the
 * name) away. */
static void check_unknown(const char *entry)
{
    const char *eq = strchr(entry, '=');
    size_t n = eq ? (size_t)(eq - entry) : strlen(entry);
    if (setting_index(entry, n) >= 0)
        return;
    const char *best = NULL;
    unsigned best_d = ~0u;
    for (int i = 0; i < HAK_OPT_COUNT; i++) {
        const char *name = option_desc[i].env;
        if (n <= NAME_MAX_LEN && strlen(name) <= NAME_MAX_LEN) {
            unsigned d = distance(entry, n, name);
            if (d < best_d) {
                best_d = d;
                best = name;
            }
        }
    }
    unsigned allow = n / 3 > 2 ? 2 : (unsigned)(n / 3);
    hak_warn_unknown_option(entry, best_d <= allow ? best : NULL);
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
        if (d->kind == HAK_OPTION_TEXT) {
            size_t n = strlen(v);
            if (n < HAK_TEXT_MAX) {
                memcpy(option_text[i], v, n + 1);
                hak_options[i] = n > 0;
            } else {
                hak_warn_text_option(d->env, HAK_TEXT_MAX - 1);
            }
        } else if (parse(v, d->min, d->max, &x))
            hak_options[i] = x;
        else
            hak_warn_option(d->env, v, d->min, d->max, d->dflt);
    }
    for (char **e = environ; e && *e; e++)
        if (strncmp(*e, "HAKMEM_", 7) == 0)
            check_unknown(*e);
}

int hak_setting_at(int i, struct hak_setting *out)
{
    if (i < 0 || i >= HAK_OPT_COUNT) {
        errno = EINVAL;
        return -1;
    }
    hak_init();
    const option_desc_t *d = &option_desc[i];
    out->name = d->env;
    out->value = hak_option(i);
    out->dflt = d->dflt;
    out->min = d->min;
    out->max = d->max;
    out->meaning = d->meaning;
    out->text = d->kind == HAK_OPTION_TEXT ? hak_option_text(i) : NULL;
    out->is_text = d->kind == HAK_OPTION_TEXT;
    return 0;
}

/* Settings read afresh at every use (with hak_option), so that a change
 * takes effect at once and safely; the others are fixed at start-up
 * (HAKMEM_CHECK decides how every heap is set up; the fault settings have
 * hak_fault_inject). */
static const bool settable[HAK_OPT_COUNT] = {
    [HAK_OPT_RETAIN_MS] = true,
    [HAK_OPT_STATS] = true,
    [HAK_OPT_MAP_THRESHOLD_KB] = true,  /* placement only: a free finds any block by address */
};

int hak_setting_set(const char *name, long value)
{
    hak_init();
    int i = name ? setting_index(name, strlen(name)) : -1;
    if (i < 0 || !settable[i] || value < option_desc[i].min || value > option_desc[i].max) {
        errno = EINVAL;
        return -1;
    }
    __atomic_store_n(&hak_options[i], value, __ATOMIC_RELAXED);
    return 0;
}

int hak_setting_get(const char *name, long *value)
{
    hak_init();
    int i = name ? setting_index(name, strlen(name)) : -1;
    if (i < 0) {
        errno = EINVAL;
        return -1;
    }
    *value = hak_option(i);
    return 0;
}
