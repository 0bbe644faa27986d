/* Heap profiling: HAKMEM_PROFILE=FILE.
 *
 * Allocations are sampled by bytes.  Every byte allocated is a sample point
 * with probability 1/R (R = HAKMEM_PROFILE_RATE), so a block of n bytes is
 * sampled with probability 1 - exp(-n/R) and a sample stands for
 * 1/(1 - exp(-n/R)) blocks like it (about R bytes' worth for small blocks).
 * Each thread counts down the bytes to its next sample point, drawn from the
 * exponential distribution; R = 1 samples every allocation.  The generator
 * is seeded by thread creation order, so a single-threaded run samples the
 * same blocks every time.
 *
 * A sample records the block, its size and its call stack (glibc's
 * backtrace, from the first frame outside HAKMEM) in the live table until the
 * block is freed.  Call stacks are interned, each with its live and total
 * sampled counts.  A free looks its block up only when the block's slab
 * holds a sample (slab.sampled) or the block is Huge, so most frees skip
 * the profile lock.
 *
 * Profile mode sends every call through the slow paths (hak_slow_mode, as
 * check mode does), which call hak_profile_alloc and hak_profile_free: the
 * fast paths know nothing of profiling, so it costs nothing when off.
 *
 * At exit and on hak_profile_dump the live samples are written in pprof's
 * legacy heap-profile format ("heap_v2/R": counts as sampled, which pprof
 * scales back), then the process's memory map for pprof's symbolisation;
 * at exit FILE.leaks gets a readable report of what was never freed,
 * biggest call sites first, with the estimates scaled back here and the
 * symbols dladdr finds.  The tables live in a mapping of their own, never
 * in the heap they describe.  backtrace loads libgcc's unwinder on its
 * first call (so programs that never profile do not map it), which
 * allocates: those allocations are not sampled.  It and dladdr may take the
 * loader's lock, so neither runs while the profile lock is held.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <link.h>
#include <string.h>
#include "hakmem.h"
#include "types.h"

#define MAX_DEPTH     48
#define SAMPLES_MIN   ((size_t)1 << 12)     /* the live table's first size (slots)  */
#define SAMPLES_MAX   ((size_t)1 << 21)     /* its largest: live samples at most half */
#define STACKS_MAX    ((size_t)1 << 14)     /* call stacks, slot 0 the overflow     */
#define INDEX_SLOTS   (STACKS_MAX * 2)      /* their hash index                     */
#define FRAME_SLOTS   ((size_t)1 << 19)     /* frames of all stacks                 */
#define REPORT_SITES  25                    /* call sites in the leak report      */
#define LN2           0.6931471805599453

typedef struct { void *p; size_t n; uint32_t stack; } sample_t;     /* p NULL: empty slot */

typedef struct {
    uint64_t hash;                  /* 0: empty slot                              */
    uint32_t first, depth;          /* frame[first, first + depth)                 */
    size_t live_n, live_bytes;      /* sampled blocks not freed yet                */
    size_t total_n, total_bytes;    /* every sample                                */
} callstack_t;

/* A stack's figures copied for a report, with the scaled-back estimates. */
typedef struct {
    size_t live_n, live_bytes, total_n, total_bytes, min_n, max_n;
    double est_n, est_bytes;
    bool shown;                     /* in the leak report already */
} stack_snap_t;

/* Filled from the front, so that only what is used is ever touched
 * (the mapping is reserved, not committed). */
static struct {
    callstack_t stack[STACKS_MAX];      /* [0]: samples whose stack found no room */
    uint32_t index[INDEX_SLOTS];        /* stack numbers by hash, 0: empty        */
    stack_snap_t snap[STACKS_MAX];
    uintptr_t frame[FRAME_SLOTS];
} *tab;
static sample_t *sample;                /* the live table: sample_cap slots, linear probing */
static size_t sample_cap;

bool hak_profile_on;
static hak_lock_t lock;                     /* tab, and the counts below */
static hak_lock_t dump_lock;                /* tab->snap, dump_seq: one report at a time */
static size_t live, stacks = 1, frames, dropped;
static size_t n_stacks;                     /* stacks in tab->snap (dump_lock) */
static size_t rate;
static unsigned dump_seq;
static bool forked;                         /* a fork child: FILE.pid */
static _Atomic bool tab_ready;
static _Atomic uint64_t threads_seen;
static _Atomic uintptr_t self_lo, self_hi;  /* HAKMEM's code, when it is a library of its own */
static _Atomic bool self_known;

