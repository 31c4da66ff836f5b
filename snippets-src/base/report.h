/* What library code has to say, kept for the program to say once: the
 * guests layer logs nothing above debug (house style, after systemd);
 * it notes each outcome and failure here, in the words the user sees,
 * and the caller says them (report_say()) where it decides what to do.
 * The shape of host/hold.h's struct hold_changes, with the words made by
 * the layer that knows them (QEMU's and libvirt's messages). */
#pragma once

#include <stddef.h>

#include "base/log.h"

struct report_note {
	enum log_level level;
	char *text;
};

/* Notes in the order they were made. Zero-initialized is empty. */
struct report {
	struct report_note *notes;
	size_t n;
};

/* Notes one line. rep NULL: nobody asked, the line goes to the debug log.
 * When no memory is left to keep it, it is logged at once (never lost). */
void report_add(struct report *rep, enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Notes an error line and returns -|err| (-EIO for 0), for "return
 * report_err(rep, r, ...)", as log_err(). */
int report_err(struct report *rep, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Logs every note, in order, at its level, and empties rep (NULL: none). */
void report_say(struct report *rep);

/* Drops the notes unsaid (for a caller that has its own words). */
void report_clear(struct report *rep);
