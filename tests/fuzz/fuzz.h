/* Fuzz targets (tests/fuzz/fuzz_*.c): each defines the libFuzzer entry
 * point. Built with clang -fsanitize=fuzzer for a long run
 * (docs/testing.md, "Fuzzing"); built with replay.c by any compiler, the
 * target runs every input of its corpus once (tests/run.sh, under ASan). */
#ifndef CONFDR_FUZZ_H
#define CONFDR_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