static __thread struct {
    int64_t left;                           /* bytes to the next sample point */
    uint64_t rng;                           /* 0: not seeded yet */
    bool busy;                              /* recording: the unwinder's mallocs are not sampled */
} me __attribute__((tls_model("initial-exec")));

void hak_profile_init(void)
{
    hak_profile_on = hak_option(HAK_OPT_PROFILE) != 0;
    rate = (size_t)hak_option(HAK_OPT_PROFILE_RATE);
}

/* ---- sampling ---------------------------------------------------------------------- */
static uint64_t next_random(void)
{
    uint64_t x = me.rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    me.rng = x;
    return x * 0x2545f4914f6cdd1dull;
}

/* ln(x) for x in (0, 1], without libm: x = m 2^e, ln m = 2 atanh((m-1)/(m+1)). */
static double ln_unit(uint64_t r, unsigned bits)     /* x = r / 2^bits, 1 <= r <= 2^bits */
{
    int e = 63 - __builtin_clzll(r);
    double m = (double)r / (double)((uint64_t)1 << e), z = (m - 1) / (m + 1), z2 = z * z;
    double sum = 0, term = z;
    for (int k = 1; k < 24; k += 2, term *= z2)
        sum += term / k;
    return (e - (int)bits) * LN2 + 2 * sum;
}

/* exp(-x) for x >= 0, without libm. */
static double exp_neg(double x)
{
    if (x > 700)
        return 0;
    int k = (int)(x / LN2);
    double r = x - k * LN2, term = 1, sum = 1;
    for (int i = 1; i < 20; i++) {
        term *= -r / i;
        sum += term;
    }
    while (k-- > 0)
        sum *= 0.5;
    return sum;
}

/* Bytes to the next sample point: exponential with mean rate (0 for rate 1). */
static int64_t next_gap(void)
{
    if (rate == 1)
        return 0;
    uint64_t r = (next_random() >> 11) + 1;             /* 1 .. 2^53 */
    return (int64_t)(-ln_unit(r, 53) * (double)rate);
}

/* How many blocks of n bytes one sample stands for. */
static double scale_of(size_t n)
{
    return rate == 1 ? 1.0 : 1.0 / (1.0 - exp_neg((double)n / (double)rate));
}

/* ---- call stacks ------------------------------------------------------------------- */
static int find_self(struct dl_phdr_info *info, size_t size, void *arg)
{
    uintptr_t here = (uintptr_t)arg;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X) && here >= lo && here < lo + ph->p_memsz) {
            /* Linked into the program itself (libhakmem.a), the range would
             * hold the program's code too: then no frame is skipped. */
            if (info->dlpi_name && info->dlpi_name[0]) {
                self_lo = lo;
                self_hi = lo + ph->p_memsz;
            }
            return 1;
        }
    }
    return 0;
}

/* The caller's stack from the first frame outside HAKMEM: its depth. */
static unsigned backtrace_here(uintptr_t *pc)
{
    if (!atomic_load_explicit(&self_known, memory_order_acquire)) {
        dl_iterate_phdr(find_self, (void *)(uintptr_t)&backtrace_here);
        atomic_store_explicit(&self_known, true, memory_order_release);
    }
    void *raw[MAX_DEPTH + 8];
    int n = backtrace(raw, MAX_DEPTH + 8), i = 0;
    while (i < n && (uintptr_t)raw[i] >= self_lo && (uintptr_t)raw[i] < self_hi)
        i++;
    unsigned depth = 0;
    for (; i < n && depth < MAX_DEPTH; i++)
        pc[depth++] = (uintptr_t)raw[i];
    return depth;
}

static uint64_t hash_stack(const uintptr_t *pc, unsigned depth)
{
    uint64_t h = 0x84222325cbf29ce4ull ^ depth;
    for (unsigned i = 0; i < depth; i++)
        h = (h ^ pc[i]) * 0x100000001b3ull;
    return h | 1;                           /* never 0, the empty mark */
}

/* The number of this stack, interned if new (0 when the tables are full);
 * the caller holds the lock. */
