/* Statistics, and every message HAKMEM writes.  Messages are formatted into a
 * stack buffer and written with write(2) (hak_os_write): stdio may allocate
 * or lock, which an allocator reporting an error must not do. */
#include <stdlib.h>
#include "hakmem.h"
#include "types.h"

_Atomic size_t hak_stat[HAK_STAT_COUNT];

typedef struct { char buf[640]; size_t len; } msg_t;

static void put_str(msg_t *m, const char *s)
{
    while (*s && m->len < sizeof m->buf - 1)
        m->buf[m->len++] = *s++;
}

static void put_dec(msg_t *m, unsigned long v)
{
    char tmp[24];
    int i = 0;
    do tmp[i++] = (char)('0' + v % 10); while ((v /= 10) && i < 24);
    while (i > 0 && m->len < sizeof m->buf - 1)
        m->buf[m->len++] = tmp[--i];
}

static void put_signed(msg_t *m, long v)
{
    if (v < 0) {
        put_str(m, "-");
        v = -v;
    }
    put_dec(m, (unsigned long)v);
}

/* As printf's %p: 0x and lowercase hex, or (nil). */
static void put_ptr(msg_t *m, const void *p)
{
    uintptr_t v = (uintptr_t)p;
    char tmp[20];
    int i = 0;
    if (v == 0) {
        put_str(m, "(nil)");
        return;
    }
    while (v) {
        tmp[i++] = "0123456789abcdef"[v & 15];
        v >>= 4;
    }
    put_str(m, "0x");
    while (i > 0 && m->len < sizeof m->buf - 1)
        m->buf[m->len++] = tmp[--i];
}

static void emit(int fd, msg_t *m) { hak_os_write(fd, m->buf, m->len); }

void hak_fatal(const char *call, const char *what, const void *p)
{
    msg_t m = { .len = 0 };
    put_str(&m, "HAKMEM: ");
    put_str(&m, call);
    put_str(&m, "(): ");
    put_str(&m, what);
    put_str(&m, " ");
    put_ptr(&m, p);
    put_str(&m, "\n");
    emit(2, &m);
    abort();
}

void hak_assert_fail(const char *file, int line, const char *expr)
{
    msg_t m = { .len = 0 };
    put_str(&m, "HAKMEM: assertion failed: ");
    put_str(&m, expr);
    put_str(&m, " (");
    put_str(&m, file);
    put_str(&m, ":");
    put_dec(&m, (unsigned long)line);
    put_str(&m, ")\n");
    emit(2, &m);
    abort();
}

void hak_warn_option(const char *env, const char *value, long min, long max, long dflt)
{
    msg_t m = { .len = 0 };
    put_str(&m, "HAKMEM: bad value ");
    put_str(&m, env);
    put_str(&m, "=");
    put_str(&m, value);
    put_str(&m, " (expected ");
    put_signed(&m, min);
    put_str(&m, "..");
    put_signed(&m, max);
    put_str(&m, "); using ");
    put_signed(&m, dflt);
    put_str(&m, "\n");
    emit(2, &m);
}

/* entry is NAME=value from the environment; closest may be NULL. */
void hak_warn_unknown_option(const char *entry, const char *closest)
{
    msg_t m = { .len = 0 };
    put_str(&m, "HAKMEM: unknown setting ");
    put_str(&m, entry);
    if (closest) {
        put_str(&m, " (did you mean ");
        put_str(&m, closest);
        put_str(&m, "?)");
    }
    put_str(&m, "; ignored\n");
    emit(2, &m);
}

void hak_stats_get(struct hak_stats *out)
{
    hak_init();
    hak_pool_figures(&out->mapped, &out->committed, &out->superslabs, &out->slabs, &out->in_use);
    out->huge_in_use = atomic_load(&hak_stat[HAK_STAT_HUGE_BYTES]);
    out->huge_blocks = atomic_load(&hak_stat[HAK_STAT_HUGE_BLOCKS]);
    out->in_use += out->huge_in_use;
    out->mapped += out->huge_in_use;
    out->committed += out->huge_in_use;
    out->os_maps = atomic_load(&hak_stat[HAK_STAT_OS_MAPS]);
    out->os_unmaps = atomic_load(&hak_stat[HAK_STAT_OS_UNMAPS]);
    out->os_purges = atomic_load(&hak_stat[HAK_STAT_OS_PURGES]);
    out->remote_frees = (size_t)hak_remote_frees();
    out->threads_started = atomic_load(&hak_stat[HAK_STAT_THREADS_STARTED]);
    out->threads_exited = atomic_load(&hak_stat[HAK_STAT_THREADS_EXITED]);
    out->idle_slabs_released = atomic_load(&hak_stat[HAK_STAT_IDLE_SLABS_RELEASED]);
}

void hak_stats_print(int fd)
{
    struct hak_stats st;
    hak_stats_get(&st);
    const struct { const char *name; size_t v; } rows[] = {
        { "mapped bytes", st.mapped },         { "committed bytes", st.committed },
        { "in-use bytes", st.in_use },         { "huge in-use bytes", st.huge_in_use },
        { "huge blocks", st.huge_blocks },     { "superslabs", st.superslabs },
        { "slabs", st.slabs },                 { "os maps", st.os_maps },
        { "os unmaps", st.os_unmaps },         { "os purges", st.os_purges },
        { "remote frees", st.remote_frees },   { "threads started", st.threads_started },
        { "threads exited", st.threads_exited },
        { "idle slabs released", st.idle_slabs_released },
    };
    msg_t m = { .len = 0 };
    /* The pid tells apart the blocks of a program and its forked children. */
    put_str(&m, "HAKMEM statistics (pid ");
    put_dec(&m, (unsigned long)hak_os_pid());
    put_str(&m, ")\n");
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        put_str(&m, "  ");
        put_str(&m, rows[i].name);
        put_str(&m, ": ");
        put_dec(&m, rows[i].v);
        put_str(&m, "\n");
    }
    emit(fd, &m);
}

/* Where the statistics go at exit: a copy of stderr taken at start-up, so
 * that they still arrive when the program closes stderr before it exits (as
 * the coreutils do); stderr itself when they were asked for later. */
static int stats_fd = 2;

void hak_stats_init(void)
{
    if (hak_option(HAK_OPT_STATS)) {
        int fd = hak_os_dup(2);
        if (fd >= 0)
            stats_fd = fd;
    }
}

__attribute__((destructor)) static void stats_at_exit(void)
{
    if (hak_option(HAK_OPT_STATS))
        hak_stats_print(stats_fd);
}
