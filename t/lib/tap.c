/*
 * tap - minimal TAP producer for the C unit tests (see tap.h).
 */
#include "tap.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int tap_planned = -1;
static int tap_count;
static int tap_failed;

void tap_plan(int n)
{
    tap_planned = n;
    printf("1..%d\n", n);
    fflush(stdout);
}

void tap_plan_lazy(void)
{
    tap_planned = -1;
}

static void tap_result(int cond, const char *fmt, va_list ap)
{
    tap_count++;
    if (!cond)
        tap_failed++;
    printf("%sok %d - ", cond ? "" : "not ", tap_count);
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
}

int tap_ok(int cond, const char *file, int line, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    tap_result(cond, fmt, ap);
    va_end(ap);
    if (!cond)
        tap_diag("  failed at %s:%d", file, line);
    return cond;
}

int tap_is_int(long long got, long long want, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    int cond = got == want;

    va_start(ap, fmt);
    tap_result(cond, fmt, ap);
    va_end(ap);
    if (!cond)
        tap_diag("  failed at %s:%d\n       got: %lld\n  expected: %lld", file, line, got, want);
    return cond;
}

int tap_is_str(const char *got, const char *want, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    int cond = (got == NULL && want == NULL) || (got && want && strcmp(got, want) == 0);

    va_start(ap, fmt);
    tap_result(cond, fmt, ap);
    va_end(ap);
    if (!cond)
        tap_diag("  failed at %s:%d\n       got: '%s'\n  expected: '%s'", file, line,
                 got ? got : "(null)", want ? want : "(null)");
    return cond;
}

int tap_diag(const char *fmt, ...)
{
    va_list ap;
    char line[8192];
    char *p, *nl;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    for (p = line; p; p = nl) {
        nl = strchr(p, '\n');
        if (nl)
            *nl++ = '\0';
        printf("# %s\n", p);
    }
    fflush(stdout);
    return 0;
}

int tap_done(void)
{
    if (tap_planned < 0)
        printf("1..%d\n", tap_count);
    else if (tap_planned != tap_count)
        tap_diag("planned %d tests but ran %d", tap_planned, tap_count);
    fflush(stdout);
    return tap_failed || (tap_planned >= 0 && tap_planned != tap_count) ? 1 : 0;
}