static uint32_t stack_intern(const uintptr_t *pc, unsigned depth)
{
    uint64_t h = hash_stack(pc, depth);
    for (size_t i = h & (INDEX_SLOTS - 1);; i = (i + 1) & (INDEX_SLOTS - 1)) {
        uint32_t k = tab->index[i];
        if (k == 0) {
            if (stacks == STACKS_MAX || frames + depth > FRAME_SLOTS)
                return 0;
            callstack_t *s = &tab->stack[stacks];
            memcpy(&tab->frame[frames], pc, depth * sizeof *pc);
            s->first = (uint32_t)frames;
            s->depth = depth;
            s->hash = h;
            frames += depth;
            tab->index[i] = (uint32_t)stacks;
            return (uint32_t)stacks++;
        }
        const callstack_t *s = &tab->stack[k];
        if (s->hash == h && s->depth == depth &&
            memcmp(&tab->frame[s->first], pc, depth * sizeof *pc) == 0)
            return k;
    }
}

/* ---- the live table (linear probing; the caller holds the lock) --------------------- */
static size_t slot_of(const void *p, size_t cap)
{
    return (size_t)(((uintptr_t)p >> 4) * 0x9e3779b97f4a7c15ull >> 20) & (cap - 1);
}

static sample_t *sample_find(const void *p)
{
    for (size_t i = slot_of(p, sample_cap);; i = (i + 1) & (sample_cap - 1)) {
        sample_t *s = &sample[i];
        if (s->p == p)
            return s;
        if (s->p == NULL)
            return NULL;
    }
}

static void put_sample(sample_t *table, size_t cap, sample_t x)
{
    size_t i = slot_of(x.p, cap);
    while (table[i].p != NULL)
        i = (i + 1) & (cap - 1);
    table[i] = x;
}

/* Room for one more live sample, the table doubled when half full: false
 * if it cannot grow. */
static bool sample_room(void)
{
    if (live < sample_cap / 2)
        return true;
    size_t cap = sample_cap ? sample_cap * 2 : SAMPLES_MIN;
    sample_t *table = cap <= SAMPLES_MAX ? hak_os_map(cap * sizeof *table, false) : NULL;
    if (table == NULL)
        return false;
    for (size_t i = 0; i < sample_cap; i++)
        if (sample[i].p != NULL)
            put_sample(table, cap, sample[i]);
    if (sample)
        hak_os_unmap(sample, sample_cap * sizeof *sample);
    sample = table;
    sample_cap = cap;
    return true;
}

/* Removes *s, moving back later entries of its run that may fill the hole. */
static void sample_remove(sample_t *s)
{
    size_t hole = (size_t)(s - sample), mask = sample_cap - 1;
    for (size_t i = (hole + 1) & mask; sample[i].p != NULL; i = (i + 1) & mask) {
        size_t home = slot_of(sample[i].p, sample_cap);
        /* entry i may move to hole if its home is not in (hole, i] */
        if (((i - home) & mask) >= ((i - hole) & mask)) {
            sample[hole] = sample[i];
            hole = i;
        }
    }
    sample[hole].p = NULL;
    live--;
}

static hak_slab_t *slab_of_sample(const void *p)
{
    return hak_region_of((uintptr_t)p) == HAK_REGION_SS ? hak_slab_of(hak_ss_of(p), p) : NULL;
}

/* The tables' memory, mapped on the first sample; the caller holds the lock. */
static bool tab_map(void)
{
    if (tab == NULL) {
        tab = hak_os_map(sizeof *tab, true);
        if (tab == NULL || !sample_room())
            return false;
        atomic_store_explicit(&tab_ready, true, memory_order_release);
    }
    return true;
}

static void record(void *p, size_t n)
{
    uintptr_t pc[MAX_DEPTH];
    unsigned depth = backtrace_here(pc);
    hak_lock(&lock);
    if (!tab_map() || !sample_room()) {
        dropped++;
        hak_unlock(&lock);
        return;
    }
    uint32_t st = stack_intern(pc, depth);
    callstack_t *s = &tab->stack[st];
    put_sample(sample, sample_cap, (sample_t){ p, n, st });
    live++;
    s->live_n++;
    s->live_bytes += n;
    s->total_n++;
    s->total_bytes += n;
    hak_slab_t *slab = slab_of_sample(p);
    if (slab)
        atomic_fetch_add_explicit(&slab->sampled, 1, memory_order_relaxed);
    hak_unlock(&lock);
}

void hak_profile_alloc(void *p, size_t n)
{
    if (n == 0)
        return;                             /* holds no bytes (and pprof divides by them) */
    if (HAK_UNLIKELY(me.rng == 0)) {
        me.rng = (atomic_fetch_add(&threads_seen, 1) + 1) * 0x9e3779b97f4a7c15ull | 1;
        me.left = next_gap();
    }
    if ((me.left -= (int64_t)n) > 0)
        return;
    me.left = next_gap();
    if (me.busy)
        return;
    me.busy = true;
    record(p, n);
    me.busy = false;
}

