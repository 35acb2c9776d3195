/*
 * test_private_file.c - unit tests for opening a file that is its
 * owner's alone.
 *
 * A new file is 0600 whatever the umask; one of ours keeps its mode and
 * its bytes; a FIFO is taken as it is; a regular file another user owns
 * (given away when the test runs as root) is refused and left as it was.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "private_file.h"
#include "tap.h"

int main(void)
{
    char dir[] = "/tmp/private_file_XXXXXX", path[256];
    struct stat st;
    int fd;

    if (!mkdtemp(dir))
        return 1;
    umask(0);

    snprintf(path, sizeof path, "%s/new", dir);
    fd = private_file_open(path, O_APPEND, &st);
    ok(fd >= 0 && S_ISREG(st.st_mode) && (st.st_mode & 0777) == 0600,
       "a new file is 0600 under umask 0");
    ok(fd >= 0 && write(fd, "x", 1) == 1, "and can be written");
    close(fd);

    chmod(path, 0640);
    fd = private_file_open(path, O_APPEND, &st);
    ok(fd >= 0 && (st.st_mode & 0777) == 0640 && st.st_size == 1,
       "one of ours keeps its mode and its bytes");
    close(fd);

    snprintf(path, sizeof path, "%s/fifo", dir);
    mkfifo(path, 0644);
    fd = open(path, O_RDONLY | O_NONBLOCK); /* a reader, so opening to write does not wait */
    int w = private_file_open(path, O_NONBLOCK, &st);
    ok(w >= 0 && S_ISFIFO(st.st_mode), "a FIFO is taken as it is");
    close(w);
    close(fd);

    snprintf(path, sizeof path, "%s/theirs", dir);
    fd = open(path, O_WRONLY | O_CREAT, 0666);
    (void)!write(fd, "theirs", 6);
    close(fd);
    if (geteuid() == 0 && chown(path, 65534, 65534) == 0) {
        ok(private_file_open(path, O_APPEND, &st) == PRIVATE_FILE_FOREIGN,
           "a file another user owns is refused");
        ok(stat(path, &st) == 0 && st.st_size == 6 && (st.st_mode & 0777) == 0666,
           "and left as it was");
    } else {
        printf("# not root: giving a file away is not tried\n");
    }

    snprintf(path, sizeof path, "%s/missing/file", dir);
    ok(private_file_open(path, 0, &st) == -1, "a path that cannot be made: -1");

    snprintf(path, sizeof path, "rm -rf '%s'", dir);
    (void)!system(path);
    (void)guarded_copy; /* paths are C strings: no guarded copies here */
    return tap_done();
}
