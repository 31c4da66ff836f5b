#include "base/report.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static void add_va(struct report *rep, enum log_level level, const char *fmt, va_list ap)
{
	struct report_note *nl;
	char *text;

	if (vasprintf(&text, fmt, ap) < 0) {
		log_msg(level, "%s", "(a message was lost: out of memory)");
		return;
	}
	nl = rep ? realloc(rep->notes, (rep->n + 1) * sizeof(*nl)) : NULL;
	if (!nl) {
		/* nobody to keep it for, or no room: said now, not lost */
		log_msg(rep ? level : LOG_LVL_DEBUG, "%s", text);
		free(text);
		return;
	}
	rep->notes = nl;
	rep->notes[rep->n++] = (struct report_note){ level, text };
}

void report_add(struct report *rep, enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	add_va(rep, level, fmt, ap);
	va_end(ap);
}

int report_err(struct report *rep, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	add_va(rep, LOG_LVL_ERROR, fmt, ap);
	va_end(ap);
	/* an error was noted: never report success */
	if (err == 0)
		return -EIO;
	return err < 0 ? err : -err;
}

void report_clear(struct report *rep)
{
	if (!rep)
		return;
	for (size_t i = 0; i < rep->n; i++)
		free(rep->notes[i].text);
	free(rep->notes);
	rep->notes = NULL;
	rep->n = 0;
}

void report_say(struct report *rep)
{
	if (!rep)
		return;
	for (size_t i = 0; i < rep->n; i++)
		log_msg(rep->notes[i].level, "%s", rep->notes[i].text);
	report_clear(rep);
}