void hak_profile_free(void *p, hak_slab_t *s)
{
    if (s != NULL ? atomic_load_explicit(&s->sampled, memory_order_relaxed) == 0
                  : !atomic_load_explicit(&tab_ready, memory_order_acquire))
        return;
    hak_lock(&lock);
    sample_t *x = sample_find(p);
    if (x != NULL) {
        callstack_t *st = &tab->stack[x->stack];
        st->live_n--;
        st->live_bytes -= x->n;
        sample_remove(x);
        if (s)
            atomic_fetch_sub_explicit(&s->sampled, 1, memory_order_relaxed);
    }
    hak_unlock(&lock);
}

void hak_profile_moved(void *from, void *to, size_t n)
{
    if (!atomic_load_explicit(&tab_ready, memory_order_acquire))
        return;
    hak_lock(&lock);
    sample_t *x = sample_find(from);
    if (x != NULL) {
        sample_t keep = *x;
        callstack_t *st = &tab->stack[keep.stack];
        st->live_bytes += n - keep.n;
        st->total_bytes += n > keep.n ? n - keep.n : 0;
        sample_remove(x);
        put_sample(sample, sample_cap, (sample_t){ to, n, keep.stack });
        live++;
    }
    hak_unlock(&lock);
}

/* ---- reports ------------------------------------------------------------------------- */
/* Copies every stack's figures, with the estimates, into tab->snap (and
 * their number into n_stacks); the caller holds dump_lock.  The stacks' frames never change once interned. */
static void snapshot(void)
{
    hak_lock(&lock);
    for (size_t i = 0; i < stacks; i++) {
        const callstack_t *s = &tab->stack[i];
        tab->snap[i] = (stack_snap_t){ s->live_n, s->live_bytes, s->total_n, s->total_bytes,
                                       SIZE_MAX, 0, 0, 0, false };
    }
    for (size_t i = 0; i < sample_cap; i++) {
        const sample_t *x = &sample[i];
        if (x->p == NULL)
            continue;
        stack_snap_t *sn = &tab->snap[x->stack];
        double k = scale_of(x->n);
        sn->est_n += k;
        sn->est_bytes += k * (double)x->n;
        if (x->n < sn->min_n)
            sn->min_n = x->n;
        if (x->n > sn->max_n)
            sn->max_n = x->n;
    }
    n_stacks = stacks;
    hak_unlock(&lock);
}

static void put_hex(hak_msg_t *m, uintptr_t v) { hak_msg_ptr(m, (const void *)v); }

static void put_counts(hak_msg_t *m, size_t n1, size_t b1, size_t n2, size_t b2)
{
    hak_msg_dec(m, n1);
    hak_msg_str(m, ": ");
    hak_msg_dec(m, b1);
    hak_msg_str(m, " [");
    hak_msg_dec(m, n2);
    hak_msg_str(m, ": ");
    hak_msg_dec(m, b2);
    hak_msg_str(m, "]");
}

/* pprof's legacy heap profile of the snapshot, then /proc/self/maps. */
static void write_profile(int fd)
{
    hak_msg_t m = { .len = 0, .fd = fd };
    size_t n1 = 0, b1 = 0, n2 = 0, b2 = 0;
    for (size_t i = 0; i < n_stacks; i++) {
        n1 += tab->snap[i].live_n;
        b1 += tab->snap[i].live_bytes;
        n2 += tab->snap[i].total_n;
        b2 += tab->snap[i].total_bytes;
    }
    hak_msg_str(&m, "heap profile: ");
    put_counts(&m, n1, b1, n2, b2);
    hak_msg_str(&m, " @ heap_v2/");
    hak_msg_dec(&m, rate);
    hak_msg_str(&m, "\n");
    for (size_t i = 0; i < n_stacks; i++) {
        const stack_snap_t *sn = &tab->snap[i];
        const callstack_t *s = &tab->stack[i];
        if (sn->total_n == 0)
            continue;
        put_counts(&m, sn->live_n, sn->live_bytes, sn->total_n, sn->total_bytes);
        hak_msg_str(&m, " @");
        for (uint32_t f = 0; f < s->depth; f++) {
            hak_msg_str(&m, " ");
            put_hex(&m, tab->frame[s->first + f]);
        }
        hak_msg_str(&m, "\n");
    }
    hak_msg_str(&m, "\nMAPPED_LIBRARIES:\n");
    hak_msg_flush(&m);
    int maps = hak_os_open("/proc/self/maps", false);
    if (maps >= 0) {
        long r;
        while ((r = hak_os_read(maps, m.buf, sizeof m.buf)) > 0)
            hak_os_write(fd, m.buf, (size_t)r);
        hak_os_close(maps);
    }
}

