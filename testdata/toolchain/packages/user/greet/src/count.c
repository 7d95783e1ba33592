#include <errno.h>
#include <limits.h>
#include <stdlib.h>

#include "greet.h"

int parse_count(const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < 1 || v > INT_MAX)
		return -1;
	return (int)v;
}
