/*
 * tap - a tiny Test Anything Protocol emitter for Postern's C unit tests
 * (t/unit/), run by prove.
 *
 *   plan_lazy();                     // or plan(n)
 *   ok(cond, "what %s", x);
 *   is_int(got, want, "name"); is_str(got, want, "name");
 *   return done_testing();           // prints the plan, exit status
 *
 * A failed check prints the file:line and, for is_*, got and expected.
 */
#ifndef POSTERN_TAP_H
#define POSTERN_TAP_H

void tap_plan(int n);
void tap_plan_lazy(void);
int tap_ok(int cond, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int tap_is_int(long long got, long long want, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
int tap_is_str(const char *got, const char *want, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
int tap_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int tap_done(void);

#define plan(n) tap_plan(n)
#define plan_lazy() tap_plan_lazy()
#define ok(c, ...) tap_ok(!!(c), __FILE__, __LINE__, __VA_ARGS__)
#define is_int(g, w, ...)                                                                          \
    tap_is_int((long long)(g), (long long)(w), __FILE__, __LINE__, __VA_ARGS__)
#define is_str(g, w, ...) tap_is_str((g), (w), __FILE__, __LINE__, __VA_ARGS__)
#define diag(...) tap_diag(__VA_ARGS__)
#define done_testing() tap_done()

#endif