/* One frame: address, function+offset and object, as dladdr finds them. */
static void put_frame(hak_msg_t *m, uintptr_t pc)
{
    Dl_info info;
    hak_msg_str(m, "    ");
    put_hex(m, pc);
    /* pc - 1: the call itself, inside the caller even after a noreturn call */
    if (dladdr((void *)(pc - 1), &info) != 0) {
        if (info.dli_sname) {
            hak_msg_str(m, " ");
            hak_msg_str(m, info.dli_sname);
            hak_msg_str(m, "+");
            put_hex(m, pc - (uintptr_t)info.dli_saddr);
        }
        if (info.dli_fname && info.dli_fname[0]) {
            hak_msg_str(m, " (");
            hak_msg_str(m, info.dli_fname);
            hak_msg_str(m, ")");
        }
    }
    hak_msg_str(m, "\n");
}

/* What was never freed, biggest estimated call sites first. */
static void write_leaks(int fd, size_t *out_bytes, size_t *out_blocks)
{
    hak_msg_t m = { .len = 0, .fd = fd };
    double bytes = 0, blocks = 0;
    size_t sites = 0, samples = 0;
    for (size_t i = 0; i < n_stacks; i++)
        if (tab->snap[i].live_n) {
            bytes += tab->snap[i].est_bytes;
            blocks += tab->snap[i].est_n;
            samples += tab->snap[i].live_n;
            sites++;
        }
    *out_bytes = (size_t)(bytes + 0.5);
    *out_blocks = (size_t)(blocks + 0.5);
    hak_msg_str(&m, "HAKMEM leak report, pid ");
    hak_msg_dec(&m, (unsigned long)hak_os_pid());
    hak_msg_str(&m, ": about ");
    hak_msg_dec(&m, *out_bytes);
    hak_msg_str(&m, " bytes in about ");
    hak_msg_dec(&m, *out_blocks);
    hak_msg_str(&m, " blocks never freed, from ");
    hak_msg_dec(&m, sites);
    hak_msg_str(&m, " call sites (");
    hak_msg_dec(&m, samples);
    hak_msg_str(&m, " samples, one per ");
    hak_msg_dec(&m, rate);
    hak_msg_str(&m, " bytes allocated on average; ");
    hak_msg_dec(&m, dropped);
    hak_msg_str(&m, " dropped)\n");
    for (unsigned k = 1; k <= REPORT_SITES; k++) {
        size_t best = SIZE_MAX;             /* the biggest not shown yet */
        for (size_t i = 0; i < n_stacks; i++) {
            const stack_snap_t *sn = &tab->snap[i];
            if (sn->live_n && !sn->shown &&
                (best == SIZE_MAX || sn->est_bytes > tab->snap[best].est_bytes))
                best = i;
        }
        if (best == SIZE_MAX)
            break;
        stack_snap_t *sn = &tab->snap[best];
        sn->shown = true;
        hak_msg_str(&m, "\n#");
        hak_msg_dec(&m, k);
        hak_msg_str(&m, " about ");
        hak_msg_dec(&m, (size_t)(sn->est_bytes + 0.5));
        hak_msg_str(&m, " bytes in about ");
        hak_msg_dec(&m, (size_t)(sn->est_n + 0.5));
        hak_msg_str(&m, " blocks (");
        hak_msg_dec(&m, sn->live_n);
        hak_msg_str(&m, " samples of ");
        hak_msg_dec(&m, sn->min_n);
        if (sn->max_n != sn->min_n) {
            hak_msg_str(&m, "..");
            hak_msg_dec(&m, sn->max_n);
        }
        hak_msg_str(&m, " bytes), allocated at\n");
        const callstack_t *s = &tab->stack[best];
        if (best == 0)
            hak_msg_str(&m, "    (call stacks not kept: the profile's table was full)\n");
        for (uint32_t f = 0; f < s->depth; f++)
            put_frame(&m, tab->frame[s->first + f]);
    }
    hak_msg_flush(&m);
}

/* The HAKMEM_PROFILE name with %p made the pid (FILE.pid in a fork child
 * when it has no %p), then suffix: false if it does not fit. */
