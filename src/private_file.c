/*
 * private_file.c - opening a file that is its owner's alone (see
 * private_file.h).
 */
#include "private_file.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

int private_file_open(const char *path, int flags, struct stat *st)
{
    int saved, fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | flags, 0600);

    if (fd < 0)
        return -1;
    if (fstat(fd, st) != 0) {
        saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    /* The owner is checked on the open file, not on the path before it is
     * opened: the file cannot change between the check and the use. */
    if (S_ISREG(st->st_mode) && st->st_uid != geteuid()) {
        close(fd);
        return PRIVATE_FILE_FOREIGN;
    }
    return fd;
}
