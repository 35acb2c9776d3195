/*
 * private_file.h - opening a file that is its owner's alone.
 *
 * What the proxy writes to some files is private: the HAR (every kept
 * head and body, credentials included), the TLS key log (the secrets of
 * the sessions it names), the access log (who asked for what). Such a file
 * is made 0600, whatever the umask. A regular file that is already there
 * keeps its mode, unless another user owns it: one who made it beforehand
 * (in /tmp, say) would read what is written to it, so it is refused and
 * left untouched. Anything else (a FIFO, /dev/stdout) is taken as it is.
 *
 * What it owns: that check, in one place. What it doesn't: what each
 * caller says when it fails, or does with the descriptor.
 */
#ifndef LUAPROXY_PRIVATE_FILE_H
#define LUAPROXY_PRIVATE_FILE_H

#include <sys/stat.h>

/* A regular file another user owns (see above). */
#define PRIVATE_FILE_FOREIGN (-2)

/* Opens <path> to write, O_CREAT | O_CLOEXEC | <flags> (O_APPEND, say;
 * never O_TRUNC, which would empty a file before it is refused). Returns
 * the descriptor, with what fstat(2) said in *<st>; PRIVATE_FILE_FOREIGN;
 * or -1 with errno set. */
int private_file_open(const char *path, int flags, struct stat *st);

#endif