static bool profile_path(char *out, size_t size, const char *suffix, unsigned seq)
{
    const char *name = hak_option_text(HAK_OPT_PROFILE);
    hak_msg_t m = { .len = 0, .fd = -1 };
    bool has_pid = false;
    for (const char *c = name; *c; c++) {
        if (c[0] == '%' && c[1] == 'p') {
            hak_msg_dec(&m, (unsigned long)hak_os_pid());
            has_pid = true;
            c++;
        } else {
            hak_msg_ch(&m, *c);
        }
    }
    if (forked && !has_pid) {
        hak_msg_str(&m, ".");
        hak_msg_dec(&m, (unsigned long)hak_os_pid());
    }
    if (seq) {
        hak_msg_str(&m, ".");
        hak_msg_dec(&m, seq);
    }
    hak_msg_str(&m, suffix);
    if (m.len >= size || m.len >= sizeof m.buf - 1)
        return false;
    memcpy(out, m.buf, m.len);
    out[m.len] = '\0';
    return true;
}

/* The tables mapped (a report before the first sample has them empty). */
static bool tables_mapped(void)
{
    hak_lock(&lock);
    bool ok = tab_map();
    hak_unlock(&lock);
    return ok;
}

static int dump_to(const char *path)
{
    int fd = hak_os_open(path, true);
    if (fd < 0)
        return -1;
    snapshot();
    write_profile(fd);
    hak_os_close(fd);
    return 0;
}

int hak_profile_dump(const char *path)
{
    hak_init();
    char name[HAK_TEXT_MAX + 32];
    if (!hak_profile_on) {
        errno = EINVAL;
        return -1;
    }
    hak_lock(&dump_lock);
    int r = -1;
    if (!tables_mapped())
        errno = ENOMEM;
    else if (path == NULL && !profile_path(name, sizeof name, "", ++dump_seq))
        errno = ENAMETOOLONG;
    else
        r = dump_to(path ? path : name);
    hak_unlock(&dump_lock);
    return r;
}

/* One line on stderr: why nothing was written. */
static void tell_failure(const char *what, const char *path)
{
    hak_msg_t m = { .len = 0, .fd = -1 };
    hak_msg_str(&m, "HAKMEM: HAKMEM_PROFILE: ");
    hak_msg_str(&m, what);
    hak_msg_str(&m, path);
    hak_msg_str(&m, "\n");
    hak_msg_flush(&m);
}

/* At exit: the profile to FILE, the leak report to FILE.leaks, and one line
 * on stderr that says so. */
__attribute__((destructor)) static void profile_at_exit(void)
{
    char name[HAK_TEXT_MAX + 32], leaks[HAK_TEXT_MAX + 40];
    if (!hak_profile_on)
        return;
    hak_lock(&dump_lock);
    int fd = -1;
    if (!tables_mapped() || !profile_path(name, sizeof name, "", 0) ||
        !profile_path(leaks, sizeof leaks, ".leaks", 0))
        tell_failure("no room for the profile: nothing written to ", hak_option_text(HAK_OPT_PROFILE));
    else if (dump_to(name) != 0)
        tell_failure("cannot write ", name);
    else if ((fd = hak_os_open(leaks, true)) < 0)
        tell_failure("cannot write ", leaks);
    if (fd >= 0) {
        size_t bytes, blocks;
        write_leaks(fd, &bytes, &blocks);
        hak_os_close(fd);
        hak_msg_t m = { .len = 0, .fd = -1 };
        hak_msg_str(&m, "HAKMEM: heap profile in ");
        hak_msg_str(&m, name);
        hak_msg_str(&m, "; about ");
        hak_msg_dec(&m, bytes);
        hak_msg_str(&m, " bytes in about ");
        hak_msg_dec(&m, blocks);
        hak_msg_str(&m, " blocks never freed: ");
        hak_msg_str(&m, leaks);
        hak_msg_str(&m, "\n");
        hak_msg_flush(&m);
    }
    hak_unlock(&dump_lock);
}

/* ---- fork ------------------------------------------------------------------------------ */
void hak_profile_fork_prepare(void)
{
    hak_lock(&dump_lock);
    hak_lock(&lock);
}

void hak_profile_fork_parent(void)
{
    hak_unlock(&lock);
    hak_unlock(&dump_lock);
}

void hak_profile_fork_child(void)
{
    hak_lock_reset(&lock);
    hak_lock_reset(&dump_lock);
    forked = true;
    dump_seq = 0;
}
