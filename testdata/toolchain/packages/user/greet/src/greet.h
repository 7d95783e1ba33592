#ifndef GREET_H
#define GREET_H

#include <stdio.h>

/* greet writes "hello, NAME" to out, with " (i/n)" when n > 1. */
int greet(FILE *out, const char *name, int i, int n);

/* parse_count reads a positive count from s; it returns -1 if s is not one. */
int parse_count(const char *s);

#endif
