/*
 * daemon.c - the descriptor limit, the pid file and dropping root.
 *
 * luaproxy stays in the foreground (a service manager or a terminal owns
 * it), so there is no fork-and-detach here; only what an operator's unit
 * file or init script relies on.
 */
#include "daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

void daemon_raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int daemon_write_pid_file(const char *path, char *err, size_t err_len)
{
    char text[32];
    int n = snprintf(text, sizeof text, "%ld\n", (long)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

    if (fd == -1) {
        snprintf(err, err_len, "cannot write pid file '%s': %s", path, strerror(errno));
        return -1;
    }
    if (write(fd, text, (size_t)n) != n) {
        snprintf(err, err_len, "cannot write pid file '%s': %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

void daemon_remove_pid_file(const char *path)
{
    char text[32];
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd == -1)
        return;
    n = read(fd, text, sizeof text - 1);
    close(fd);
    /* A newer instance may have written its own id meanwhile. */
    if (n > 0) {
        text[n] = '\0';
        if (strtol(text, NULL, 10) == (long)getpid())
            unlink(path);
    }
}

int daemon_check_user(const char *user, char *err, size_t err_len)
{
    if (!getpwnam(user)) {
        snprintf(err, err_len, "invalid --user '%s': no such user", user);
        return -1;
    }
    return 0;
}

int daemon_drop_privileges(const char *user, char *err, size_t err_len)
{
    struct passwd *pw = getpwnam(user);

    if (!pw) {
        snprintf(err, err_len, "--user '%s': no such user", user);
        return -1;
    }
    if (getuid() == pw->pw_uid && geteuid() == pw->pw_uid)
        return 0;
    /* Groups first: once the uid is gone, so is the right to change them. */
    if (setgroups(1, &pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 ||
        setuid(pw->pw_uid) != 0) {
        snprintf(err, err_len, "cannot become user '%s': %s", user, strerror(errno));
        return -1;
    }
    if (pw->pw_uid != 0 && setuid(0) == 0) {
        snprintf(err, err_len, "dropping privileges to '%s' did not stick", user);
        return -1;
    }
    return 0;
}
