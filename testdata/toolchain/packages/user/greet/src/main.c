#include <stdio.h>
#include <string.h>

#include "greet.h"

static int usage(void)
{
	fputs("usage: greet [-n COUNT] NAME\n       greet --version\n", stderr);
	return 2;
}

int main(int argc, char **argv)
{
	int n = 1;
	int i;

	if (argc == 2 && strcmp(argv[1], "--version") == 0) {
		printf("greet %s\n", GREET_VERSION);
		return 0;
	}
	if (argc == 4 && strcmp(argv[1], "-n") == 0) {
		n = parse_count(argv[2]);
		if (n < 0)
			return usage();
		argv += 2;
		argc -= 2;
	}
	if (argc != 2)
		return usage();
	for (i = 1; i <= n; i++)
		if (greet(stdout, argv[1], i, n) != 0)
			return 1;
	return 0;
}
