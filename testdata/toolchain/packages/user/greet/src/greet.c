#include "greet.h"

int greet(FILE *out, const char *name, int i, int n)
{
	if (n > 1)
		return fprintf(out, "hello, %s (%d/%d)\n", name, i, n) < 0 ? -1 : 0;
	return fprintf(out, "hello, %s\n", name) < 0 ? -1 : 0;
}
