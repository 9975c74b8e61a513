/* Runs the no_std check staticlib on the host (see ci/test.sh, step no_std).
 *
 * Usage: harness EXPECTED_BACKENDS
 * masstree_nostd_check() returns how many backends it exercised, or
 * SIZE_MAX if one of them gave a wrong answer. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

size_t masstree_nostd_check(void);

/* The Rust objects reference the personality routine even with panic=abort;
 * nothing unwinds, so it is never called. */
void rust_eh_personality(void) { abort(); }

int main(int argc, char **argv) {
    size_t expected = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 0;
    size_t got = masstree_nostd_check();
    if (got == SIZE_MAX) {
        printf("nostd-check: a backend gave a wrong answer\n");
        return 1;
    }
    if (got != expected) {
        printf("nostd-check: exercised %zu backend(s), expected %zu\n", got, expected);
        return 1;
    }
    printf("nostd-check: OK, %zu no_std backend(s) inserted and read back without std\n", got);
    return 0;
}
