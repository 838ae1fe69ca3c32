/* Runs a fuzz target once on every file of the corpus directories (or
 * files) named on the command line, in name order: what tests/run.sh does
 * under AddressSanitizer and UndefinedBehaviorSanitizer, so that an input
 * that once crashed stays fixed. Exit 0 when every input ran (a crash ends
 * the process), 1 when a corpus is missing or empty. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"

/* Reads path whole (its size from fstat); NULL if it cannot. */
static uint8_t *slurp(const char *path, size_t *len)
{
	struct stat st = { 0 };
	uint8_t *buf;
	ssize_t got = -1;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return NULL;
	buf = fstat(fd, &st) == 0 ? malloc((size_t)st.st_size + 1) : NULL;
	if (buf)
		got = read(fd, buf, (size_t)st.st_size);
	close(fd);
	if (got != (ssize_t)st.st_size) {
		free(buf);
		return NULL;
	}
	*len = (size_t)got;
	return buf;
}

static int one(const char *path)
{
	size_t len = 0;
	uint8_t *buf = slurp(path, &len);

	if (!buf) {
		fprintf(stderr, "replay: cannot read %s\n", path);
		return -1;
	}
	LLVMFuzzerTestOneInput(buf, len);
	free(buf);
	return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

int main(int argc, char **argv)
{
	size_t total = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE...\n", argv[0]);
		return 64;
	}
	for (int i = 1; i < argc; i++) {
		struct dirent **list;
		struct stat st;
		size_t ran = 0;
		int n;

		if (stat(argv[i], &st) < 0) {
			fprintf(stderr, "replay: %s: no such corpus\n", argv[i]);
			return 1;
		}
		if (!S_ISDIR(st.st_mode)) {
			if (one(argv[i]) < 0)
				return 1;
			total++;
			continue;
		}
		n = scandir(argv[i], &list, NULL, by_name);
		if (n < 0) {
			fprintf(stderr, "replay: cannot list %s\n", argv[i]);
			return 1;
		}
		for (int k = 0; k < n; k++) {
			char path[4096];

			if (list[k]->d_name[0] != '.') {
				snprintf(path, sizeof(path), "%s/%s", argv[i], list[k]->d_name);
				if (one(path) == 0)
					ran++;
			}
			free(list[k]);
		}
		free(list);
		if (ran == 0) {
			fprintf(stderr, "replay: %s holds no input\n", argv[i]);
			return 1;
		}
		printf("replay: %zu inputs of %s, none crashed\n", ran, argv[i]);
		total += ran;
	}
	printf("replay: %zu inputs in all\n", total);
	return 0;
}
