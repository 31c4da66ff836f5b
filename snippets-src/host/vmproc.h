/* A guest's QEMU process, as its pid file tells it (Proxmox VE:
 * <qmp_socket_dir>/<vmid>.pid): the file names a pid, and that pid is a live
 * process started with "-pidfile" naming that same file (what qemu-server's vm_running_locally() checks). A pid
 * file left by a killed QEMU whose pid now belongs to another process does
 * not count. Touches no socket: a connect() to a busy QMP socket would wait
 * in QEMU's backlog and get in Proxmox's way. Nothing here logs. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* The pid of the running QEMU that pidfile names, or 0. */
unsigned long vmproc_pid(const char *pidfile);

/* "PID:STARTTIME" of the VM's running QEMU into buf (what a port hint is
 * stamped with: a pid can be reused, the pair cannot). "" when it does not
 * run. */
void vmproc_stamp(const char *pidfile, char *buf, size_t n);

/* Whether process pid has the device rdev of type (S_IFBLK, S_IFCHR)
 * open: 1, 0, or -1 when that cannot be told (/proc unreadable). */
int vmproc_has_open(unsigned long pid, mode_t type, dev_t rdev);

/* Pure, for the tests: whether a NUL-separated command line (as
 * /proc/PID/cmdline holds it) has "-pidfile PATH" or "--pidfile PATH"
 * (also "=PATH") naming pidfile. */
bool vmproc_cmdline_names(const char *cmdline, size_t len, const char *pidfile);

/* The QEMU process whose command line names the unix socket path (as
 * "-qmp unix:PATH,..." or "-chardev socket,...,path=PATH,..."; Xen's
 * device model has its QMP socket so): its pid and its -name into name
 * ("" without one), or 0 when no QEMU names it. Reads /proc only: no
 * connect() to the socket, whose one client slot belongs to libxl. */
unsigned long vmproc_by_socket(const char *path, char *name, size_t n);

/* Pure, for the tests: whether a NUL-separated command line names socket
 * path as a value, and its -name into name. */
bool vmproc_cmdline_socket(const char *cmdline, size_t len, const char *path, char *name,
			   size_t n);
